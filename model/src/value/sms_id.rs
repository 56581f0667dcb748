//! SMS client IDs (`GUID:…`) and their optional form.

use core::fmt;

use uuid::Uuid;

use super::guid::{fmt_upper, parse_hyphenated};
use super::{ValueError, XmlValue, impl_str_traits, trim_xml_whitespace, write_display};

/// What [`SmsId`] and [`MaybeSmsId`] errors name as expected.
const EXPECTED: &str = "SMS client ID";

/// The prefix of an SMS client ID.
const PREFIX: &str = "GUID:";

/// An SMS client ID: `GUID:` and a `8-4-4-4-12` GUID without braces (spec §3.9).
///
/// Parsing ignores case (of the prefix too), accepts the GUID with or without
/// the `GUID:` prefix and ignores surrounding XML white space; only hex digits
/// and dashes in the `8-4-4-4-12` layout pass, so braces or any other
/// character are rejected. The canonical form is `GUID:` and the upper-case
/// GUID. Equality is on the GUID, so it ignores case.
///
/// # Examples
///
/// ```
/// use cmmp_model::value::SmsId;
///
/// let id: SmsId = "guid:2c4e2ec1-8d3c-4f3a-9b1e-0123456789ab".parse()?;
/// assert_eq!(id.to_string(), "GUID:2C4E2EC1-8D3C-4F3A-9B1E-0123456789AB");
/// assert_eq!(id, "2C4E2EC1-8D3C-4F3A-9B1E-0123456789AB".parse()?);
/// assert!("GUID:{2C4E2EC1-8D3C-4F3A-9B1E-0123456789AB}".parse::<SmsId>().is_err());
/// # Ok::<(), cmmp_model::value::ValueError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SmsId(Uuid);

impl SmsId {
    /// Wraps a GUID.
    #[must_use]
    pub const fn new(uuid: Uuid) -> Self {
        Self(uuid)
    }

    /// Builds the ID from the GUID's 16 bytes in big-endian (textual) order.
    #[must_use]
    pub const fn from_bytes(bytes: [u8; 16]) -> Self {
        Self(Uuid::from_bytes(bytes))
    }

    /// The GUID.
    #[must_use]
    pub const fn uuid(&self) -> Uuid {
        self.0
    }

    /// The GUID's 16 bytes in big-endian (textual) order.
    #[must_use]
    pub const fn as_bytes(&self) -> &[u8; 16] {
        self.0.as_bytes()
    }
}

impl From<Uuid> for SmsId {
    fn from(uuid: Uuid) -> Self {
        Self(uuid)
    }
}

impl From<SmsId> for Uuid {
    fn from(id: SmsId) -> Self {
        id.0
    }
}

impl fmt::Display for SmsId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(PREFIX)?;
        fmt_upper(&self.0, f)
    }
}

impl XmlValue for SmsId {
    fn parse_xml(text: &str) -> Result<Self, ValueError> {
        let trimmed = trim_xml_whitespace(text);
        let guid = match trimmed.get(..PREFIX.len()) {
            Some(head) if head.eq_ignore_ascii_case(PREFIX) => &trimmed[PREFIX.len()..],
            _ => trimmed,
        };
        if guid.starts_with('{') {
            return Err(ValueError::new(EXPECTED, "braces are not allowed", text));
        }
        parse_hyphenated(guid).map(Self).map_err(|reason| ValueError::new(EXPECTED, reason, text))
    }

    fn write_xml(&self, out: &mut String) {
        write_display(out, self);
    }

    const PLAIN: bool = true;
}

impl_str_traits!(SmsId, "an SMS client ID such as GUID:00000000-0000-0000-0000-000000000000");

/// An SMS client ID that may be absent: the empty string stands for none.
///
/// A client that registers for the first time sends `Data/@SMSID=""`.
/// Parsing treats an empty (or XML-white-space-only) value as `None` and
/// anything else as an [`SmsId`]; `None` is written as the empty string.
///
/// # Examples
///
/// ```
/// use cmmp_model::value::{MaybeSmsId, SmsId};
///
/// let none: MaybeSmsId = "".parse()?;
/// assert_eq!(none, MaybeSmsId(None));
/// assert_eq!(none.to_string(), "");
///
/// let some: MaybeSmsId = "GUID:2C4E2EC1-8D3C-4F3A-9B1E-0123456789AB".parse()?;
/// assert_eq!(some.0, Some("2c4e2ec1-8d3c-4f3a-9b1e-0123456789ab".parse::<SmsId>()?));
/// # Ok::<(), cmmp_model::value::ValueError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct MaybeSmsId(pub Option<SmsId>);

impl MaybeSmsId {
    /// The absent ID (written as the empty string).
    pub const NONE: Self = Self(None);
}

impl From<SmsId> for MaybeSmsId {
    fn from(id: SmsId) -> Self {
        Self(Some(id))
    }
}

impl From<Option<SmsId>> for MaybeSmsId {
    fn from(id: Option<SmsId>) -> Self {
        Self(id)
    }
}

impl From<MaybeSmsId> for Option<SmsId> {
    fn from(id: MaybeSmsId) -> Self {
        id.0
    }
}

impl fmt::Display for MaybeSmsId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Some(id) => fmt::Display::fmt(id, f),
            None => Ok(()),
        }
    }
}

impl XmlValue for MaybeSmsId {
    fn parse_xml(text: &str) -> Result<Self, ValueError> {
        if trim_xml_whitespace(text).is_empty() {
            Ok(Self(None))
        } else {
            SmsId::parse_xml(text).map(|id| Self(Some(id)))
        }
    }

    fn write_xml(&self, out: &mut String) {
        if let Some(id) = &self.0 {
            id.write_xml(out);
        }
    }

    const PLAIN: bool = true;
}

impl_str_traits!(MaybeSmsId, "an SMS client ID or the empty string");

#[cfg(test)]
mod tests {
    use super::{EXPECTED, MaybeSmsId, SmsId, ValueError, XmlValue};
    use proptest::prelude::{any, prop_assert, prop_assert_eq, proptest};
    use uuid::Uuid;

    const CANONICAL: &str = "GUID:0123ABCD-4567-89EF-ABCD-EF0123456789";
    const BYTES: [u8; 16] = [
        0x01, 0x23, 0xAB, 0xCD, 0x45, 0x67, 0x89, 0xEF, 0xAB, 0xCD, 0xEF, 0x01, 0x23, 0x45, 0x67,
        0x89,
    ];

    fn xml<T: XmlValue>(value: &T) -> String {
        let mut out = String::new();
        value.write_xml(&mut out);
        out
    }

    #[test]
    fn canonical_round_trip() {
        let id = SmsId::parse_xml(CANONICAL).unwrap();
        assert_eq!(id, SmsId::from_bytes(BYTES));
        assert_eq!(id.as_bytes(), &BYTES);
        assert_eq!(xml(&id), CANONICAL);
        assert_eq!(id.to_string(), CANONICAL);
    }

    #[test]
    fn lenient_forms() {
        let expected = SmsId::from_bytes(BYTES);
        for text in [
            "guid:0123abcd-4567-89ef-abcd-ef0123456789",
            "Guid:0123ABCD-4567-89ef-ABCD-ef0123456789",
            "gUiD:0123ABCD-4567-89EF-ABCD-EF0123456789",
            "0123ABCD-4567-89EF-ABCD-EF0123456789",
            "0123abcd-4567-89ef-abcd-ef0123456789",
            " GUID:0123ABCD-4567-89EF-ABCD-EF0123456789\r\n",
            "\t0123abcd-4567-89ef-abcd-ef0123456789\n",
        ] {
            assert_eq!(text.parse::<SmsId>(), Ok(expected), "{text:?}");
        }
    }

    #[test]
    fn rejections() {
        let cases = [
            ("", "expected 36 characters in 8-4-4-4-12 form"),
            ("GUID:", "expected 36 characters in 8-4-4-4-12 form"),
            ("GUID:{0123ABCD-4567-89EF-ABCD-EF0123456789}", "braces are not allowed"),
            ("{0123ABCD-4567-89EF-ABCD-EF0123456789}", "braces are not allowed"),
            ("GUID:{0123ABCD-4567-89EF-ABCD-EF01234567}", "braces are not allowed"),
            (
                "GUID: 0123ABCD-4567-89EF-ABCD-EF0123456789",
                "expected 36 characters in 8-4-4-4-12 form",
            ),
            (
                "GUID:GUID:0123ABCD-4567-89EF-ABCD-EF0123456789",
                "expected 36 characters in 8-4-4-4-12 form",
            ),
            (
                "UUID:0123ABCD-4567-89EF-ABCD-EF0123456789",
                "expected 36 characters in 8-4-4-4-12 form",
            ),
            ("GUID:0123ABCD-4567-89EF-ABCD-EF01234567\"/", "expected a hex digit"),
            ("GUID:0123ABCD-4567-89EF-ABCD-EF012345678<", "expected a hex digit"),
            ("GUID:0123ABCD_4567-89EF-ABCD-EF0123456789", "expected a dash between groups"),
            ("GUID:0123abcd456789efabcdef0123456789", "expected 36 characters in 8-4-4-4-12 form"),
            (
                "GUID:0123ABCD-4567-89EF-ABCD-EF0123456789X",
                "expected 36 characters in 8-4-4-4-12 form",
            ),
            (
                "GÜID:0123ABCD-4567-89EF-ABCD-EF0123456789",
                "expected 36 characters in 8-4-4-4-12 form",
            ),
        ];
        for (text, reason) in cases {
            assert_eq!(
                SmsId::parse_xml(text),
                Err(ValueError::new(EXPECTED, reason, text)),
                "{text:?}"
            );
        }
    }

    #[test]
    fn constructors_and_conversions() {
        let uuid = Uuid::from_bytes(BYTES);
        assert_eq!(SmsId::new(uuid).uuid(), uuid);
        assert_eq!(SmsId::from(uuid), SmsId::from_bytes(BYTES));
        assert_eq!(Uuid::from(SmsId::from_bytes(BYTES)), uuid);
    }

    #[test]
    fn order_matches_canonical_text() {
        let low = SmsId::from_bytes([0x39; 16]);
        let high = SmsId::from_bytes([0xA0; 16]);
        assert!(low < high);
        assert!(low.to_string() < high.to_string());
    }

    #[test]
    fn serde_uses_canonical_string() {
        let id = SmsId::from_bytes(BYTES);
        assert_eq!(serde_json::to_string(&id).unwrap(), format!("\"{CANONICAL}\""));
        let back: SmsId =
            serde_json::from_str("\"guid:0123abcd-4567-89ef-abcd-ef0123456789\"").unwrap();
        assert_eq!(back, id);
        let err = serde_json::from_str::<SmsId>("\"GUID:nope\"").unwrap_err().to_string();
        assert!(err.contains("invalid SMS client ID"), "{err}");
    }

    #[test]
    fn maybe_empty_is_none() {
        assert_eq!(MaybeSmsId::parse_xml(""), Ok(MaybeSmsId(None)));
        assert_eq!(MaybeSmsId::parse_xml(" \r\n\t"), Ok(MaybeSmsId::NONE));
        assert_eq!(xml(&MaybeSmsId::NONE), "");
        assert_eq!(MaybeSmsId::default(), MaybeSmsId::NONE);
    }

    #[test]
    fn maybe_some_round_trips() {
        let id = SmsId::from_bytes(BYTES);
        let maybe = MaybeSmsId::parse_xml("guid:0123abcd-4567-89ef-abcd-ef0123456789").unwrap();
        assert_eq!(maybe, MaybeSmsId(Some(id)));
        assert_eq!(xml(&maybe), CANONICAL);
        assert_eq!(maybe.to_string(), CANONICAL);
        assert_eq!(MaybeSmsId::from(id), maybe);
        assert_eq!(MaybeSmsId::from(Some(id)), maybe);
        assert_eq!(Option::<SmsId>::from(maybe), Some(id));
    }

    #[test]
    fn maybe_rejects_like_sms_id() {
        assert_eq!(
            MaybeSmsId::parse_xml("GUID:{x}"),
            Err(ValueError::new(EXPECTED, "braces are not allowed", "GUID:{x}"))
        );
        assert_eq!(
            MaybeSmsId::parse_xml("none"),
            Err(ValueError::new(EXPECTED, "expected 36 characters in 8-4-4-4-12 form", "none"))
        );
    }

    #[test]
    fn maybe_serde() {
        assert_eq!(serde_json::to_string(&MaybeSmsId::NONE).unwrap(), "\"\"");
        assert_eq!(serde_json::from_str::<MaybeSmsId>("\"\"").unwrap(), MaybeSmsId::NONE);
        let some = MaybeSmsId::from(SmsId::from_bytes(BYTES));
        assert_eq!(serde_json::to_string(&some).unwrap(), format!("\"{CANONICAL}\""));
        assert_eq!(serde_json::from_str::<MaybeSmsId>(&format!("\"{CANONICAL}\"")).unwrap(), some);
    }

    proptest! {
        #[test]
        fn write_then_parse_round_trips(bytes in any::<[u8; 16]>()) {
            let id = SmsId::from_bytes(bytes);
            let text = xml(&id);
            prop_assert_eq!(SmsId::parse_xml(&text), Ok(id));
            prop_assert_eq!(SmsId::parse_xml(&text.to_lowercase()), Ok(id));
            prop_assert_eq!(SmsId::parse_xml(&text[5..]), Ok(id));
        }

        #[test]
        fn maybe_write_then_parse_round_trips(bytes in proptest::option::of(any::<[u8; 16]>())) {
            let maybe = MaybeSmsId(bytes.map(SmsId::from_bytes));
            prop_assert_eq!(MaybeSmsId::parse_xml(&xml(&maybe)), Ok(maybe));
        }

        #[test]
        fn parse_never_panics(text in any::<String>()) {
            let _ = SmsId::parse_xml(&text);
            let _ = MaybeSmsId::parse_xml(&text);
        }

        #[test]
        fn accepted_text_holds_only_hex_and_dashes(
            bytes in any::<[u8; 16]>(),
            index in 0usize..41,
            replacement in "[0-9a-hA-H{}:<>\"& -]",
        ) {
            let mut text = SmsId::from_bytes(bytes).to_string();
            text.replace_range(index..=index, &replacement);
            if let Ok(id) = SmsId::parse_xml(&text) {
                let trimmed = text.trim_matches(' ');
                let guid = &trimmed[trimmed.len() - 36..];
                prop_assert!(guid.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-'), "{text:?}");
                prop_assert_eq!(guid.to_uppercase(), id.to_string()[5..].to_owned());
            }
        }
    }
}
