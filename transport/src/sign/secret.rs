//! Redacting, zeroising holders for secret bytes and text (house style HS-64).

use core::fmt;

/// Secret bytes (a private key's PEM, a decrypted policy body): `Debug` shows only the length,
/// and the buffer is overwritten with zeros when dropped (house style HS-64).
///
/// The bytes are reachable only through [`SecretBytes::expose`], so every read of a secret is
/// visible in the code. The type is deliberately not `Clone`: a copy is made explicitly with
/// `expose().to_vec()`, and that copy is no longer zeroised.
///
/// Zeroising is best effort: the crate forbids `unsafe`, so it fills the buffer and passes it
/// through [`std::hint::black_box`] instead of a volatile write, and copies that OpenSSL or an
/// earlier reallocation left behind are out of its reach.
///
/// # Examples
///
/// ```
/// use cmmp_transport::sign::SecretBytes;
///
/// let secret = SecretBytes::new(b"hunter2".to_vec());
/// assert_eq!(secret.expose(), b"hunter2");
/// assert_eq!(format!("{secret:?}"), "SecretBytes(len=7, <redacted>)");
/// ```
pub struct SecretBytes(Vec<u8>);

impl SecretBytes {
    /// Takes ownership of `bytes`.
    #[must_use]
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    /// The secret bytes.
    #[must_use]
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// The number of bytes.
    #[must_use]
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no bytes.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Drop for SecretBytes {
    fn drop(&mut self) {
        wipe(&mut self.0);
    }
}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretBytes(len={}, <redacted>)", self.0.len())
    }
}

/// Secret text (a decrypted policy document): `Debug` shows only the length, and the buffer is
/// overwritten with zeros when dropped (house style HS-64).
///
/// Same rules and limits as [`SecretBytes`]: read it through [`SecretString::expose`]; a copy
/// made from it is not zeroised.
///
/// # Examples
///
/// ```
/// use cmmp_transport::sign::SecretString;
///
/// let secret = SecretString::new("<Policy/>".to_owned());
/// assert_eq!(secret.expose(), "<Policy/>");
/// assert_eq!(format!("{secret:?}"), "SecretString(len=9, <redacted>)");
/// ```
pub struct SecretString(String);

impl SecretString {
    /// Takes ownership of `text`.
    #[must_use]
    pub fn new(text: String) -> Self {
        Self(text)
    }

    /// The secret text.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The length in bytes (UTF-8).
    #[must_use]
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the text is empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Drop for SecretString {
    fn drop(&mut self) {
        let mut bytes = core::mem::take(&mut self.0).into_bytes();
        wipe(&mut bytes);
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretString(len={}, <redacted>)", self.0.len())
    }
}

/// Overwrites `bytes` with zeros in a way the optimiser does not remove.
fn wipe(bytes: &mut Vec<u8>) {
    bytes.fill(0);
    std::hint::black_box(&bytes);
}

#[cfg(test)]
mod tests {
    use super::{SecretBytes, SecretString};

    #[test]
    fn debug_shows_length_only() {
        let bytes = SecretBytes::new(b"-----BEGIN PRIVATE KEY-----".to_vec());
        let debug = format!("{bytes:?}");
        assert!(!debug.contains("BEGIN"), "{debug}");
        assert_eq!(debug, "SecretBytes(len=27, <redacted>)");
        let text = SecretString::new("NetworkAccessPassword".to_owned());
        assert_eq!(format!("{text:?}"), "SecretString(len=21, <redacted>)");
        assert!(!text.is_empty());
        assert_eq!(text.len(), 21);
        assert!(SecretBytes::new(Vec::new()).is_empty());
    }
}
