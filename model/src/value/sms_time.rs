//! SMS (CIM) times: `yyyyMMddHHmmss.ffffff±UUU`.

use core::fmt;

use chrono::{DateTime, Datelike, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, Timelike, Utc};

use super::{
    ValueError, XmlValue, impl_str_traits, parse_digits, trim_xml_whitespace, write_display,
};

/// What [`SmsTime`] errors name as expected.
const EXPECTED: &str = "SMS time";

/// The length of every SMS time, `yyyyMMddHHmmss.ffffff±UUU`.
const LEN: usize = 25;

/// The UTC offset of an [`SmsTime`]: minutes east of UTC, or `***` for "zone ignored".
///
/// Written as a sign and exactly three digits (`+000`, `-300`, `+060`) or `+***`.
///
/// # Examples
///
/// ```
/// use cmmp_model::value::SmsOffset;
///
/// assert_eq!(SmsOffset::Minutes(-300).to_string(), "-300");
/// assert_eq!(SmsOffset::UTC.to_string(), "+000");
/// assert_eq!(SmsOffset::Ignored.to_string(), "+***");
/// assert_eq!(SmsOffset::Ignored.minutes(), None);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SmsOffset {
    /// Minutes east of UTC (local time = UTC + minutes), within ±[`SmsOffset::MAX_MINUTES`].
    Minutes(i16),
    /// The zone is to be ignored (`+***`): the date-time is taken as it stands.
    Ignored,
}

impl SmsOffset {
    /// UTC itself, written `+000`.
    pub const UTC: Self = Self::Minutes(0);

    /// The largest offset magnitude that three digits can hold.
    pub const MAX_MINUTES: i16 = 999;

    /// The offset in minutes, or `None` when the zone is ignored.
    #[must_use]
    pub const fn minutes(self) -> Option<i16> {
        match self {
            Self::Minutes(minutes) => Some(minutes),
            Self::Ignored => None,
        }
    }
}

impl fmt::Display for SmsOffset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Minutes(minutes) => {
                let sign = if minutes < 0 { '-' } else { '+' };
                write!(f, "{sign}{:03}", minutes.unsigned_abs())
            }
            Self::Ignored => f.write_str("+***"),
        }
    }
}

/// An SMS/CIM time `yyyyMMddHHmmss.ffffff±UUU` (spec §7), e.g. `20140120171855.573000+000`.
///
/// It is a local date-time with microseconds (the SDK writes milliseconds
/// followed by `000`) and the local zone's offset from UTC in minutes
/// ([`SmsOffset`]). Parsing ignores surrounding XML white space and accepts
/// `-000` and `-***` as well; every other field is fixed-width. Equality is
/// on the fields as written, so `…120000.000000+000` and `…130000.000000+060`
/// differ; compare [`SmsTime::to_utc`] for the instant. The type has no order
/// for the same reason.
///
/// # Examples
///
/// ```
/// use chrono::{TimeZone, Utc};
/// use cmmp_model::value::{SmsOffset, SmsTime};
///
/// let t: SmsTime = "20140120121855.573000-300".parse()?;
/// assert_eq!(t.offset(), SmsOffset::Minutes(-300));
/// assert_eq!(t.to_string(), "20140120121855.573000-300");
///
/// let utc = Utc.with_ymd_and_hms(2014, 1, 20, 17, 18, 55).unwrap()
///     + chrono::TimeDelta::milliseconds(573);
/// assert_eq!(t.to_utc(), Some(utc));
/// assert_eq!(SmsTime::from_utc(utc)?.to_string(), "20140120171855.573000+000");
/// # Ok::<(), cmmp_model::value::ValueError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SmsTime {
    /// The local date-time: years 0000–9999, whole microseconds.
    datetime: NaiveDateTime,
    /// The local zone's offset, within ±999 minutes.
    offset: SmsOffset,
}

impl SmsTime {
    /// Combines a local date-time and its zone's offset, truncating to microseconds.
    ///
    /// A leap second (`:60`) folds into the second before it.
    ///
    /// # Errors
    ///
    /// Returns a [`ValueError`] when the year is outside 0000–9999 or the
    /// offset is beyond ±[`SmsOffset::MAX_MINUTES`]: the format cannot hold them.
    pub fn new(datetime: NaiveDateTime, offset: SmsOffset) -> Result<Self, ValueError> {
        if !(0..=9999).contains(&datetime.year()) {
            return Err(ValueError::new(EXPECTED, "year outside 0000-9999", &datetime.to_string()));
        }
        if let SmsOffset::Minutes(minutes) = offset
            && minutes.unsigned_abs() > SmsOffset::MAX_MINUTES.unsigned_abs()
        {
            return Err(ValueError::new(
                EXPECTED,
                "offset beyond ±999 minutes",
                &minutes.to_string(),
            ));
        }
        // `% 1e9` folds a leap second's extra second away; the rest keeps microseconds.
        let micros = datetime.nanosecond() % 1_000_000_000 / 1_000;
        let time = NaiveTime::from_hms_micro_opt(
            datetime.hour(),
            datetime.minute(),
            datetime.second(),
            micros,
        )
        .ok_or_else(|| ValueError::new(EXPECTED, "no such time of day", &datetime.to_string()))?;
        Ok(Self { datetime: datetime.date().and_time(time), offset })
    }

    /// The UTC time `datetime` with offset `+000`, keeping microseconds.
    ///
    /// # Errors
    ///
    /// Returns a [`ValueError`] when the year is outside 0000–9999.
    pub fn from_utc(datetime: DateTime<Utc>) -> Result<Self, ValueError> {
        Self::new(datetime.naive_utc(), SmsOffset::UTC)
    }

    /// The current UTC time with offset `+000`.
    ///
    /// # Panics
    ///
    /// Only if the system clock says the year is past 9999.
    #[must_use]
    pub fn now_utc() -> Self {
        // Invariant: the clock reads a year within 0000-9999, so `from_utc` succeeds.
        Self::from_utc(Utc::now()).expect("the current year is within 0000-9999")
    }

    /// The local date-time as written (whole microseconds).
    #[must_use]
    pub const fn datetime(&self) -> NaiveDateTime {
        self.datetime
    }

    /// The local zone's offset from UTC as written.
    #[must_use]
    pub const fn offset(&self) -> SmsOffset {
        self.offset
    }

    /// The instant in UTC (local time less the offset), or `None` when the zone is ignored.
    #[must_use]
    pub fn to_utc(&self) -> Option<DateTime<Utc>> {
        let minutes = self.offset.minutes()?;
        let offset = FixedOffset::east_opt(i32::from(minutes) * 60)?;
        Some(self.datetime.checked_sub_offset(offset)?.and_utc())
    }
}

impl fmt::Display for SmsTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = &self.datetime;
        write!(
            f,
            "{:04}{:02}{:02}{:02}{:02}{:02}.{:06}{}",
            t.year(),
            t.month(),
            t.day(),
            t.hour(),
            t.minute(),
            t.second(),
            t.nanosecond() / 1_000,
            self.offset
        )
    }
}

/// Parses the trimmed lexical form; the error is the reason.
fn parse(text: &str) -> Result<SmsTime, &'static str> {
    let bytes = text.as_bytes();
    if bytes.len() != LEN {
        return Err("expected 25 characters (yyyyMMddHHmmss.ffffff±UUU)");
    }
    let field = |range: core::ops::Range<usize>, reason| {
        bytes.get(range).and_then(parse_digits).ok_or(reason)
    };
    let year = field(0..4, "expected a 4-digit year")?;
    let month = field(4..6, "expected a 2-digit month")?;
    let day = field(6..8, "expected a 2-digit day")?;
    let hour = field(8..10, "expected a 2-digit hour")?;
    let minute = field(10..12, "expected 2-digit minutes")?;
    let second = field(12..14, "expected 2-digit seconds")?;
    if bytes[14] != b'.' {
        return Err("expected '.' after the seconds");
    }
    let micros = field(15..21, "expected 6 fraction digits")?;
    let negative = match bytes[21] {
        b'+' => false,
        b'-' => true,
        _ => return Err("expected '+' or '-' before the offset"),
    };
    let offset = if &bytes[22..] == b"***" {
        SmsOffset::Ignored
    } else {
        // Three digits make at most 999, which fits an i16.
        let minutes = field(22..25, "expected a 3-digit offset or ***")?;
        let minutes = i16::try_from(minutes).map_err(|_| "expected a 3-digit offset or ***")?;
        SmsOffset::Minutes(if negative { -minutes } else { minutes })
    };

    // Four digits make at most 9999, which fits an i32.
    let year = i32::try_from(year).map_err(|_| "expected a 4-digit year")?;
    let date = NaiveDate::from_ymd_opt(year, month, day).ok_or("no such date")?;
    let time =
        NaiveTime::from_hms_micro_opt(hour, minute, second, micros).ok_or("no such time of day")?;
    Ok(SmsTime { datetime: date.and_time(time), offset })
}

impl XmlValue for SmsTime {
    fn parse_xml(text: &str) -> Result<Self, ValueError> {
        parse(trim_xml_whitespace(text)).map_err(|reason| ValueError::new(EXPECTED, reason, text))
    }

    fn write_xml(&self, out: &mut String) {
        write_display(out, self);
    }

    const PLAIN: bool = true;
}

impl_str_traits!(SmsTime, "an SMS time such as 20140120171855.573000+000");

#[cfg(test)]
mod tests {
    use super::{EXPECTED, SmsOffset, SmsTime, ValueError, XmlValue};
    use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, TimeDelta, TimeZone, Utc};
    use proptest::prelude::{
        Just, Strategy, any, prop_assert, prop_assert_eq, prop_oneof, proptest,
    };

    fn local(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32, micro: u32) -> NaiveDateTime {
        NaiveDate::from_ymd_opt(y, mo, d).unwrap().and_hms_micro_opt(h, mi, s, micro).unwrap()
    }

    fn xml(value: &SmsTime) -> String {
        let mut out = String::new();
        value.write_xml(&mut out);
        out
    }

    #[test]
    fn canonical_round_trip() {
        let t = SmsTime::parse_xml("20140120171855.573000+000").unwrap();
        assert_eq!(t.datetime(), local(2014, 1, 20, 17, 18, 55, 573_000));
        assert_eq!(t.offset(), SmsOffset::UTC);
        assert_eq!(xml(&t), "20140120171855.573000+000");
        assert_eq!(t.to_string(), "20140120171855.573000+000");
    }

    #[test]
    fn offsets_round_trip() {
        for text in [
            "20140120121855.573000-300",
            "20140120181855.000001+060",
            "00010101000000.000000-999",
            "99991231235959.999999+999",
            "20140120171855.573000+***",
        ] {
            assert_eq!(xml(&SmsTime::parse_xml(text).unwrap()), text);
        }
    }

    #[test]
    fn lenient_forms() {
        let utc = SmsTime::new(local(2014, 1, 20, 17, 18, 55, 573_000), SmsOffset::UTC).unwrap();
        let ignored =
            SmsTime::new(local(2014, 1, 20, 17, 18, 55, 573_000), SmsOffset::Ignored).unwrap();
        assert_eq!(SmsTime::parse_xml("20140120171855.573000-000"), Ok(utc));
        assert_eq!(SmsTime::parse_xml(" \t20140120171855.573000+000\r\n"), Ok(utc));
        assert_eq!(SmsTime::parse_xml("20140120171855.573000-***"), Ok(ignored));
        assert_eq!(ignored.to_string(), "20140120171855.573000+***");
    }

    #[test]
    fn rejections() {
        let cases = [
            ("", "expected 25 characters (yyyyMMddHHmmss.ffffff±UUU)"),
            ("20140120171855.573+000", "expected 25 characters (yyyyMMddHHmmss.ffffff±UUU)"),
            ("20140120171855.573000000+000", "expected 25 characters (yyyyMMddHHmmss.ffffff±UUU)"),
            ("20140120171855.573000+0000", "expected 25 characters (yyyyMMddHHmmss.ffffff±UUU)"),
            ("2014-01-20T17:18:55.573000Z", "expected 25 characters (yyyyMMddHHmmss.ffffff±UUU)"),
            ("2014012017185é.573000+000", "expected 25 characters (yyyyMMddHHmmss.ffffff±UUU)"),
            ("201a0120171855.573000+000", "expected a 4-digit year"),
            ("+0140120171855.573000+000", "expected a 4-digit year"),
            ("2014 120171855.573000+000", "expected a 2-digit month"),
            ("201401-0171855.573000+000", "expected a 2-digit day"),
            ("20140120**1855.573000+000", "expected a 2-digit hour"),
            ("2014012017x855.573000+000", "expected 2-digit minutes"),
            ("201401201718+5.573000+000", "expected 2-digit seconds"),
            ("20140120171855,573000+000", "expected '.' after the seconds"),
            ("20140120171855.57300a+000", "expected 6 fraction digits"),
            ("20140120171855.573000:000", "expected '+' or '-' before the offset"),
            ("20140120171855.573000 000", "expected '+' or '-' before the offset"),
            ("20140120171855.573000+0*0", "expected a 3-digit offset or ***"),
            ("20140120171855.573000+**0", "expected a 3-digit offset or ***"),
            ("20140120171855.573000+-01", "expected a 3-digit offset or ***"),
            ("20141320171855.573000+000", "no such date"),
            ("20140229171855.573000+000", "no such date"),
            ("20140100171855.573000+000", "no such date"),
            ("20140120241855.573000+000", "no such time of day"),
            ("20140120176055.573000+000", "no such time of day"),
            ("20140120171860.573000+000", "no such time of day"),
        ];
        for (text, reason) in cases {
            assert_eq!(
                SmsTime::parse_xml(text),
                Err(ValueError::new(EXPECTED, reason, text)),
                "{text:?}"
            );
        }
    }

    #[test]
    fn new_rejects_what_the_format_cannot_hold() {
        let ok = local(2014, 1, 20, 17, 18, 55, 0);
        assert_eq!(
            SmsTime::new(ok, SmsOffset::Minutes(1000)),
            Err(ValueError::new(EXPECTED, "offset beyond ±999 minutes", "1000"))
        );
        assert_eq!(
            SmsTime::new(ok, SmsOffset::Minutes(i16::MIN)),
            Err(ValueError::new(EXPECTED, "offset beyond ±999 minutes", "-32768"))
        );
        assert!(SmsTime::new(ok, SmsOffset::Minutes(-999)).is_ok());
        assert_eq!(
            SmsTime::new(local(10000, 1, 1, 0, 0, 0, 0), SmsOffset::UTC),
            Err(ValueError::new(EXPECTED, "year outside 0000-9999", "+10000-01-01 00:00:00"))
        );
        assert_eq!(
            SmsTime::new(local(-1, 12, 31, 0, 0, 0, 0), SmsOffset::UTC),
            Err(ValueError::new(EXPECTED, "year outside 0000-9999", "-0001-12-31 00:00:00"))
        );
        assert_eq!(
            SmsTime::new(local(0, 1, 1, 0, 0, 0, 0), SmsOffset::UTC).unwrap().to_string(),
            "00000101000000.000000+000"
        );
    }

    #[test]
    fn new_truncates_to_microseconds_and_folds_leap_seconds() {
        let nanos = NaiveDate::from_ymd_opt(2014, 1, 20)
            .unwrap()
            .and_hms_nano_opt(17, 18, 55, 573_999_999)
            .unwrap();
        assert_eq!(
            SmsTime::new(nanos, SmsOffset::UTC).unwrap().datetime(),
            local(2014, 1, 20, 17, 18, 55, 573_999)
        );
        let leap = NaiveDate::from_ymd_opt(2015, 6, 30)
            .unwrap()
            .and_hms_micro_opt(23, 59, 59, 1_250_000)
            .unwrap();
        let t = SmsTime::new(leap, SmsOffset::UTC).unwrap();
        assert_eq!(t.to_string(), "20150630235959.250000+000");
        assert_eq!(SmsTime::parse_xml(&t.to_string()), Ok(t));
    }

    #[test]
    fn to_utc_subtracts_the_offset() {
        let est = SmsTime::parse_xml("20140120121855.573000-300").unwrap();
        let expected =
            Utc.with_ymd_and_hms(2014, 1, 20, 17, 18, 55).unwrap() + TimeDelta::milliseconds(573);
        assert_eq!(est.to_utc(), Some(expected));
        let cet = SmsTime::parse_xml("20140120181855.573000+060").unwrap();
        assert_eq!(cet.to_utc(), Some(expected));
        assert_ne!(est, cet);
        assert_eq!(SmsTime::parse_xml("20140120121855.573000+***").unwrap().to_utc(), None);
        let early = SmsTime::parse_xml("00000101000000.000000+001").unwrap();
        assert_eq!(
            early.to_utc().map(|t| t.to_string()),
            Some("-0001-12-31 23:59:00 UTC".to_owned())
        );
    }

    #[test]
    fn from_utc_keeps_microseconds() {
        let dt = Utc.with_ymd_and_hms(2014, 1, 20, 17, 18, 55).unwrap()
            + TimeDelta::nanoseconds(573_123_999);
        let t = SmsTime::from_utc(dt).unwrap();
        assert_eq!(t.to_string(), "20140120171855.573123+000");
        assert_eq!(t.offset(), SmsOffset::UTC);
        assert_eq!(t.to_utc(), Some(dt - TimeDelta::nanoseconds(999)));
        let far = Utc.with_ymd_and_hms(10000, 1, 1, 0, 0, 0).unwrap();
        assert_eq!(SmsTime::from_utc(far).unwrap_err().reason, "year outside 0000-9999");
    }

    #[test]
    fn now_utc_is_current() {
        let before = Utc::now();
        let now = SmsTime::now_utc();
        let after = Utc::now();
        assert_eq!(now.offset(), SmsOffset::UTC);
        let instant = now.to_utc().unwrap();
        assert!(before - TimeDelta::microseconds(1) <= instant && instant <= after);
    }

    #[test]
    fn offset_helpers() {
        assert_eq!(SmsOffset::Minutes(-300).minutes(), Some(-300));
        assert_eq!(SmsOffset::Minutes(5).to_string(), "+005");
        assert_eq!(SmsOffset::Minutes(-5).to_string(), "-005");
        assert_eq!(SmsOffset::Ignored.minutes(), None);
    }

    #[test]
    fn serde_uses_canonical_string() {
        let t = SmsTime::parse_xml("20140120171855.573000+000").unwrap();
        assert_eq!(serde_json::to_string(&t).unwrap(), "\"20140120171855.573000+000\"");
        assert_eq!(serde_json::from_str::<SmsTime>("\"20140120171855.573000-000\"").unwrap(), t);
        let err = serde_json::from_str::<SmsTime>("\"2014\"").unwrap_err().to_string();
        assert!(err.contains("invalid SMS time"), "{err}");
    }

    fn arb_sms_time() -> impl Strategy<Value = SmsTime> {
        let offset = prop_oneof![
            (-SmsOffset::MAX_MINUTES..=SmsOffset::MAX_MINUTES).prop_map(SmsOffset::Minutes),
            Just(SmsOffset::Ignored),
        ];
        (0i32..=9999, 1u32..=366, 0u32..86_400, 0u32..1_000_000, offset).prop_filter_map(
            "day 366 of a common year",
            |(year, ordinal, secs, micros, offset)| {
                let date = NaiveDate::from_yo_opt(year, ordinal)?;
                let time =
                    chrono::NaiveTime::from_num_seconds_from_midnight_opt(secs, micros * 1_000)?;
                SmsTime::new(date.and_time(time), offset).ok()
            },
        )
    }

    proptest! {
        #[test]
        fn write_then_parse_round_trips(t in arb_sms_time()) {
            prop_assert_eq!(SmsTime::parse_xml(&xml(&t)), Ok(t));
        }

        #[test]
        fn to_utc_is_the_local_time_less_the_offset(t in arb_sms_time()) {
            match t.offset() {
                SmsOffset::Ignored => prop_assert_eq!(t.to_utc(), None),
                SmsOffset::Minutes(minutes) => {
                    let utc: DateTime<Utc> = t.to_utc().unwrap();
                    let zone = FixedOffset::east_opt(i32::from(minutes) * 60).unwrap();
                    prop_assert_eq!(utc.with_timezone(&zone).naive_local(), t.datetime());
                }
            }
        }

        #[test]
        fn from_utc_round_trips_through_to_utc(
            secs in -62_167_219_200i64..253_402_300_800, // years 0000..=9999
            nanos in 0u32..1_000_000_000,
        ) {
            let dt = DateTime::from_timestamp(secs, nanos).unwrap();
            let t = SmsTime::from_utc(dt).unwrap();
            prop_assert_eq!(t.to_utc(), DateTime::from_timestamp(secs, nanos / 1_000 * 1_000));
            prop_assert_eq!(SmsTime::parse_xml(&xml(&t)), Ok(t));
        }

        #[test]
        fn parse_never_panics(text in any::<String>()) {
            let _ = SmsTime::parse_xml(&text);
        }

        #[test]
        fn near_miss_text_is_canonical_when_accepted(text in "[0-9]{14}[.,][0-9]{6}[+*-][0-9*]{3}") {
            if let Ok(t) = SmsTime::parse_xml(&text) {
                let canonical = xml(&t);
                prop_assert_eq!(canonical.len(), 25);
                prop_assert_eq!(SmsTime::parse_xml(&canonical), Ok(t));
                let spelled_same = canonical == text
                    || canonical.replacen('+', "-", 1) == text;
                prop_assert!(spelled_same, "{} -> {}", text, canonical);
            }
        }
    }
}
