//! ConfigMgr client (agent) versions such as `5.00.9128.1000`.

use core::fmt;

use super::{
    ValueError, XmlValue, impl_str_traits, parse_digits, trim_xml_whitespace, write_display,
};

/// What [`AgentVersion`] errors name as expected.
const EXPECTED: &str = "agent version";

/// A ConfigMgr client version: four numbers, written `5.00.9128.1000`.
///
/// Parsing accepts any four dot-separated decimal numbers (each fitting a
/// `u32`, leading zeros allowed) and ignores surrounding XML white space; the
/// canonical form pads the minor number to two digits and the build and
/// revision to four. Versions order by major, minor, build, then revision.
///
/// # Examples
///
/// ```
/// use cmmp_model::value::AgentVersion;
///
/// let v: AgentVersion = "5.0.9128.1000".parse()?;
/// assert_eq!(v, AgentVersion::new(5, 0, 9128, 1000));
/// assert_eq!(v.to_string(), "5.00.9128.1000");
/// assert!(v < "5.00.9128.1001".parse()?);
/// # Ok::<(), cmmp_model::value::ValueError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct AgentVersion {
    /// The major version, e.g. `5`.
    pub major: u32,
    /// The minor version, e.g. `0` (written `00`).
    pub minor: u32,
    /// The build number, e.g. `9128`.
    pub build: u32,
    /// The revision, e.g. `1000`.
    pub revision: u32,
}

impl AgentVersion {
    /// Builds a version from its four numbers.
    #[must_use]
    pub const fn new(major: u32, minor: u32, build: u32, revision: u32) -> Self {
        Self { major, minor, build, revision }
    }
}

impl fmt::Display for AgentVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:02}.{:04}.{:04}", self.major, self.minor, self.build, self.revision)
    }
}

/// Parses the trimmed lexical form; the error is the reason.
fn parse(text: &str) -> Result<AgentVersion, &'static str> {
    let mut parts = text.split('.');
    let mut next = || -> Result<u32, &'static str> {
        let part = parts.next().ok_or("expected four dot-separated numbers")?;
        if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
            return Err("expected decimal digits between dots");
        }
        parse_digits(part.as_bytes()).ok_or("number out of range")
    };
    let version = AgentVersion::new(next()?, next()?, next()?, next()?);
    if parts.next().is_some() {
        return Err("expected four dot-separated numbers");
    }
    Ok(version)
}

impl XmlValue for AgentVersion {
    fn parse_xml(text: &str) -> Result<Self, ValueError> {
        parse(trim_xml_whitespace(text)).map_err(|reason| ValueError::new(EXPECTED, reason, text))
    }

    fn write_xml(&self, out: &mut String) {
        write_display(out, self);
    }

    const PLAIN: bool = true;
}

impl_str_traits!(AgentVersion, "an agent version such as 5.00.9128.1000");

#[cfg(test)]
mod tests {
    use super::{AgentVersion, EXPECTED, ValueError, XmlValue};
    use proptest::prelude::{any, prop_assert, prop_assert_eq, proptest};

    fn xml(value: &AgentVersion) -> String {
        let mut out = String::new();
        value.write_xml(&mut out);
        out
    }

    #[test]
    fn canonical_round_trip() {
        let v = AgentVersion::parse_xml("5.00.9128.1000").unwrap();
        assert_eq!(v, AgentVersion { major: 5, minor: 0, build: 9128, revision: 1000 });
        assert_eq!(xml(&v), "5.00.9128.1000");
        assert_eq!(v.to_string(), "5.00.9128.1000");
    }

    #[test]
    fn pads_as_the_client_does() {
        assert_eq!(AgentVersion::new(5, 0, 8, 3).to_string(), "5.00.0008.0003");
        assert_eq!(AgentVersion::new(4, 0, 6487, 2000).to_string(), "4.00.6487.2000");
        assert_eq!(AgentVersion::new(12, 345, 67890, 12345).to_string(), "12.345.67890.12345");
        assert_eq!(
            AgentVersion::new(u32::MAX, u32::MAX, u32::MAX, u32::MAX).to_string(),
            "4294967295.4294967295.4294967295.4294967295"
        );
        assert_eq!(AgentVersion::default().to_string(), "0.00.0000.0000");
    }

    #[test]
    fn lenient_forms() {
        let expected = AgentVersion::new(5, 0, 9128, 1000);
        for text in
            ["5.0.9128.1000", "05.000.09128.01000", " 5.00.9128.1000\r\n", "\t5.00.9128.1000"]
        {
            assert_eq!(text.parse::<AgentVersion>(), Ok(expected), "{text:?}");
        }
        assert_eq!("0.0.0.0".parse(), Ok(AgentVersion::default()));
    }

    #[test]
    fn rejections() {
        let cases = [
            ("", "expected decimal digits between dots"),
            ("5", "expected four dot-separated numbers"),
            ("5.00.9128", "expected four dot-separated numbers"),
            ("5.00.9128.1000.1", "expected four dot-separated numbers"),
            ("5.00.9128.1000.", "expected four dot-separated numbers"),
            ("5..9128.1000", "expected decimal digits between dots"),
            (".5.00.9128", "expected decimal digits between dots"),
            ("5.00.9128.", "expected decimal digits between dots"),
            ("5.00.9128.+1", "expected decimal digits between dots"),
            ("5.00.9128.-1", "expected decimal digits between dots"),
            ("v5.00.9128.1000", "expected decimal digits between dots"),
            ("5. 00.9128.1000", "expected decimal digits between dots"),
            ("5,00,9128,1000", "expected decimal digits between dots"),
            ("5.00.9128.٣", "expected decimal digits between dots"),
            ("5.00.9128.4294967296", "number out of range"),
        ];
        for (text, reason) in cases {
            assert_eq!(
                AgentVersion::parse_xml(text),
                Err(ValueError::new(EXPECTED, reason, text)),
                "{text:?}"
            );
        }
    }

    #[test]
    fn orders_numerically() {
        let older = AgentVersion::new(5, 0, 8790, 1000);
        let newer = AgentVersion::new(5, 0, 9128, 1000);
        assert!(older < newer);
        assert!(AgentVersion::new(5, 0, 9999, 9999) < AgentVersion::new(5, 1, 0, 0));
        assert!(AgentVersion::new(4, 99, 9999, 9999) < AgentVersion::new(5, 0, 0, 0));
        assert!(AgentVersion::new(5, 0, 9128, 999) < AgentVersion::new(5, 0, 9128, 1000));
    }

    #[test]
    fn serde_uses_canonical_string() {
        let v = AgentVersion::new(5, 0, 9128, 1000);
        assert_eq!(serde_json::to_string(&v).unwrap(), "\"5.00.9128.1000\"");
        assert_eq!(serde_json::from_str::<AgentVersion>("\"5.0.9128.1000\"").unwrap(), v);
        let err = serde_json::from_str::<AgentVersion>("\"5.0\"").unwrap_err().to_string();
        assert!(err.contains("invalid agent version"), "{err}");
    }

    proptest! {
        #[test]
        fn write_then_parse_round_trips(a in any::<u32>(), b in any::<u32>(), c in any::<u32>(), d in any::<u32>()) {
            let v = AgentVersion::new(a, b, c, d);
            prop_assert_eq!(AgentVersion::parse_xml(&xml(&v)), Ok(v));
        }

        #[test]
        fn parse_never_panics(text in any::<String>()) {
            let _ = AgentVersion::parse_xml(&text);
        }

        #[test]
        fn accepted_text_has_four_numbers(text in "[0-9.]{0,14}") {
            if let Ok(v) = AgentVersion::parse_xml(&text) {
                let numbers: Vec<u32> = text.split('.').map(|part| part.parse().unwrap()).collect();
                prop_assert!(numbers == [v.major, v.minor, v.build, v.revision], "{:?} -> {:?}", text, v);
            }
        }
    }
}
