//! Decode and encode errors of the message model.
//!
//! A [`DecodeError`] names where decoding failed as an element path
//! (`Report/ReportBody/Instance[3]/@Class`, 1-based positions on repeated elements, `@` for
//! attributes) and the byte offset in the UTF-8 text. The path is built while the error
//! propagates out of the nested decoders, so the happy path pays nothing for it.

use std::borrow::Cow;
use std::fmt;

use crate::value::ValueError;

/// A document that could not be decoded into its message type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    kind: DecodeErrorKind,
    /// Path segments, innermost first (pushed while unwinding).
    path: Vec<Segment>,
    offset: u64,
}

/// What went wrong while decoding.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecodeErrorKind {
    /// The text is not well-formed XML.
    Syntax(String),
    /// The document carries a DTD; DTDs and entity declarations are refused.
    Dtd,
    /// An entity reference other than the five predefined ones or a character reference.
    UnknownEntity(String),
    /// Elements nest deeper than the reader's limit.
    TooDeep {
        /// The nesting limit in force.
        limit: usize,
    },
    /// The document is larger than the reader's limit.
    TooLarge {
        /// The size limit in bytes.
        limit: usize,
    },
    /// The document contains no root element.
    NoRoot,
    /// The root element is not the one this message type reads.
    UnexpectedRoot {
        /// The root element the message type expects.
        expected: &'static str,
        /// The root element found.
        found: String,
    },
    /// Content after the root element.
    TrailingContent,
    /// A required child element is missing.
    MissingElement(&'static str),
    /// A required attribute is missing.
    MissingAttribute(&'static str),
    /// A child element that may occur once occurs again.
    DuplicateElement(&'static str),
    /// A lexical value does not parse as its type.
    Value(ValueError),
    /// A character XML 1.0 does not allow (§2.2 `Char`): a C0 control other than tab, line
    /// feed and carriage return, or U+FFFE or U+FFFF, written as itself or as a character
    /// reference. A conforming parser (the MP's among them) refuses the document.
    InvalidChar {
        /// The offending code point.
        code: u32,
    },
    /// An element or attribute name in `xs:any` content is not an XML name (§2.3 `Name`), so
    /// the content could not be written again.
    InvalidName(String),
    /// An unknown message kind was asked for (endpoint, file type and root do not match one).
    UnknownKind {
        /// `Msg/TargetEndpoint`.
        endpoint: String,
        /// The `FileType` property, if any.
        file_type: Option<String>,
        /// The root element of the body.
        root: String,
    },
}

/// One step of an element path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Element(Cow<'static, str>, Option<usize>),
    Attribute(&'static str),
}

impl DecodeError {
    /// Creates an error of `kind` at byte `offset` of the decoded text.
    pub fn new(kind: DecodeErrorKind, offset: u64) -> Self {
        Self { kind, path: Vec::new(), offset }
    }

    /// What went wrong.
    pub fn kind(&self) -> &DecodeErrorKind {
        &self.kind
    }

    /// Byte offset in the UTF-8 text where the error was detected.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The element path, outermost first: `Report/ReportBody/Instance[3]/@Class`.
    pub fn path(&self) -> String {
        let mut out = String::new();
        for seg in self.path.iter().rev() {
            if !out.is_empty() {
                out.push('/');
            }
            match seg {
                Segment::Element(name, None) => out.push_str(name),
                Segment::Element(name, Some(i)) => {
                    out.push_str(name);
                    out.push('[');
                    out.push_str(&i.to_string());
                    out.push(']');
                }
                Segment::Attribute(name) => {
                    out.push('@');
                    out.push_str(name);
                }
            }
        }
        out
    }

    /// Adds the enclosing element `name` (with its 1-based position among repeated siblings).
    #[must_use]
    pub fn at(mut self, name: &'static str, position: Option<usize>) -> Self {
        self.path.push(Segment::Element(Cow::Borrowed(name), position));
        self
    }

    /// Adds an enclosing element whose name is only known at run time (`xs:any` content).
    #[must_use]
    pub fn at_dynamic(mut self, name: &str, position: Option<usize>) -> Self {
        self.path.push(Segment::Element(Cow::Owned(name.to_owned()), position));
        self
    }

    /// Adds the attribute `name` as the innermost step.
    #[must_use]
    pub fn at_attr(mut self, name: &'static str) -> Self {
        self.path.push(Segment::Attribute(name));
        self
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = self.path();
        if !path.is_empty() {
            write!(f, "{path}: ")?;
        }
        match &self.kind {
            DecodeErrorKind::Syntax(m) => write!(f, "malformed XML: {m}")?,
            DecodeErrorKind::Dtd => f.write_str("a DTD is not allowed in a message")?,
            DecodeErrorKind::UnknownEntity(e) => write!(f, "unknown entity reference `&{e};`")?,
            DecodeErrorKind::TooDeep { limit } => {
                write!(f, "elements nest deeper than the limit of {limit}")?;
            }
            DecodeErrorKind::TooLarge { limit } => {
                write!(f, "document is larger than the limit of {limit} bytes")?;
            }
            DecodeErrorKind::NoRoot => f.write_str("no root element")?,
            DecodeErrorKind::UnexpectedRoot { expected, found } => {
                write!(f, "expected root element `{expected}`, found `{found}`")?;
            }
            DecodeErrorKind::TrailingContent => f.write_str("content after the root element")?,
            DecodeErrorKind::MissingElement(n) => write!(f, "missing required element `{n}`")?,
            DecodeErrorKind::MissingAttribute(n) => {
                write!(f, "missing required attribute `{n}`")?;
            }
            DecodeErrorKind::DuplicateElement(n) => {
                write!(f, "element `{n}` occurs more than once")?;
            }
            DecodeErrorKind::Value(e) => write!(f, "{e}")?,
            DecodeErrorKind::InvalidChar { code } => {
                write!(f, "the character U+{code:04X} is not allowed in XML")?;
            }
            DecodeErrorKind::InvalidName(n) => write!(f, "`{n}` is not an XML name")?,
            DecodeErrorKind::UnknownKind { endpoint, file_type, root } => {
                write!(f, "no message kind for endpoint `{endpoint}`")?;
                if let Some(ft) = file_type {
                    write!(f, ", FileType `{ft}`")?;
                }
                write!(f, " and root `{root}`")?;
            }
        }
        write!(f, " (at byte {})", self.offset)
    }
}

impl std::error::Error for DecodeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.kind {
            DecodeErrorKind::Value(e) => Some(e),
            _ => None,
        }
    }
}

/// A message that cannot be written as XML.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// A text or attribute value holds a character XML 1.0 cannot carry (e.g. U+0000).
    #[error("element `{element}` holds the character U+{code:04X}, which XML 1.0 cannot carry")]
    InvalidChar {
        /// The innermost element being written.
        element: String,
        /// The offending code point.
        code: u32,
    },
    /// An element or attribute name from `xs:any` content is not a valid XML name.
    #[error("`{0}` is not a valid XML name")]
    InvalidName(String),
}

#[cfg(test)]
mod tests {
    use super::{DecodeError, DecodeErrorKind};

    #[test]
    fn path_is_outermost_first_with_positions_and_attributes() {
        let e = DecodeError::new(DecodeErrorKind::MissingAttribute("Class"), 42)
            .at_attr("Class")
            .at("Instance", Some(3))
            .at("ReportBody", None)
            .at("Report", None);
        assert_eq!(e.path(), "Report/ReportBody/Instance[3]/@Class");
        assert_eq!(
            e.to_string(),
            "Report/ReportBody/Instance[3]/@Class: missing required attribute `Class` (at byte 42)"
        );
    }
}
