//! Simple XML values of the management-point protocol.
//!
//! Every attribute value and text-only element of a message is one of these
//! types. Each implements [`XmlValue`]: a lenient parser for the lexical form
//! that peers send (spec §3.9, §7) and a writer for the canonical form this
//! crate sends. The typed values also implement [`FromStr`](core::str::FromStr),
//! [`Display`](core::fmt::Display) (canonical form) and serde as their
//! canonical string.
//!
//! Parsers never panic, and a [`ValueError`] never quotes more than 64
//! characters of its input.

use core::fmt::{self, Write as _};
use core::num::IntErrorKind;

mod agent_version;
mod guid;
mod hex_bytes;
mod iso_time;
mod sms_id;
mod sms_time;

pub use agent_version::AgentVersion;
pub use guid::BracedGuid;
pub use hex_bytes::HexBytes;
pub use iso_time::IsoTime;
pub use sms_id::{MaybeSmsId, SmsId};
pub use sms_time::{SmsOffset, SmsTime};

/// A simple XML value: the lexical form of an attribute or a text-only element.
pub trait XmlValue: Sized {
    /// Parses the lexical form (already unescaped). Lenient where the protocol says peers vary.
    ///
    /// # Errors
    ///
    /// Returns a [`ValueError`] when `text` is not a lexical form of the type.
    fn parse_xml(text: &str) -> Result<Self, ValueError>;

    /// Appends the canonical lexical form (unescaped) to `out`.
    fn write_xml(&self, out: &mut String);

    /// The value as a string slice when it is stored as one (lets writers escape in place).
    fn as_xml_str(&self) -> Option<&str> {
        None
    }

    /// Whether the canonical form never holds a character that XML escapes (digits, GUIDs,
    /// times, hex): writers then write it straight into the output, with no escape pass.
    const PLAIN: bool = false;
}

/// A lexical value that does not parse as its type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {expected}: {reason} (found {found:?})")]
pub struct ValueError {
    /// The type that was expected, e.g. `"SMS client ID"`.
    pub expected: &'static str,
    /// Why the input was rejected, e.g. `"bad length"`.
    pub reason: &'static str,
    /// The offending input, cut to at most [`ValueError::MAX_FOUND_CHARS`] characters.
    pub found: String,
}

impl ValueError {
    /// How many characters of the offending input [`ValueError::found`] keeps at most.
    pub const MAX_FOUND_CHARS: usize = 64;

    /// Creates an error, cutting `found` to at most [`ValueError::MAX_FOUND_CHARS`] characters.
    ///
    /// A cut input ends in `…` (which counts towards the limit).
    ///
    /// # Examples
    ///
    /// ```
    /// use cmmp_model::value::ValueError;
    ///
    /// let long = "x".repeat(1000);
    /// let err = ValueError::new("thing", "too long", &long);
    /// assert_eq!(err.found.chars().count(), ValueError::MAX_FOUND_CHARS);
    /// assert!(err.found.ends_with('…'));
    /// ```
    #[must_use]
    pub fn new(expected: &'static str, reason: &'static str, found: &str) -> Self {
        let found = match found.char_indices().nth(Self::MAX_FOUND_CHARS) {
            None => found.to_owned(),
            Some(_) => {
                // Keep room for the ellipsis so the total stays within the limit.
                let cut = found
                    .char_indices()
                    .nth(Self::MAX_FOUND_CHARS - 1)
                    .map_or(found.len(), |(index, _)| index);
                let mut kept = String::with_capacity(cut + '…'.len_utf8());
                kept.push_str(&found[..cut]);
                kept.push('…');
                kept
            }
        };
        Self { expected, reason, found }
    }
}

/// Removes leading and trailing XML whitespace (space, tab, CR, LF).
///
/// Unlike [`str::trim`] this leaves other Unicode white space alone, as XML does.
///
/// # Examples
///
/// ```
/// use cmmp_model::value::trim_xml_whitespace;
///
/// assert_eq!(trim_xml_whitespace("\r\n\t 42 \n"), "42");
/// assert_eq!(trim_xml_whitespace("\u{a0}42"), "\u{a0}42");
/// ```
#[must_use]
pub fn trim_xml_whitespace(text: &str) -> &str {
    text.trim_matches(is_xml_whitespace)
}

/// Whether `c` is one of XML's four white-space characters.
fn is_xml_whitespace(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

/// Appends the `Display` form of `value` to `out`.
fn write_display(out: &mut String, value: &dyn fmt::Display) {
    // Writing into a `String` cannot fail, and the value types' `Display`
    // impls only propagate the writer's errors, so the result is always Ok.
    let _ = write!(out, "{value}");
}

/// Reads the unsigned decimal number in `digits`, which must be all ASCII digits.
///
/// Returns `None` when `digits` is empty, holds anything but `0`–`9`, or overflows `u32`.
fn parse_digits(digits: &[u8]) -> Option<u32> {
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u32, |acc, &b| {
        let digit = char::from(b).to_digit(10)?;
        acc.checked_mul(10)?.checked_add(digit)
    })
}

/// The value of one ASCII hex digit (either case).
fn hex_digit_value(byte: u8) -> Option<u8> {
    let value = HEX_DIGIT[usize::from(byte)];
    (value < 16).then_some(value)
}

/// [`hex_digit_value`] as a table: 16 and up for a byte that is not a hex digit. A signature
/// or key blob is hundreds of digits: one load per digit instead of up to three range tests
/// (with the vector sized up front, decoding a `PayloadSignature` went from 9.8 % to 3.1 % of
/// the emulator's signature check).
const HEX_DIGIT: [u8; 256] = {
    let mut table = [0xFF; 256];
    let mut i = 0;
    while i < 10 {
        table[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        table[b'a' as usize + i] = 10 + i as u8;
        table[b'A' as usize + i] = 10 + i as u8;
        i += 1;
    }
    table
};

/// Implements `FromStr` (via [`XmlValue::parse_xml`]) and serde as the canonical string.
///
/// Invoke it only in a direct submodule of this one: it names `super::XmlValue`.
macro_rules! impl_str_traits {
    ($ty:ty, $expecting:literal) => {
        impl ::core::str::FromStr for $ty {
            type Err = super::ValueError;

            fn from_str(text: &str) -> Result<Self, Self::Err> {
                <Self as super::XmlValue>::parse_xml(text)
            }
        }

        impl ::serde::Serialize for $ty {
            fn serialize<S: ::serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }

        impl<'de> ::serde::Deserialize<'de> for $ty {
            fn deserialize<D: ::serde::Deserializer<'de>>(
                deserializer: D,
            ) -> Result<Self, D::Error> {
                struct StrVisitor;

                impl ::serde::de::Visitor<'_> for StrVisitor {
                    type Value = $ty;

                    fn expecting(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                        f.write_str($expecting)
                    }

                    fn visit_str<E: ::serde::de::Error>(self, text: &str) -> Result<$ty, E> {
                        <$ty as super::XmlValue>::parse_xml(text).map_err(E::custom)
                    }
                }

                deserializer.deserialize_str(StrVisitor)
            }
        }
    };
}
use impl_str_traits;

impl XmlValue for String {
    /// Takes the text as it is: strings keep their white space.
    fn parse_xml(text: &str) -> Result<Self, ValueError> {
        Ok(text.to_owned())
    }

    fn write_xml(&self, out: &mut String) {
        out.push_str(self);
    }

    fn as_xml_str(&self) -> Option<&str> {
        Some(self)
    }
}

impl XmlValue for bool {
    /// Accepts `true`/`false` in any case and `1`/`0`, ignoring surrounding XML white space.
    fn parse_xml(text: &str) -> Result<Self, ValueError> {
        let trimmed = trim_xml_whitespace(text);
        if trimmed == "1" || trimmed.eq_ignore_ascii_case("true") {
            Ok(true)
        } else if trimmed == "0" || trimmed.eq_ignore_ascii_case("false") {
            Ok(false)
        } else {
            Err(ValueError::new("boolean", "expected true, false, 1 or 0", text))
        }
    }

    fn write_xml(&self, out: &mut String) {
        out.push_str(if *self { "true" } else { "false" });
    }

    const PLAIN: bool = true;
}

/// Implements [`XmlValue`] for a primitive integer type.
macro_rules! impl_integer {
    ($($ty:ty => $name:literal),* $(,)?) => {$(
        impl XmlValue for $ty {
            /// Accepts a decimal number with an optional leading sign (`+` for any
            /// integer type, as XML Schema allows), ignoring surrounding XML white space.
            fn parse_xml(text: &str) -> Result<Self, ValueError> {
                trim_xml_whitespace(text).parse::<$ty>().map_err(|err| {
                    let reason = match err.kind() {
                        IntErrorKind::Empty => "empty",
                        IntErrorKind::PosOverflow | IntErrorKind::NegOverflow => "out of range",
                        _ => "not a decimal integer",
                    };
                    ValueError::new($name, reason, text)
                })
            }

            fn write_xml(&self, out: &mut String) {
                push_decimal(out, i128::from(*self));
            }

            const PLAIN: bool = true;
        }
    )*};
}

/// Appends `value` in decimal without going through `core::fmt`.
fn push_decimal(out: &mut String, value: i128) {
    let mut buf = [0u8; 40];
    let mut i = buf.len();
    let negative = value < 0;
    let mut v = value.unsigned_abs();
    loop {
        i -= 1;
        // `v % 10` is below 10, so the cast cannot truncate.
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    if negative {
        i -= 1;
        buf[i] = b'-';
    }
    for &b in &buf[i..] {
        out.push(char::from(b));
    }
}

impl_integer! {
    i8 => "byte (i8)",
    i16 => "short (i16)",
    i32 => "int (i32)",
    i64 => "long (i64)",
    u8 => "unsignedByte (u8)",
    u16 => "unsignedShort (u16)",
    u32 => "unsignedInt (u32)",
    u64 => "unsignedLong (u64)",
}

#[cfg(test)]
mod tests {
    use super::{ValueError, XmlValue, parse_digits, trim_xml_whitespace};
    use proptest::prelude::{any, prop_assert_eq, proptest};

    fn xml<T: XmlValue>(value: &T) -> String {
        let mut out = String::new();
        value.write_xml(&mut out);
        out
    }

    #[test]
    fn value_error_keeps_short_input_whole() {
        let err = ValueError::new("thing", "bad", "abc");
        assert_eq!(err, ValueError { expected: "thing", reason: "bad", found: "abc".to_owned() });
        assert_eq!(err.to_string(), r#"invalid thing: bad (found "abc")"#);
    }

    #[test]
    fn value_error_keeps_exactly_64_chars_whole() {
        let input = "é".repeat(64);
        assert_eq!(ValueError::new("t", "r", &input).found, input);
    }

    #[test]
    fn value_error_cuts_long_input_on_char_boundary() {
        let input = "é".repeat(65);
        let found = ValueError::new("t", "r", &input).found;
        assert_eq!(found.chars().count(), 64);
        assert_eq!(found, format!("{}…", "é".repeat(63)));
    }

    #[test]
    fn trims_only_xml_whitespace() {
        assert_eq!(trim_xml_whitespace(" \t\r\nx y\n"), "x y");
        assert_eq!(trim_xml_whitespace("\u{2003}x"), "\u{2003}x");
        assert_eq!(trim_xml_whitespace(""), "");
    }

    #[test]
    fn parse_digits_reads_decimal_and_rejects_junk() {
        assert_eq!(parse_digits(b"0042"), Some(42));
        assert_eq!(parse_digits(b"4294967295"), Some(u32::MAX));
        assert_eq!(parse_digits(b"4294967296"), None);
        assert_eq!(parse_digits(b""), None);
        assert_eq!(parse_digits(b"+1"), None);
        assert_eq!(parse_digits(b"1a"), None);
    }

    #[test]
    fn string_is_taken_verbatim() {
        let s = String::parse_xml("  a&b <c> ").unwrap();
        assert_eq!(s, "  a&b <c> ");
        assert_eq!(s.as_xml_str(), Some("  a&b <c> "));
        assert_eq!(xml(&s), "  a&b <c> ");
    }

    #[test]
    fn typed_values_have_no_str_view() {
        assert_eq!(true.as_xml_str(), None);
        assert_eq!(7u32.as_xml_str(), None);
    }

    #[test]
    fn bool_parses_all_forms() {
        for text in ["true", "TRUE", "True", "1", " true\n", "\t1\r\n"] {
            assert!(bool::parse_xml(text).unwrap(), "{text:?}");
        }
        for text in ["false", "FALSE", "fAlSe", "0", "\nfalse ", " 0 "] {
            assert!(!bool::parse_xml(text).unwrap(), "{text:?}");
        }
    }

    #[test]
    fn bool_rejects_other_words() {
        for text in ["", "yes", "no", "t", "2", "01", "true false", "\u{a0}true", "+1"] {
            let err = bool::parse_xml(text).unwrap_err();
            assert_eq!(err.expected, "boolean");
            assert_eq!(err.reason, "expected true, false, 1 or 0");
            assert_eq!(err.found, text);
        }
    }

    #[test]
    fn bool_writes_words() {
        assert_eq!(xml(&true), "true");
        assert_eq!(xml(&false), "false");
    }

    #[test]
    fn integers_parse_lenient_forms() {
        assert_eq!(i32::parse_xml(" +42\n"), Ok(42));
        assert_eq!(i32::parse_xml("-0042"), Ok(-42));
        assert_eq!(i8::parse_xml("-128"), Ok(i8::MIN));
        assert_eq!(u8::parse_xml("+255"), Ok(u8::MAX));
        assert_eq!(u64::parse_xml("\t18446744073709551615\r\n"), Ok(u64::MAX));
        assert_eq!(i64::parse_xml("-9223372036854775808"), Ok(i64::MIN));
        assert_eq!(u16::parse_xml("000"), Ok(0));
    }

    #[test]
    fn integers_reject_with_reasons() {
        let cases: [(Result<(), ValueError>, &str, &str, &str); 8] = [
            (u8::parse_xml("256").map(drop), "unsignedByte (u8)", "out of range", "256"),
            (i8::parse_xml("-129").map(drop), "byte (i8)", "out of range", "-129"),
            (u32::parse_xml("-1").map(drop), "unsignedInt (u32)", "not a decimal integer", "-1"),
            (i32::parse_xml("  ").map(drop), "int (i32)", "empty", "  "),
            (i16::parse_xml("1 2").map(drop), "short (i16)", "not a decimal integer", "1 2"),
            (i64::parse_xml("0x10").map(drop), "long (i64)", "not a decimal integer", "0x10"),
            (
                u16::parse_xml("1.0").map(drop),
                "unsignedShort (u16)",
                "not a decimal integer",
                "1.0",
            ),
            (u64::parse_xml("+").map(drop), "unsignedLong (u64)", "not a decimal integer", "+"),
        ];
        for (result, expected, reason, found) in cases {
            assert_eq!(result, Err(ValueError::new(expected, reason, found)));
        }
    }

    #[test]
    fn integers_write_plain_decimal() {
        assert_eq!(xml(&-5i8), "-5");
        assert_eq!(xml(&i64::MIN), "-9223372036854775808");
        assert_eq!(xml(&u64::MAX), "18446744073709551615");
        let mut out = String::from("n=");
        7u16.write_xml(&mut out);
        assert_eq!(out, "n=7");
    }

    proptest! {
        #[test]
        fn string_round_trips(s in any::<String>()) {
            prop_assert_eq!(String::parse_xml(&xml(&s)), Ok(s));
        }

        #[test]
        fn bool_round_trips(b in any::<bool>()) {
            prop_assert_eq!(bool::parse_xml(&xml(&b)), Ok(b));
        }

        #[test]
        fn integers_round_trip(
            a in any::<i8>(), b in any::<i16>(), c in any::<i32>(), d in any::<i64>(),
            e in any::<u8>(), f in any::<u16>(), g in any::<u32>(), h in any::<u64>(),
        ) {
            prop_assert_eq!(i8::parse_xml(&xml(&a)), Ok(a));
            prop_assert_eq!(i16::parse_xml(&xml(&b)), Ok(b));
            prop_assert_eq!(i32::parse_xml(&xml(&c)), Ok(c));
            prop_assert_eq!(i64::parse_xml(&xml(&d)), Ok(d));
            prop_assert_eq!(u8::parse_xml(&xml(&e)), Ok(e));
            prop_assert_eq!(u16::parse_xml(&xml(&f)), Ok(f));
            prop_assert_eq!(u32::parse_xml(&xml(&g)), Ok(g));
            prop_assert_eq!(u64::parse_xml(&xml(&h)), Ok(h));
        }

        #[test]
        fn primitives_parse_any_string_without_panicking(s in any::<String>()) {
            let _ = bool::parse_xml(&s);
            let _ = i8::parse_xml(&s);
            let _ = i64::parse_xml(&s);
            let _ = u64::parse_xml(&s);
        }

        #[test]
        fn value_error_found_is_bounded(s in any::<String>()) {
            let found = ValueError::new("t", "r", &s).found;
            proptest::prop_assert!(found.chars().count() <= ValueError::MAX_FOUND_CHARS);
            if s.chars().count() <= ValueError::MAX_FOUND_CHARS {
                prop_assert_eq!(found, s);
            }
        }
    }
}
