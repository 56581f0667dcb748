//! Codegen errors, displayed like compiler diagnostics: `schemas/ddr.xsd:12: …`.

use std::fmt;

/// An error in a schema, in the manifest, or while writing output.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A problem at a known place in a schema or the manifest.
    #[error("{0}")]
    At(Location),
    /// A problem with a file as a whole (unreadable, or rejected by the XSD front end).
    #[error("{file}: {message}")]
    File {
        /// Display path of the file, e.g. `schemas/ddr.xsd`.
        file: String,
        /// What is wrong.
        message: String,
    },
    /// An I/O error on a path.
    #[error("{path}: {source}")]
    Io {
        /// The path involved.
        path: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

/// A diagnostic at `file:line`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// Display path of the file, e.g. `schemas/ddr.xsd`.
    pub file: String,
    /// 1-based line number; 0 when the line is unknown.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file, self.message)
        } else {
            write!(f, "{}:{}: {}", self.file, self.line, self.message)
        }
    }
}

impl Error {
    /// An error at `line` of `file`.
    pub fn at(file: &str, line: usize, message: impl Into<String>) -> Self {
        Error::At(Location { file: file.to_owned(), line, message: message.into() })
    }
}

/// 1-based line number of byte `offset` in `text`.
pub(crate) fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())].iter().filter(|&&b| b == b'\n').count() + 1
}

/// The line of the first `name="<name>"` in `text` (where a schema component is declared),
/// or of the first occurrence of `name` at all; 0 if absent.
pub(crate) fn line_of_name(text: &str, name: &str) -> usize {
    let decl = format!("name=\"{name}\"");
    if let Some(i) = text.find(&decl) {
        return line_of(text, i);
    }
    for quoted in [format!("\"{name}\""), name.to_owned()] {
        if let Some(i) = text.find(&quoted) {
            return line_of(text, i);
        }
    }
    0
}
