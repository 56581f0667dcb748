//! Braced GUIDs (message and correlation IDs) and the GUID lexing shared with [`SmsId`](super::SmsId).

use core::fmt;

use uuid::Uuid;

use super::{
    ValueError, XmlValue, hex_digit_value, impl_str_traits, trim_xml_whitespace, write_display,
};

/// What [`BracedGuid`] errors name as expected.
const EXPECTED: &str = "braced GUID";

/// Parses exactly `8-4-4-4-12` hex digits (either case) with dashes; nothing else passes.
///
/// The error is the reason, for the caller's [`ValueError`].
pub(super) fn parse_hyphenated(text: &str) -> Result<Uuid, &'static str> {
    let bytes = text.as_bytes();
    if bytes.len() != 36 {
        return Err("expected 36 characters in 8-4-4-4-12 form");
    }
    let mut out = [0u8; 16];
    let mut nibble = 0usize;
    for (index, &byte) in bytes.iter().enumerate() {
        if matches!(index, 8 | 13 | 18 | 23) {
            if byte != b'-' {
                return Err("expected a dash between groups");
            }
            continue;
        }
        let value = hex_digit_value(byte).ok_or("expected a hex digit")?;
        // 36 characters less 4 dashes leave exactly 32 nibbles, so `nibble / 2 < 16`.
        out[nibble / 2] |= if nibble.is_multiple_of(2) { value << 4 } else { value };
        nibble += 1;
    }
    Ok(Uuid::from_bytes(out))
}

/// Writes `uuid` as upper-case `8-4-4-4-12`.
pub(super) fn fmt_upper(uuid: &Uuid, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    fmt::UpperHex::fmt(&uuid.hyphenated(), f)
}

/// A GUID written in braces, as message and correlation IDs are: `{8-4-4-4-12}`.
///
/// Parsing accepts the braced or the bare form in any case (surrounding XML
/// white space is ignored); the canonical form is braced and upper-case.
/// Equality is on the GUID, so it ignores case.
///
/// # Examples
///
/// ```
/// use cmmp_model::value::{BracedGuid, XmlValue};
///
/// let id: BracedGuid = "{a1b2c3d4-0000-4000-8000-00000000abcd}".parse()?;
/// assert_eq!(id.to_string(), "{A1B2C3D4-0000-4000-8000-00000000ABCD}");
/// assert_eq!(id, BracedGuid::parse_xml("A1B2C3D4-0000-4000-8000-00000000ABCD")?);
/// assert_eq!(BracedGuid::nil().to_string(), "{00000000-0000-0000-0000-000000000000}");
/// assert!("{A1B2C3D4-0000-4000-8000-00000000ABCD".parse::<BracedGuid>().is_err());
/// # Ok::<(), cmmp_model::value::ValueError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct BracedGuid(Uuid);

impl BracedGuid {
    /// Wraps a GUID.
    #[must_use]
    pub const fn new(uuid: Uuid) -> Self {
        Self(uuid)
    }

    /// The all-zero GUID, `{00000000-0000-0000-0000-000000000000}`.
    #[must_use]
    pub const fn nil() -> Self {
        Self(Uuid::nil())
    }

    /// Builds the GUID from its 16 bytes in big-endian (textual) order.
    #[must_use]
    pub const fn from_bytes(bytes: [u8; 16]) -> Self {
        Self(Uuid::from_bytes(bytes))
    }

    /// The GUID.
    #[must_use]
    pub const fn uuid(&self) -> Uuid {
        self.0
    }

    /// The 16 bytes in big-endian (textual) order.
    #[must_use]
    pub const fn as_bytes(&self) -> &[u8; 16] {
        self.0.as_bytes()
    }
}

impl From<Uuid> for BracedGuid {
    fn from(uuid: Uuid) -> Self {
        Self(uuid)
    }
}

impl From<BracedGuid> for Uuid {
    fn from(guid: BracedGuid) -> Self {
        guid.0
    }
}

impl fmt::Display for BracedGuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        fmt_upper(&self.0, f)?;
        f.write_str("}")
    }
}

impl XmlValue for BracedGuid {
    fn parse_xml(text: &str) -> Result<Self, ValueError> {
        let trimmed = trim_xml_whitespace(text);
        let inner = match (trimmed.strip_prefix('{'), trimmed.ends_with('}')) {
            (Some(rest), true) => rest.strip_suffix('}').unwrap_or(rest),
            (None, false) => trimmed,
            _ => return Err(ValueError::new(EXPECTED, "unbalanced braces", text)),
        };
        parse_hyphenated(inner).map(Self).map_err(|reason| ValueError::new(EXPECTED, reason, text))
    }

    fn write_xml(&self, out: &mut String) {
        write_display(out, self);
    }

    const PLAIN: bool = true;
}

impl_str_traits!(BracedGuid, "a GUID string such as {00000000-0000-0000-0000-000000000000}");

#[cfg(test)]
mod tests {
    use super::{BracedGuid, EXPECTED, ValueError, XmlValue, parse_hyphenated};
    use proptest::prelude::{any, prop_assert, prop_assert_eq, proptest};
    use uuid::Uuid;

    const CANONICAL: &str = "{0123ABCD-4567-89EF-ABCD-EF0123456789}";
    const BYTES: [u8; 16] = [
        0x01, 0x23, 0xAB, 0xCD, 0x45, 0x67, 0x89, 0xEF, 0xAB, 0xCD, 0xEF, 0x01, 0x23, 0x45, 0x67,
        0x89,
    ];

    fn xml(value: &BracedGuid) -> String {
        let mut out = String::new();
        value.write_xml(&mut out);
        out
    }

    #[test]
    fn hyphenated_decodes_every_nibble() {
        assert_eq!(
            parse_hyphenated("0123abcd-4567-89ef-ABCD-EF0123456789"),
            Ok(Uuid::from_bytes(BYTES))
        );
    }

    #[test]
    fn canonical_round_trip() {
        let id = BracedGuid::parse_xml(CANONICAL).unwrap();
        assert_eq!(id, BracedGuid::from_bytes(BYTES));
        assert_eq!(id.as_bytes(), &BYTES);
        assert_eq!(xml(&id), CANONICAL);
        assert_eq!(id.to_string(), CANONICAL);
    }

    #[test]
    fn lenient_forms() {
        let expected = BracedGuid::from_bytes(BYTES);
        for text in [
            "{0123abcd-4567-89ef-abcd-ef0123456789}",
            "0123ABCD-4567-89EF-ABCD-EF0123456789",
            "0123abcd-4567-89Ef-aBcD-ef0123456789",
            " \t{0123ABCD-4567-89EF-ABCD-EF0123456789}\r\n",
            "\n0123abcd-4567-89ef-abcd-ef0123456789 ",
        ] {
            assert_eq!(text.parse::<BracedGuid>(), Ok(expected), "{text:?}");
        }
    }

    #[test]
    fn rejections() {
        let cases = [
            ("", "expected 36 characters in 8-4-4-4-12 form"),
            ("{}", "expected 36 characters in 8-4-4-4-12 form"),
            ("{0123ABCD-4567-89EF-ABCD-EF0123456789", "unbalanced braces"),
            ("0123ABCD-4567-89EF-ABCD-EF0123456789}", "unbalanced braces"),
            (
                "{{0123ABCD-4567-89EF-ABCD-EF0123456789}}",
                "expected 36 characters in 8-4-4-4-12 form",
            ),
            ("0123ABCD4-567-89EF-ABCD-EF0123456789", "expected a dash between groups"),
            ("0123ABCD-4567-89EF-ABCD-EF012345678G", "expected a hex digit"),
            ("0123ABCD-4567-89EF-ABCD-EF012345678\"", "expected a hex digit"),
            ("0123ABCD-4567-89EF-ABCD-EF01234567-8", "expected a hex digit"),
            ("0123abcd456789efabcdef0123456789", "expected 36 characters in 8-4-4-4-12 form"),
            (
                "urn:uuid:0123abcd-4567-89ef-abcd-ef0123456789",
                "expected 36 characters in 8-4-4-4-12 form",
            ),
            (
                "GUID:0123ABCD-4567-89EF-ABCD-EF0123456789",
                "expected 36 characters in 8-4-4-4-12 form",
            ),
            ("0123ABCD-4567-89EF-ABCD-EF01234567é", "expected a hex digit"),
            ("{0123ABCD-4567-89EF-ABCD-EF012345678 }", "expected a hex digit"),
        ];
        for (text, reason) in cases {
            assert_eq!(
                BracedGuid::parse_xml(text),
                Err(ValueError::new(EXPECTED, reason, text)),
                "{text:?}"
            );
        }
    }

    #[test]
    fn constructors_and_conversions() {
        let uuid = Uuid::from_bytes(BYTES);
        assert_eq!(BracedGuid::new(uuid).uuid(), uuid);
        assert_eq!(BracedGuid::from(uuid), BracedGuid::from_bytes(BYTES));
        assert_eq!(Uuid::from(BracedGuid::from_bytes(BYTES)), uuid);
        assert_eq!(BracedGuid::nil(), BracedGuid::default());
        assert_eq!(BracedGuid::nil().uuid(), Uuid::nil());
    }

    #[test]
    fn order_matches_canonical_text() {
        let low = BracedGuid::from_bytes([0x09; 16]);
        let high = BracedGuid::from_bytes([0x0A; 16]);
        assert!(low < high);
        assert!(low.to_string() < high.to_string());
    }

    #[test]
    fn serde_uses_canonical_string() {
        let id = BracedGuid::from_bytes(BYTES);
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, format!("\"{CANONICAL}\""));
        let back: BracedGuid =
            serde_json::from_str("\"0123abcd-4567-89ef-abcd-ef0123456789\"").unwrap();
        assert_eq!(back, id);
        let err = serde_json::from_str::<BracedGuid>("\"{nope}\"").unwrap_err().to_string();
        assert!(err.contains("invalid braced GUID"), "{err}");
        assert!(serde_json::from_str::<BracedGuid>("42").is_err());
    }

    proptest! {
        #[test]
        fn write_then_parse_round_trips(bytes in any::<[u8; 16]>()) {
            let id = BracedGuid::from_bytes(bytes);
            let text = xml(&id);
            prop_assert_eq!(BracedGuid::parse_xml(&text), Ok(id));
            prop_assert_eq!(BracedGuid::parse_xml(&text.to_lowercase()), Ok(id));
            prop_assert_eq!(BracedGuid::parse_xml(&text[1..37]), Ok(id));
        }

        #[test]
        fn parse_never_panics(text in any::<String>()) {
            let _ = BracedGuid::parse_xml(&text);
        }

        #[test]
        fn mutated_text_parses_only_to_what_it_spells(
            bytes in any::<[u8; 16]>(),
            index in 0usize..38,
            replacement in "[0-9a-hA-H{}: -]",
        ) {
            let mut text = BracedGuid::from_bytes(bytes).to_string();
            text.replace_range(index..=index, &replacement);
            if let Ok(id) = BracedGuid::parse_xml(&text) {
                let trimmed = text.trim_matches(' ');
                let braced =
                    if trimmed.starts_with('{') { trimmed.to_owned() } else { format!("{{{trimmed}}}") };
                prop_assert!(braced.eq_ignore_ascii_case(&id.to_string()), "{text:?} -> {id}");
            }
        }
    }
}
