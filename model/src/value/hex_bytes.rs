//! Hex-encoded binary (`xs:hexBinary`).

use core::fmt;

use super::{ValueError, XmlValue, hex_digit_value, impl_str_traits, trim_xml_whitespace};

/// What [`HexBytes`] errors name as expected.
const EXPECTED: &str = "hex binary";

/// Upper-case hex digits by value.
const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";

/// How many bytes [`HexBytes`]'s `Debug` shows before eliding the rest.
const DEBUG_PREVIEW: usize = 16;

/// Binary data written as hex digits, two per byte, e.g. `0A1B2C`.
///
/// Parsing accepts either case and ignores surrounding XML white space; it
/// rejects separators, a `0x` prefix and an odd number of digits. The
/// canonical form is upper-case. The empty string is zero bytes. `Debug`
/// shows the length and the first bytes only, so logging a large blob stays
/// cheap.
///
/// # Examples
///
/// ```
/// use cmmp_model::value::HexBytes;
///
/// let data: HexBytes = "0a1bFF".parse()?;
/// assert_eq!(data.0, [0x0A, 0x1B, 0xFF]);
/// assert_eq!(data.to_string(), "0A1BFF");
/// assert!("0A1".parse::<HexBytes>().is_err());
/// assert_eq!(format!("{:?}", HexBytes(vec![0xAB; 3])), "HexBytes(len=3, ABABAB)");
/// assert!(format!("{:?}", HexBytes(vec![0xAB; 1_000_000])).len() < 64);
/// # Ok::<(), cmmp_model::value::ValueError>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct HexBytes(pub Vec<u8>);

impl HexBytes {
    /// The bytes.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Takes the bytes out.
    #[must_use]
    pub fn into_inner(self) -> Vec<u8> {
        self.0
    }
}

impl From<Vec<u8>> for HexBytes {
    fn from(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }
}

impl From<&[u8]> for HexBytes {
    fn from(bytes: &[u8]) -> Self {
        Self(bytes.to_vec())
    }
}

impl From<HexBytes> for Vec<u8> {
    fn from(bytes: HexBytes) -> Self {
        bytes.0
    }
}

impl AsRef<[u8]> for HexBytes {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

/// The two upper-case hex digits of `byte`.
fn hex_pair(byte: u8) -> [char; 2] {
    [char::from(HEX_UPPER[usize::from(byte >> 4)]), char::from(HEX_UPPER[usize::from(byte & 0x0F)])]
}

impl fmt::Debug for HexBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HexBytes(len={}", self.0.len())?;
        if !self.0.is_empty() {
            f.write_str(", ")?;
        }
        for &byte in self.0.iter().take(DEBUG_PREVIEW) {
            for digit in hex_pair(byte) {
                fmt::Write::write_char(f, digit)?;
            }
        }
        if self.0.len() > DEBUG_PREVIEW {
            f.write_str("…")?;
        }
        f.write_str(")")
    }
}

impl fmt::Display for HexBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for &byte in &self.0 {
            for digit in hex_pair(byte) {
                fmt::Write::write_char(f, digit)?;
            }
        }
        Ok(())
    }
}

impl XmlValue for HexBytes {
    fn parse_xml(text: &str) -> Result<Self, ValueError> {
        let digits = trim_xml_whitespace(text).as_bytes();
        let pairs = digits.chunks_exact(2);
        if !pairs.remainder().is_empty() {
            return Err(ValueError::new(EXPECTED, "odd number of hex digits", text));
        }
        // Sized up front: collecting into a `Result` would grow the vector from empty.
        let mut bytes = Vec::with_capacity(digits.len() / 2);
        for pair in pairs {
            match (hex_digit_value(pair[0]), hex_digit_value(pair[1])) {
                (Some(high), Some(low)) => bytes.push(high << 4 | low),
                _ => return Err(ValueError::new(EXPECTED, "expected only hex digits", text)),
            }
        }
        Ok(Self(bytes))
    }

    fn write_xml(&self, out: &mut String) {
        out.reserve(self.0.len() * 2);
        for &byte in &self.0 {
            out.extend(hex_pair(byte));
        }
    }

    const PLAIN: bool = true;
}

impl_str_traits!(HexBytes, "a string of hex digits");

#[cfg(test)]
mod tests {
    use super::{EXPECTED, HexBytes, ValueError, XmlValue, hex_digit_value};
    use proptest::prelude::{any, prop_assert, prop_assert_eq, proptest};

    #[test]
    fn every_byte_has_the_hex_value_char_gives_it() {
        for byte in 0..=u8::MAX {
            let expected = char::from(byte).to_digit(16).map(|d| u8::try_from(d).unwrap());
            assert_eq!(hex_digit_value(byte), expected, "byte {byte:#04x}");
        }
    }

    fn xml(value: &HexBytes) -> String {
        let mut out = String::new();
        value.write_xml(&mut out);
        out
    }

    #[test]
    fn canonical_round_trip() {
        let data = HexBytes::parse_xml("00017F80FF").unwrap();
        assert_eq!(data.as_bytes(), [0x00, 0x01, 0x7F, 0x80, 0xFF]);
        assert_eq!(xml(&data), "00017F80FF");
        assert_eq!(data.to_string(), "00017F80FF");
    }

    #[test]
    fn lenient_forms() {
        let expected = HexBytes(vec![0xAB, 0xCD, 0xEF]);
        for text in ["abcdef", "ABCDEF", "aBcDeF", " \tabcdef\r\n"] {
            assert_eq!(text.parse::<HexBytes>(), Ok(expected.clone()), "{text:?}");
        }
        assert_eq!(HexBytes::parse_xml(""), Ok(HexBytes::default()));
        assert_eq!(HexBytes::parse_xml(" \n"), Ok(HexBytes(Vec::new())));
        assert_eq!(xml(&HexBytes::default()), "");
    }

    #[test]
    fn rejections() {
        let cases = [
            ("A", "odd number of hex digits"),
            ("ABC", "odd number of hex digits"),
            ("0xAB", "expected only hex digits"),
            ("AB CD", "odd number of hex digits"),
            ("AB:CD", "odd number of hex digits"),
            ("AB-CD-", "expected only hex digits"),
            ("GG", "expected only hex digits"),
            ("A\u{e9}", "odd number of hex digits"),
            ("\u{e9}", "expected only hex digits"),
            ("AB\u{a0}", "expected only hex digits"),
        ];
        for (text, reason) in cases {
            assert_eq!(
                HexBytes::parse_xml(text),
                Err(ValueError::new(EXPECTED, reason, text)),
                "{text:?}"
            );
        }
    }

    #[test]
    fn debug_is_bounded() {
        assert_eq!(format!("{:?}", HexBytes(vec![1, 0xAB])), "HexBytes(len=2, 01AB)");
        assert_eq!(format!("{:?}", HexBytes::default()), "HexBytes(len=0)");
        let big = HexBytes(vec![0x5A; 1 << 20]);
        assert_eq!(format!("{big:?}"), format!("HexBytes(len=1048576, {}…)", "5A".repeat(16)));
        let seventeen = HexBytes((0..17).collect());
        assert_eq!(format!("{seventeen:?}"), "HexBytes(len=17, 000102030405060708090A0B0C0D0E0F…)");
        let sixteen = HexBytes((0..16).collect());
        assert_eq!(format!("{sixteen:?}"), "HexBytes(len=16, 000102030405060708090A0B0C0D0E0F)");
    }

    #[test]
    fn conversions() {
        let bytes = vec![1u8, 2, 3];
        let data = HexBytes::from(bytes.clone());
        assert_eq!(HexBytes::from(&bytes[..]), data);
        assert_eq!(data.as_ref(), &bytes[..]);
        assert_eq!(Vec::from(data.clone()), bytes);
        assert_eq!(data.into_inner(), bytes);
    }

    #[test]
    fn serde_uses_canonical_string() {
        let data = HexBytes(vec![0xDE, 0xAD]);
        assert_eq!(serde_json::to_string(&data).unwrap(), "\"DEAD\"");
        assert_eq!(serde_json::from_str::<HexBytes>("\"dead\"").unwrap(), data);
        let err = serde_json::from_str::<HexBytes>("\"dea\"").unwrap_err().to_string();
        assert!(err.contains("invalid hex binary"), "{err}");
    }

    proptest! {
        #[test]
        fn write_then_parse_round_trips(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let data = HexBytes(bytes);
            let text = xml(&data);
            prop_assert_eq!(text.len(), data.0.len() * 2);
            prop_assert_eq!(&text, &data.to_string());
            prop_assert_eq!(HexBytes::parse_xml(&text.to_lowercase()), Ok(data.clone()));
            prop_assert_eq!(HexBytes::parse_xml(&text), Ok(data));
        }

        #[test]
        fn parse_never_panics(text in any::<String>()) {
            let _ = HexBytes::parse_xml(&text);
        }

        #[test]
        fn accepted_text_is_hex_and_canonicalizes(text in "[0-9a-hA-H x]{0,12}") {
            if let Ok(data) = HexBytes::parse_xml(&text) {
                let trimmed = text.trim_matches(' ');
                prop_assert!(trimmed.bytes().all(|b| b.is_ascii_hexdigit()), "{:?}", text);
                prop_assert_eq!(xml(&data), trimmed.to_uppercase());
            }
        }
    }
}
