//! Content kept from `xs:any`: an element of any name with any attributes and children.

use serde::{Deserialize, Serialize};

use super::{Node, Reader, Start, Writer, XmlElement};
use crate::error::{DecodeError, EncodeError};

/// An element kept verbatim from `xs:any` content (e.g. a WMI class in a hardware inventory
/// `Instance`, whose children are its properties).
///
/// Attribute order and child order are preserved. Text is kept in [`AnyElement::text`]; the
/// protocol's documents carry no mixed content, so when an element has both text and child
/// elements the text pieces are joined and written before the children, and whitespace-only
/// text between child elements (formatting) is dropped.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnyElement {
    /// Element name.
    pub name: String,
    /// Attributes in document order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attributes: Vec<AnyAttribute>,
    /// Unescaped text content.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub text: String,
    /// Child elements in document order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub children: Vec<AnyElement>,
}

/// An attribute of an [`AnyElement`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnyAttribute {
    /// Attribute name.
    pub name: String,
    /// Unescaped value.
    pub value: String,
}

impl AnyElement {
    /// Creates an element with no attributes, text or children.
    pub fn new(name: impl Into<String>) -> Self {
        Self { name: name.into(), ..Self::default() }
    }

    /// Adds a child element `<name>text</name>` (the shape of a WMI property), builder style.
    #[must_use]
    pub fn with_property(mut self, name: impl Into<String>, text: impl Into<String>) -> Self {
        self.children.push(AnyElement { name: name.into(), text: text.into(), ..Self::default() });
        self
    }

    /// Adds an attribute, builder style.
    #[must_use]
    pub fn with_attribute(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.attributes.push(AnyAttribute { name: name.into(), value: value.into() });
        self
    }

    /// The child elements named `name`.
    pub fn elements<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'s AnyElement> + 's {
        self.children.iter().filter(move |c| c.name == name)
    }

    /// The text of the first child element named `name` (a WMI property's value).
    pub fn property(&self, name: &str) -> Option<&str> {
        self.children.iter().find(|c| c.name == name).map(|c| c.text.as_str())
    }
}

/// Checks that `name` is an XML name, so that writing cannot produce a malformed document.
fn check_name(name: &str) -> Result<(), EncodeError> {
    let bytes = name.as_bytes();
    let ascii_ok = !bytes.is_empty()
        && (bytes[0].is_ascii_alphabetic() || bytes[0] == b'_')
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':'));
    if ascii_ok {
        return Ok(());
    }
    let mut chars = name.chars();
    let ok = match chars.next() {
        Some(c) if c.is_alphabetic() || c == '_' || c == ':' => {
            chars.all(|c| c.is_alphanumeric() || matches!(c, '_' | ':' | '-' | '.'))
        }
        _ => false,
    };
    if ok { Ok(()) } else { Err(EncodeError::InvalidName(name.to_owned())) }
}

impl XmlElement for AnyElement {
    /// Writes the element under its own name; `name` is ignored (the element carries it).
    fn write_element(&self, _name: &str, w: &mut Writer) {
        if let Err(e) = check_name(&self.name) {
            w.fail(e);
            return;
        }
        w.start(&self.name);
        for a in &self.attributes {
            if let Err(e) = check_name(&a.name) {
                w.fail(e);
                return;
            }
            w.attr(&a.name, &a.value);
        }
        w.text(&self.text);
        for c in &self.children {
            c.write_element(&c.name, w);
        }
        w.end(&self.name);
    }

    fn read_element(r: &mut Reader<'_>, start: &Start<'_>) -> Result<Self, DecodeError> {
        let name = match std::str::from_utf8(start.name()) {
            Ok(n) => n.to_owned(),
            Err(_) => start.name_str().into_owned(),
        };
        let mut attributes = Vec::new();
        let mut attrs = start.attrs();
        while let Some((n, v)) = attrs.next_attr(r)? {
            attributes.push(AnyAttribute {
                name: String::from_utf8_lossy(n).into_owned(),
                value: v.into_owned(),
            });
        }
        let mut text = String::new();
        let mut children = Vec::new();
        if !start.is_empty() {
            // Text runs between child elements, kept until we know whether they are formatting.
            let mut run = String::new();
            loop {
                match r.next_node()? {
                    Node::Child(child) => {
                        if !is_space(&run) {
                            text.push_str(&run);
                        }
                        run.clear();
                        let position = children.len() + 1;
                        let e = AnyElement::read_element(r, &child)
                            .map_err(|e| e.at_dynamic(&child.name_str(), Some(position)))?;
                        children.push(e);
                    }
                    Node::Text(t) => {
                        if run.is_empty() && children.is_empty() && text.is_empty() {
                            run = t.into_owned();
                        } else {
                            run.push_str(&t);
                        }
                    }
                    Node::Char(c) => run.push(c),
                    Node::End => break,
                }
            }
            if children.is_empty() {
                text = run;
            } else if !is_space(&run) {
                text.push_str(&run);
            }
        }
        Ok(Self { name, attributes, text, children })
    }
}

fn is_space(t: &str) -> bool {
    t.bytes().all(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
}
