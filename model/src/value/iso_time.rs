//! ISO 8601 UTC times with whole seconds (`yyyy-MM-ddTHH:mm:ssZ`).

use core::fmt;

use chrono::{DateTime, Datelike, FixedOffset, NaiveDate, NaiveTime, Timelike, Utc};

use super::{
    ValueError, XmlValue, impl_str_traits, parse_digits, trim_xml_whitespace, write_display,
};

/// What [`IsoTime`] errors name as expected.
const EXPECTED: &str = "ISO 8601 time";

/// A UTC time with whole seconds, written `yyyy-MM-ddTHH:mm:ssZ` (spec §7).
///
/// Parsing is lenient: it accepts a fractional second (dropped, not rounded),
/// a `±HH:MM` offset instead of `Z` (converted to UTC), lower-case `t` and
/// `z`, and surrounding XML white space. A time without a zone is rejected.
/// Years outside `0000`–`9999` use XML Schema's extended form (`-0001`,
/// `10000`), so every value can be written and read back.
///
/// # Examples
///
/// ```
/// use cmmp_model::value::IsoTime;
///
/// let t: IsoTime = "2014-01-20T17:18:55Z".parse()?;
/// assert_eq!(t.to_string(), "2014-01-20T17:18:55Z");
///
/// let shifted: IsoTime = "2014-01-20T19:18:55.573+02:00".parse()?;
/// assert_eq!(shifted, t);
/// # Ok::<(), cmmp_model::value::ValueError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IsoTime(DateTime<Utc>);

impl IsoTime {
    /// The current time, truncated to whole seconds.
    #[must_use]
    pub fn now() -> Self {
        Self::from_datetime(Utc::now())
    }

    /// Wraps `datetime`, truncated to whole seconds.
    ///
    /// A leap second (`23:59:60`) becomes the second before it.
    #[must_use]
    pub fn from_datetime(datetime: DateTime<Utc>) -> Self {
        // `with_nanosecond(0)` fails only for a nanosecond value of 2e9 or more,
        // which 0 is not; falling back to the input keeps this total anyway.
        Self(datetime.with_nanosecond(0).unwrap_or(datetime))
    }

    /// The time as a chrono value (its nanoseconds are zero).
    #[must_use]
    pub const fn datetime(&self) -> DateTime<Utc> {
        self.0
    }
}

impl From<DateTime<Utc>> for IsoTime {
    fn from(datetime: DateTime<Utc>) -> Self {
        Self::from_datetime(datetime)
    }
}

impl From<IsoTime> for DateTime<Utc> {
    fn from(time: IsoTime) -> Self {
        time.0
    }
}

impl fmt::Display for IsoTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = &self.0;
        let year = t.year();
        if year < 0 {
            write!(f, "-{:04}", year.unsigned_abs())?;
        } else {
            write!(f, "{year:04}")?;
        }
        write!(
            f,
            "-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            t.month(),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        )
    }
}

/// A forward-only reader over the bytes of a lexical value.
struct Cursor<'a> {
    /// What is left to read.
    rest: &'a [u8],
}

impl<'a> Cursor<'a> {
    /// Consumes `byte` if it comes next.
    fn eat(&mut self, byte: u8) -> bool {
        match self.rest.split_first() {
            Some((&first, rest)) if first == byte => {
                self.rest = rest;
                true
            }
            _ => false,
        }
    }

    /// Consumes the next byte if it is one of `set`, and returns it.
    fn eat_one_of(&mut self, set: &[u8]) -> Option<u8> {
        let (&first, rest) = self.rest.split_first()?;
        if set.contains(&first) {
            self.rest = rest;
            Some(first)
        } else {
            None
        }
    }

    /// Consumes the longest run of ASCII digits (maybe empty).
    fn digits(&mut self) -> &'a [u8] {
        let len = self.rest.iter().take_while(|b| b.is_ascii_digit()).count();
        let (digits, rest) = self.rest.split_at(len);
        self.rest = rest;
        digits
    }

    /// Consumes exactly two ASCII digits.
    fn two_digits(&mut self) -> Option<u32> {
        let (head, rest) = self.rest.split_at_checked(2)?;
        let value = parse_digits(head)?;
        self.rest = rest;
        Some(value)
    }

    /// Consumes two digits, failing with `reason`.
    fn field(&mut self, reason: &'static str) -> Result<u32, &'static str> {
        self.two_digits().ok_or(reason)
    }

    /// Consumes `byte`, failing with `reason`.
    fn separator(&mut self, byte: u8, reason: &'static str) -> Result<(), &'static str> {
        if self.eat(byte) { Ok(()) } else { Err(reason) }
    }
}

/// Parses the trimmed lexical form; the error is the reason.
fn parse(text: &str) -> Result<DateTime<Utc>, &'static str> {
    let mut cur = Cursor { rest: text.as_bytes() };

    let negative = cur.eat(b'-');
    let year_digits = cur.digits();
    if year_digits.len() < 4 {
        return Err("expected a year of at least 4 digits");
    }
    // More than 9 digits could overflow; chrono stops far below that anyway.
    let year = parse_digits(year_digits)
        .filter(|_| year_digits.len() <= 9)
        .and_then(|y| i32::try_from(y).ok())
        .ok_or("year out of range")?;
    let year = if negative { -year } else { year };
    cur.separator(b'-', "expected '-' after the year")?;
    let month = cur.field("expected a 2-digit month")?;
    cur.separator(b'-', "expected '-' after the month")?;
    let day = cur.field("expected a 2-digit day")?;
    cur.eat_one_of(b"Tt").ok_or("expected 'T' after the date")?;
    let hour = cur.field("expected a 2-digit hour")?;
    cur.separator(b':', "expected ':' after the hour")?;
    let minute = cur.field("expected 2-digit minutes")?;
    cur.separator(b':', "expected ':' after the minutes")?;
    let second = cur.field("expected 2-digit seconds")?;
    if cur.eat(b'.') && cur.digits().is_empty() {
        return Err("expected digits after '.'");
    }
    let offset_seconds = match cur.eat_one_of(b"Zz+-") {
        None => return Err("expected a time zone (Z or ±HH:MM)"),
        Some(b'Z' | b'z') => 0,
        Some(sign) => {
            let hours = cur.field("expected a 2-digit zone hour")?;
            cur.separator(b':', "expected ':' in the zone")?;
            let minutes = cur.field("expected 2-digit zone minutes")?;
            if hours > 23 || minutes > 59 {
                return Err("zone offset out of range");
            }
            // Both fields are below 60, so this fits easily.
            let magnitude = i32::try_from(hours * 3600 + minutes * 60).unwrap_or(0);
            if sign == b'-' { -magnitude } else { magnitude }
        }
    };
    if !cur.rest.is_empty() {
        return Err("unexpected characters after the time");
    }

    let date = NaiveDate::from_ymd_opt(year, month, day).ok_or("no such date")?;
    let time = NaiveTime::from_hms_opt(hour, minute, second).ok_or("no such time of day")?;
    let offset = FixedOffset::east_opt(offset_seconds).ok_or("zone offset out of range")?;
    let utc = date.and_time(time).checked_sub_offset(offset).ok_or("year out of range")?;
    Ok(utc.and_utc())
}

impl XmlValue for IsoTime {
    fn parse_xml(text: &str) -> Result<Self, ValueError> {
        parse(trim_xml_whitespace(text))
            .map(Self)
            .map_err(|reason| ValueError::new(EXPECTED, reason, text))
    }

    fn write_xml(&self, out: &mut String) {
        write_display(out, self);
    }

    const PLAIN: bool = true;
}

impl_str_traits!(IsoTime, "an ISO 8601 UTC time such as 2014-01-20T17:18:55Z");

#[cfg(test)]
mod tests {
    use super::{EXPECTED, IsoTime, ValueError, XmlValue};
    use chrono::{DateTime, FixedOffset, NaiveDate, SecondsFormat, TimeZone, Utc};
    use proptest::prelude::{any, prop_assert, prop_assert_eq, proptest};

    fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> IsoTime {
        let naive = NaiveDate::from_ymd_opt(y, mo, d).unwrap().and_hms_opt(h, mi, s).unwrap();
        IsoTime::from_datetime(naive.and_utc())
    }

    fn xml(value: &IsoTime) -> String {
        let mut out = String::new();
        value.write_xml(&mut out);
        out
    }

    #[test]
    fn canonical_round_trip() {
        let t = IsoTime::parse_xml("2014-01-20T17:18:55Z").unwrap();
        assert_eq!(t, at(2014, 1, 20, 17, 18, 55));
        assert_eq!(xml(&t), "2014-01-20T17:18:55Z");
        assert_eq!(t.to_string(), "2014-01-20T17:18:55Z");
    }

    #[test]
    fn pads_every_field() {
        assert_eq!(at(9, 2, 3, 4, 5, 6).to_string(), "0009-02-03T04:05:06Z");
    }

    #[test]
    fn extended_years() {
        assert_eq!(at(0, 1, 1, 0, 0, 0).to_string(), "0000-01-01T00:00:00Z");
        assert_eq!(at(-1, 12, 31, 23, 59, 59).to_string(), "-0001-12-31T23:59:59Z");
        assert_eq!(at(12345, 6, 7, 8, 9, 10).to_string(), "12345-06-07T08:09:10Z");
        assert_eq!("-0001-12-31T23:59:59Z".parse(), Ok(at(-1, 12, 31, 23, 59, 59)));
        assert_eq!("12345-06-07T08:09:10Z".parse(), Ok(at(12345, 6, 7, 8, 9, 10)));
        assert_eq!("-0000-01-01T00:00:00Z".parse(), Ok(at(0, 1, 1, 0, 0, 0)));
    }

    #[test]
    fn lenient_forms() {
        let expected = at(2014, 1, 20, 17, 18, 55);
        for text in [
            "2014-01-20T17:18:55.573Z",
            "2014-01-20T17:18:55.999999999999Z",
            "2014-01-20T17:18:55.0Z",
            "2014-01-20T17:18:55+00:00",
            "2014-01-20T17:18:55-00:00",
            "2014-01-20T17:18:55.5+00:00",
            "2014-01-20T19:48:55+02:30",
            "2014-01-20T12:18:55.1-05:00",
            "2014-01-21T05:18:55+12:00",
            "2014-01-20t17:18:55z",
            " \t2014-01-20T17:18:55Z\r\n",
        ] {
            assert_eq!(IsoTime::parse_xml(text), Ok(expected), "{text:?}");
        }
    }

    #[test]
    fn offsets_cross_day_and_year_boundaries() {
        assert_eq!("2014-01-01T01:00:00+02:00".parse(), Ok(at(2013, 12, 31, 23, 0, 0)));
        assert_eq!("2013-12-31T23:30:00-01:00".parse(), Ok(at(2014, 1, 1, 0, 30, 0)));
        assert_eq!("2016-02-28T23:59:59-23:59".parse(), Ok(at(2016, 2, 29, 23, 58, 59)));
    }

    #[test]
    fn rejections() {
        let cases = [
            ("", "expected a year of at least 4 digits"),
            ("14-01-20T17:18:55Z", "expected a year of at least 4 digits"),
            ("+2014-01-20T17:18:55Z", "expected a year of at least 4 digits"),
            ("1234567890-01-20T17:18:55Z", "year out of range"),
            ("2014/01/20T17:18:55Z", "expected '-' after the year"),
            ("2014-1-20T17:18:55Z", "expected a 2-digit month"),
            ("2014-01_20T17:18:55Z", "expected '-' after the month"),
            ("2014-01-2T17:18:55Z", "expected a 2-digit day"),
            ("2014-01-20 17:18:55Z", "expected 'T' after the date"),
            ("2014-01-20", "expected 'T' after the date"),
            ("2014-01-20T7:18:55Z", "expected a 2-digit hour"),
            ("2014-01-20T17.18:55Z", "expected ':' after the hour"),
            ("2014-01-20T17:1:55Z", "expected 2-digit minutes"),
            ("2014-01-20T17:18", "expected ':' after the minutes"),
            ("2014-01-20T17:18:5Z", "expected 2-digit seconds"),
            ("2014-01-20T17:18:55.Z", "expected digits after '.'"),
            ("2014-01-20T17:18:55", "expected a time zone (Z or ±HH:MM)"),
            ("2014-01-20T17:18:55,5Z", "expected a time zone (Z or ±HH:MM)"),
            ("2014-01-20T17:18:55 Z", "expected a time zone (Z or ±HH:MM)"),
            ("2014-01-20T17:18:55+0000", "expected ':' in the zone"),
            ("2014-01-20T17:18:55+1:00", "expected a 2-digit zone hour"),
            ("2014-01-20T17:18:55+01:0", "expected 2-digit zone minutes"),
            ("2014-01-20T17:18:55+24:00", "zone offset out of range"),
            ("2014-01-20T17:18:55+01:60", "zone offset out of range"),
            ("2014-01-20T17:18:55ZZ", "unexpected characters after the time"),
            ("2014-01-20T17:18:55Z\u{a0}", "unexpected characters after the time"),
            ("2014-01-20T17:18:55+00:00:00", "unexpected characters after the time"),
            ("2014-02-30T17:18:55Z", "no such date"),
            ("2014-13-01T17:18:55Z", "no such date"),
            ("2014-00-01T17:18:55Z", "no such date"),
            ("999999-01-01T00:00:00Z", "no such date"),
            ("2014-01-20T24:00:00Z", "no such time of day"),
            ("2014-01-20T17:60:00Z", "no such time of day"),
            ("2015-06-30T23:59:60Z", "no such time of day"),
            ("262142-12-31T23:59:59-01:00", "year out of range"),
            ("-262143-01-01T00:00:00+01:00", "year out of range"),
        ];
        for (text, reason) in cases {
            assert_eq!(
                IsoTime::parse_xml(text),
                Err(ValueError::new(EXPECTED, reason, text)),
                "{text:?}"
            );
        }
    }

    #[test]
    fn from_datetime_truncates() {
        let precise = Utc.with_ymd_and_hms(2014, 1, 20, 17, 18, 55).unwrap()
            + chrono::TimeDelta::nanoseconds(999_999_999);
        let t = IsoTime::from_datetime(precise);
        assert_eq!(t, at(2014, 1, 20, 17, 18, 55));
        assert_eq!(t.datetime(), Utc.with_ymd_and_hms(2014, 1, 20, 17, 18, 55).unwrap());
        assert_eq!(IsoTime::from(precise), t);
        assert_eq!(DateTime::<Utc>::from(t), t.datetime());
    }

    #[test]
    fn leap_second_becomes_the_second_before() {
        let leap = NaiveDate::from_ymd_opt(2015, 6, 30)
            .unwrap()
            .and_hms_milli_opt(23, 59, 59, 1_500)
            .unwrap();
        let t = IsoTime::from_datetime(leap.and_utc());
        assert_eq!(t, at(2015, 6, 30, 23, 59, 59));
        assert_eq!(t.to_string(), "2015-06-30T23:59:59Z");
    }

    #[test]
    fn now_is_whole_seconds_and_current() {
        let before = Utc::now().timestamp();
        let now = IsoTime::now().datetime();
        let after = Utc::now().timestamp();
        assert_eq!(now.timestamp_subsec_nanos(), 0);
        assert!(before <= now.timestamp() && now.timestamp() <= after);
    }

    #[test]
    fn order_is_chronological() {
        assert!(at(2014, 1, 20, 17, 18, 55) < at(2014, 1, 20, 17, 18, 56));
        assert!(at(-1, 1, 1, 0, 0, 0) < at(0, 1, 1, 0, 0, 0));
    }

    #[test]
    fn serde_uses_canonical_string() {
        let t = at(2014, 1, 20, 17, 18, 55);
        assert_eq!(serde_json::to_string(&t).unwrap(), "\"2014-01-20T17:18:55Z\"");
        assert_eq!(serde_json::from_str::<IsoTime>("\"2014-01-20T17:18:55.1+00:00\"").unwrap(), t);
        let err = serde_json::from_str::<IsoTime>("\"yesterday\"").unwrap_err().to_string();
        assert!(err.contains("invalid ISO 8601 time"), "{err}");
    }

    proptest! {
        #[test]
        fn write_then_parse_round_trips(
            secs in DateTime::<Utc>::MIN_UTC.timestamp()..=DateTime::<Utc>::MAX_UTC.timestamp(),
            nanos in 0u32..1_000_000_000,
        ) {
            let dt = DateTime::from_timestamp(secs, nanos).unwrap();
            let t = IsoTime::from_datetime(dt);
            prop_assert_eq!(t.datetime().timestamp(), secs);
            prop_assert_eq!(IsoTime::parse_xml(&xml(&t)), Ok(t));
        }

        #[test]
        fn offset_forms_convert_to_utc(
            secs in 0i64..253_402_214_400, // years 1970..=9999
            nanos in 0u32..1_000_000_000,
            offset_minutes in -(23 * 60 + 59)..=(23 * 60 + 59),
        ) {
            let dt = DateTime::from_timestamp(secs, nanos).unwrap();
            let zone = FixedOffset::east_opt(offset_minutes * 60).unwrap();
            let local = dt.with_timezone(&zone);
            // Skip the few instants whose local year leaves the 4-digit range chrono writes.
            if (0..=9999).contains(&chrono::Datelike::year(&local)) {
                let text = local.to_rfc3339_opts(SecondsFormat::AutoSi, false);
                prop_assert_eq!(IsoTime::parse_xml(&text), Ok(IsoTime::from_datetime(dt)), "{}", text);
            }
        }

        #[test]
        fn parse_never_panics(text in any::<String>()) {
            let _ = IsoTime::parse_xml(&text);
        }

        #[test]
        fn near_miss_text_never_panics_and_accepted_text_is_canonical_again(
            text in "-?[0-9]{3,7}-[0-9]{1,3}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{0,12})?([Zz]|[+-][0-9]{2}:?[0-9]{2})?",
        ) {
            if let Ok(t) = IsoTime::parse_xml(&text) {
                let canonical = xml(&t);
                prop_assert!(canonical.ends_with('Z'));
                prop_assert_eq!(IsoTime::parse_xml(&canonical), Ok(t));
            }
        }
    }
}
