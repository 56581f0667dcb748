//! The crate's one error type (house style HS-70): site file, store, encoding, refusals.

use core::fmt;

use cmmp_model::EncodeError;
use cmmp_transport::cms::CmsError;

use crate::behaviour::Refusal;
use crate::store::StoreError;

/// Everything that can go wrong in the emulator's library calls.
///
/// A [`Refusal`] is not a fault of the emulator: it is the site's answer to a client it does
/// not serve (unknown, blocked, not approved, …). It comes back as [`Error::Refused`] only
/// after the refusal has been recorded and committed, so the server can answer the way a real
/// MP does ([`Refusal::mp_answer`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The site file is not valid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The site database failed; `what` names the operation.
    #[error("site database: {what} failed")]
    Store {
        /// The operation, e.g. `"record a message"`.
        what: &'static str,
        /// The database error (opaque: no SQLite type crosses this crate's API, HS-4).
        #[source]
        source: StoreError,
    },
    /// The site database was written by a newer build.
    #[error(
        "the site database has schema version {found}; this build knows versions up to {known}"
    )]
    SchemaTooNew {
        /// The database's `user_version`.
        found: i64,
        /// The newest version this build migrates to.
        known: i64,
    },
    /// A value read back from the database does not parse (the file was edited by hand or
    /// is damaged).
    #[error("the site database holds a malformed {what}: {value:?}")]
    Corrupt {
        /// What was read, e.g. `"SMSID"`.
        what: &'static str,
        /// The value, cut to 64 characters.
        value: String,
    },
    /// The site refused the client; the refusal has been recorded.
    #[error("refused: {0}")]
    Refused(Refusal),
    /// An admin operation named something that does not exist.
    #[error("no {what} {id}")]
    NotFound {
        /// What was looked for, e.g. `"client"`.
        what: &'static str,
        /// The identifier given.
        id: String,
    },
    /// An admin operation does not apply to the record in its current state.
    #[error("{0}")]
    Invalid(String),
    /// A message kind was passed to an operation that does not handle it.
    #[error("{operation} does not handle `{kind}` messages")]
    WrongKind {
        /// The operation, e.g. `"Site::accept"`.
        operation: &'static str,
        /// The kind name, e.g. `"ClientRegistration"`.
        kind: &'static str,
    },
    /// Writing a reply document failed.
    #[error("encoding a reply failed")]
    Encode(#[from] EncodeError),
    /// Encrypting a secret policy body to the client's encryption certificate failed.
    #[error("encrypting a secret policy body failed")]
    Cms(#[from] CmsError),
    /// OpenSSL failed (random numbers, hashing).
    #[error("OpenSSL failed while {what}")]
    Crypto {
        /// What was being done.
        what: &'static str,
        /// OpenSSL's error stack.
        #[source]
        source: openssl::error::ErrorStack,
    },
    /// Signing with the MP's key failed (policy assignment signatures, field notes M16).
    #[error("signing {what} failed")]
    Sign {
        /// What was being signed.
        what: &'static str,
        /// The signer's error.
        #[source]
        source: cmmp_transport::sign::SignError,
    },
    /// The HTTPS listener's certificate, key or client roots are not usable.
    #[error("HTTPS listener: {0}")]
    Tls(String),
    /// Reading the site file failed.
    #[error("reading {path} failed")]
    Io {
        /// The file.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// The refusal, when the error is one.
    #[must_use]
    pub fn refusal(&self) -> Option<&Refusal> {
        match self {
            Error::Refused(r) => Some(r),
            _ => None,
        }
    }

    pub(crate) fn corrupt(what: &'static str, value: &str) -> Self {
        Error::Corrupt { what, value: value.chars().take(64).collect() }
    }

    pub(crate) fn crypto(what: &'static str) -> impl FnOnce(openssl::error::ErrorStack) -> Self {
        move |source| Error::Crypto { what, source }
    }
}

/// A site file error, located like a compiler diagnostic: `site.toml:12:5: message`.
///
/// Syntax and type errors carry the exact position the TOML parser reports; rule violations
/// found after parsing (an unknown distribution point name, a duplicate policy ID) carry the
/// line of the first occurrence of the offending value when it can be found in the text, and
/// always the path of the setting (`boundary_groups[0].distribution_points`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file name, or `site.toml` for text given directly.
    pub file: String,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// 1-based column (in characters), when known.
    pub column: Option<usize>,
    /// What is wrong, starting with the setting's path when there is one.
    pub message: String,
}

impl ConfigError {
    /// An error at byte offset `offset` of `text`, or unlocated.
    pub(crate) fn at(file: &str, text: &str, offset: Option<usize>, message: String) -> Self {
        let (line, column) = match offset {
            Some(offset) => {
                let (l, c) = line_col(text, offset);
                (Some(l), Some(c))
            }
            None => (None, None),
        };
        Self { file: file.to_owned(), line, column, message }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.line, self.column) {
            (Some(l), Some(c)) => write!(f, "{}:{l}:{c}: {}", self.file, self.message),
            (Some(l), None) => write!(f, "{}:{l}: {}", self.file, self.message),
            _ => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

impl std::error::Error for ConfigError {}

/// 1-based line and column (in characters) of byte `offset` in `text`.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[start..].chars().count() + 1)
}

impl Error {
    /// An I/O error on `what` (a path or an address).
    pub fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io { path: what.into(), source }
    }
}

#[cfg(test)]
mod tests {
    use super::{ConfigError, line_col};

    #[test]
    fn positions_are_one_based_and_count_characters() {
        assert_eq!(line_col("a\nbé c", 6), (2, 4));
        assert_eq!(line_col("abc", 0), (1, 1));
        assert_eq!(line_col("abc", 99), (1, 4));
        let e = ConfigError::at("site.toml", "x = 1\ny = z\n", Some(10), "bad".to_owned());
        assert_eq!(e.to_string(), "site.toml:2:5: bad");
    }
}
