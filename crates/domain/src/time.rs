//! The zone Sinocare's zone-less `testTime` is read in, and turning it into a UTC instant.
//!
//! The spec gives `yyyy-MM-dd HH:mm:ss` with no zone; Sinocare's devices and cloud run on
//! China Standard Time (UTC+8, no daylight saving), so that is the default. A time that
//! carries its own offset (ISO-8601 / RFC 3339) is taken as given.

use chrono::{DateTime, FixedOffset, LocalResult, NaiveDate, NaiveDateTime, Offset, SecondsFormat, TimeZone, Utc};
use chrono_tz::Tz;
use std::str::FromStr;

/// `SOURCE_TIMEZONE`: a fixed offset (`+08:00`, `-05:30`, `UTC`) or an IANA zone name
/// (`Asia/Shanghai`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SourceZone {
    Fixed(FixedOffset),
    Named(Tz),
}

impl Default for SourceZone {
    fn default() -> Self {
        SourceZone::Fixed(FixedOffset::east_opt(8 * 3600).expect("UTC+8 is a valid offset"))
    }
}

impl SourceZone {
    /// The zone's IANA name, as clients that take one want it: the name itself, or for a
    /// whole-hour offset the `Etc/GMT` zone of that offset (POSIX signs: +08:00 is
    /// `Etc/GMT-8`). `None` for an offset no IANA zone has.
    pub fn iana_name(&self) -> Option<String> {
        match self {
            SourceZone::Named(tz) => Some(tz.name().to_string()),
            SourceZone::Fixed(o) => {
                let s = o.local_minus_utc();
                match (s % 3600, s / 3600) {
                    (0, 0) => Some("UTC".to_string()),
                    (0, h) if (-12..=14).contains(&h) => Some(format!("Etc/GMT{:+}", -h)),
                    _ => None,
                }
            }
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
#[error("expected an offset like +08:00 or an IANA zone name like Asia/Shanghai")]
pub struct BadZone;

impl FromStr for SourceZone {
    type Err = BadZone;

    fn from_str(s: &str) -> Result<Self, BadZone> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("utc") || s.eq_ignore_ascii_case("z") {
            return Ok(SourceZone::Fixed(FixedOffset::east_opt(0).ok_or(BadZone)?));
        }
        if s.starts_with('+') || s.starts_with('-') {
            return parse_offset(s).map(SourceZone::Fixed);
        }
        Tz::from_str(s).map(SourceZone::Named).map_err(|_| BadZone)
    }
}

fn parse_offset(s: &str) -> Result<FixedOffset, BadZone> {
    let sign = if s.starts_with('-') { -1 } else { 1 };
    let body = &s[1..];
    let (h, m) = match body.split_once(':') {
        Some((h, m)) => (h, m),
        None if body.len() == 4 => body.split_at(2),
        None => (body, "0"),
    };
    let h: i32 = h.parse().map_err(|_| BadZone)?;
    let m: i32 = m.parse().map_err(|_| BadZone)?;
    if !(0..=14).contains(&h) || !(0..60).contains(&m) {
        return Err(BadZone);
    }
    FixedOffset::east_opt(sign * (h * 3600 + m * 60)).ok_or(BadZone)
}

/// Now, in milliseconds since the Unix epoch: the unit of every stored and vendor time.
pub fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

/// A UTC instant in milliseconds since the Unix epoch: how every stored and vendor time is
/// kept. Arithmetic on it saturates, so no stored value can overflow it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, serde::Serialize)]
#[serde(transparent)]
pub struct Timestamp(i64);

impl Timestamp {
    /// The instant `ms` milliseconds since the Unix epoch (UTC).
    pub const fn from_ms(ms: i64) -> Self {
        Timestamp(ms)
    }

    pub const MIN: Timestamp = Timestamp(i64::MIN);
    pub const MAX: Timestamp = Timestamp(i64::MAX);

    pub fn now() -> Self {
        Timestamp(now_ms())
    }

    pub const fn ms(self) -> i64 {
        self.0
    }

    pub fn plus_ms(self, ms: i64) -> Self {
        Timestamp(self.0.saturating_add(ms))
    }

    pub fn minus_ms(self, ms: i64) -> Self {
        Timestamp(self.0.saturating_sub(ms))
    }

    /// `self - earlier` in ms, saturating.
    pub fn since(self, earlier: Timestamp) -> i64 {
        self.0.saturating_sub(earlier.0)
    }

    pub fn to_datetime(self) -> Option<DateTime<Utc>> {
        DateTime::from_timestamp_millis(self.0)
    }

    /// RFC 3339 in UTC with milliseconds (`2021-11-02T04:33:33.000Z`); `None` outside
    /// chrono's range.
    pub fn utc_text(self) -> Option<String> {
        self.to_datetime().map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true))
    }
}

/// Whether a [`TimeRange`]'s end belongs to it: a marker type, so the range's type says it.
pub trait RangeEnd: Copy + std::fmt::Debug + PartialEq {
    const INCLUDED: bool;
}

/// The end instant is part of the range: the read routes' `from`/`to`, a partner window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Included;

/// The end instant is the first one after the range: a local day (its end is the next
/// day's start).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Excluded;

impl RangeEnd for Included {
    const INCLUDED: bool = true;
}

impl RangeEnd for Excluded {
    const INCLUDED: bool = false;
}

/// A span of time from `start` to `end`, `start <= end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeRange<E: RangeEnd = Included> {
    start: Timestamp,
    end: Timestamp,
    _end: std::marker::PhantomData<E>,
}

impl<E: RangeEnd> TimeRange<E> {
    /// `None` when `start` is after `end`.
    pub fn new(start: Timestamp, end: Timestamp) -> Option<Self> {
        (start <= end).then_some(TimeRange { start, end, _end: std::marker::PhantomData })
    }

    pub fn start(&self) -> Timestamp {
        self.start
    }

    pub fn end(&self) -> Timestamp {
        self.end
    }

    pub fn contains(&self, t: Timestamp) -> bool {
        t >= self.start && if E::INCLUDED { t <= self.end } else { t < self.end }
    }

    /// `end - start` in ms, saturating.
    pub fn span_ms(&self) -> i64 {
        self.end.since(self.start)
    }
}

impl TimeRange<Included> {
    /// Everything: for queries without bounds.
    pub const ALL: TimeRange<Included> =
        TimeRange { start: Timestamp::MIN, end: Timestamp::MAX, _end: std::marker::PhantomData };
}

impl TimeRange<Excluded> {
    /// The same instants with the end included (ms resolution); `None` for an empty range.
    pub fn to_included(self) -> Option<TimeRange<Included>> {
        (self.start < self.end).then(|| TimeRange {
            start: self.start,
            end: self.end.minus_ms(1),
            _end: std::marker::PhantomData,
        })
    }
}

/// Why a `testTime` could not become an instant. Never carries the input text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeError {
    Unparseable,
    /// A wall-clock time skipped by a daylight-saving change in a named zone.
    NotInZone,
}

const LOCAL_FORMATS: [&str; 2] = ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"];

impl SourceZone {
    /// The UTC instant of a Sinocare `testTime`.
    pub fn to_utc(&self, text: &str) -> Result<DateTime<Utc>, TimeError> {
        let text = text.trim();
        if let Ok(with_offset) = DateTime::parse_from_rfc3339(text) {
            return Ok(with_offset.with_timezone(&Utc));
        }
        let naive = LOCAL_FORMATS
            .iter()
            .find_map(|f| NaiveDateTime::parse_from_str(text, f).ok())
            .ok_or(TimeError::Unparseable)?;
        let local = match self {
            SourceZone::Fixed(off) => pick(off.from_local_datetime(&naive)),
            SourceZone::Named(tz) => pick(tz.from_local_datetime(&naive)),
        };
        local.ok_or(TimeError::NotInZone)
    }

    /// An instant as local RFC 3339 text with this zone's offset at that instant, e.g.
    /// `2021-11-02T12:33:33+08:00` (fractional seconds only when there are any).
    pub fn format_local(&self, t: DateTime<Utc>) -> String {
        match self {
            SourceZone::Fixed(off) => t.with_timezone(off).to_rfc3339_opts(SecondsFormat::AutoSi, false),
            SourceZone::Named(tz) => t.with_timezone(tz).to_rfc3339_opts(SecondsFormat::AutoSi, false),
        }
    }

    /// The zone's offset from UTC at an instant (a named zone's changes with daylight saving).
    pub fn offset_at(&self, t: DateTime<Utc>) -> FixedOffset {
        match self {
            SourceZone::Fixed(off) => *off,
            SourceZone::Named(tz) => tz.offset_from_utc_datetime(&t.naive_utc()).fix(),
        }
    }

    /// [`Self::format_local`] of an epoch-ms instant; `None` outside chrono's range.
    pub fn format_local_ms(&self, ms: i64) -> Option<String> {
        DateTime::from_timestamp_millis(ms).map(|t| self.format_local(t))
    }

    /// [`Self::format_local`] of a [`Timestamp`].
    pub fn format_local_at(&self, t: Timestamp) -> Option<String> {
        t.to_datetime().map(|t| self.format_local(t))
    }

    /// The UTC instants (ms) where a local calendar day starts and the next one starts. A
    /// named zone's day may be 23 or 25 hours long; a midnight skipped by daylight saving
    /// starts the day at the first local time that exists.
    pub fn local_day(&self, day: NaiveDate) -> Option<TimeRange<Excluded>> {
        let start = self.day_start(day)?;
        let end = self.day_start(day.succ_opt()?)?;
        TimeRange::new(Timestamp(start.timestamp_millis()), Timestamp(end.timestamp_millis()))
    }

    /// The instants of the local days `first` to `last`, both whole, the end included (ms
    /// resolution): a summary's or a report's period. `None` when a day does not exist or
    /// `first` is after `last`.
    pub fn local_days(&self, first: NaiveDate, last: NaiveDate) -> Option<TimeRange<Included>> {
        TimeRange::new(self.local_day(first)?.start(), self.local_day(last)?.end().minus_ms(1))
    }

    fn day_start(&self, day: NaiveDate) -> Option<DateTime<Utc>> {
        let midnight = day.and_hms_opt(0, 0, 0)?;
        // No zone skips more than a few hours: step forward until a local time exists.
        (0..=4 * 60).find_map(|m| {
            let local = midnight + chrono::Duration::minutes(15 * m);
            match self {
                SourceZone::Fixed(off) => pick(off.from_local_datetime(&local)),
                SourceZone::Named(tz) => pick(tz.from_local_datetime(&local)),
            }
        })
    }

    /// The instant a wall-clock time of `day` is, `minute` minutes after its midnight (1440
    /// is the next midnight): in a repeated hour the earlier, `None` for a time the clocks
    /// skip. A chart's hour grid and an AGP's daily panels place local times with it, so a
    /// 23- or 25-hour day is drawn as long as it is.
    pub fn local_instant(&self, day: NaiveDate, minute: u32) -> Option<Timestamp> {
        if minute >= 24 * 60 {
            return self.local_day(day).map(|d| d.end());
        }
        let local = day.and_hms_opt(minute / 60, minute % 60, 0)?;
        let utc = match self {
            SourceZone::Fixed(off) => pick(off.from_local_datetime(&local)),
            SourceZone::Named(tz) => pick(tz.from_local_datetime(&local)),
        }?;
        Some(Timestamp(utc.timestamp_millis()))
    }

    /// The local calendar day an instant falls on; `None` outside chrono's range.
    pub fn local_date(&self, t: Timestamp) -> Option<NaiveDate> {
        let utc = t.to_datetime()?;
        Some(utc.with_timezone(&self.offset_at(utc)).date_naive())
    }

    /// The zone as people read it in a chart or report: `+08:00`, or the IANA name.
    pub fn label(&self) -> String {
        match self {
            SourceZone::Fixed(off) => off.to_string(),
            SourceZone::Named(tz) => tz.name().to_string(),
        }
    }
}

/// In a repeated hour (clocks going back) the earlier instant is taken: the reading cannot
/// be placed more precisely, and the earlier one keeps a sensor's sequence monotonic.
fn pick<Z: TimeZone>(r: LocalResult<DateTime<Z>>) -> Option<DateTime<Utc>> {
    match r {
        LocalResult::Single(t) => Some(t.with_timezone(&Utc)),
        LocalResult::Ambiguous(early, _) => Some(early.with_timezone(&Utc)),
        LocalResult::None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_instants_follow_the_clock_changes() {
        let berlin: SourceZone = "Europe/Berlin".parse().unwrap();
        let d = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        let at = |day: &str, m: u32| berlin.local_instant(d(day), m).map(|t| t.utc_text().unwrap());
        // 2024-03-31: 02:00-03:00 does not exist; 2024-10-27: 02:00-03:00 happens twice.
        assert_eq!(at("2024-03-31", 60).as_deref(), Some("2024-03-31T00:00:00.000Z"));
        assert_eq!(at("2024-03-31", 150), None);
        assert_eq!(at("2024-03-31", 180).as_deref(), Some("2024-03-31T01:00:00.000Z"));
        assert_eq!(at("2024-10-27", 150).as_deref(), Some("2024-10-27T00:30:00.000Z"), "the earlier");
        assert_eq!(at("2024-10-27", 1440).as_deref(), Some("2024-10-27T23:00:00.000Z"), "the next midnight");
    }

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn zone_less_time_is_china_standard_time_by_default() {
        let z = SourceZone::default();
        assert_eq!(z.to_utc("2021-11-02 12:33:33"), Ok(utc("2021-11-02T04:33:33Z")));
        assert_eq!(z.to_utc("2021-11-02T12:33:33"), Ok(utc("2021-11-02T04:33:33Z")));
    }

    #[test]
    fn explicit_offset_is_taken_as_given() {
        let z: SourceZone = "-05:00".parse().unwrap();
        assert_eq!(z.to_utc("2021-11-02T12:33:33+08:00"), Ok(utc("2021-11-02T04:33:33Z")));
        assert_eq!(z.to_utc("2021-11-02T04:33:33Z"), Ok(utc("2021-11-02T04:33:33Z")));
    }

    #[test]
    fn zones_parse_from_offsets_and_names() {
        assert_eq!("+08:00".parse::<SourceZone>(), Ok(SourceZone::default()));
        assert_eq!("+0800".parse::<SourceZone>(), Ok(SourceZone::default()));
        assert_eq!("+8".parse::<SourceZone>(), Ok(SourceZone::default()));
        assert!(matches!("Asia/Shanghai".parse::<SourceZone>(), Ok(SourceZone::Named(_))));
        assert_eq!("Mars/Olympus".parse::<SourceZone>(), Err(BadZone));
        assert_eq!("+25:00".parse::<SourceZone>(), Err(BadZone));
    }

    #[test]
    fn named_zone_follows_daylight_saving() {
        let z: SourceZone = "Europe/Berlin".parse().unwrap();
        assert_eq!(z.to_utc("2024-07-01 12:00:00"), Ok(utc("2024-07-01T10:00:00Z")));
        assert_eq!(z.to_utc("2024-01-01 12:00:00"), Ok(utc("2024-01-01T11:00:00Z")));
        assert_eq!(z.to_utc("2024-03-31 02:30:00"), Err(TimeError::NotInZone));
        assert_eq!(z.to_utc("2024-10-27 02:30:00"), Ok(utc("2024-10-27T00:30:00Z")));
    }

    #[test]
    fn instants_format_as_local_time_with_the_offset() {
        let z = SourceZone::default();
        assert_eq!(z.format_local(utc("2021-11-02T04:33:33Z")), "2021-11-02T12:33:33+08:00");
        assert_eq!(z.format_local_ms(1_635_827_613_250).as_deref(), Some("2021-11-02T12:33:33.250+08:00"));
        let berlin: SourceZone = "Europe/Berlin".parse().unwrap();
        assert_eq!(berlin.format_local(utc("2024-07-01T10:00:00Z")), "2024-07-01T12:00:00+02:00");
        assert_eq!(berlin.format_local(utc("2024-01-01T11:00:00Z")), "2024-01-01T12:00:00+01:00");
        let zero: SourceZone = "UTC".parse().unwrap();
        assert_eq!(zero.format_local(utc("2024-01-01T11:00:00Z")), "2024-01-01T11:00:00+00:00");
        assert_eq!(berlin.offset_at(utc("2024-07-01T10:00:00Z")).local_minus_utc(), 7_200);
        assert_eq!(z.label(), "+08:00");
        assert_eq!(berlin.label(), "Europe/Berlin");
    }

    #[test]
    fn local_days_have_their_real_length() {
        let day = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        let d = SourceZone::default().local_day(day("2021-11-02")).unwrap();
        assert_eq!(d.start().ms(), utc("2021-11-01T16:00:00Z").timestamp_millis());
        assert_eq!(d.span_ms(), 86_400_000);
        assert!(d.contains(d.start()) && !d.contains(d.end()), "a day excludes the next day's start");
        assert_eq!(d.to_included().unwrap().end(), d.end().minus_ms(1));
        let berlin: SourceZone = "Europe/Berlin".parse().unwrap();
        let d = berlin.local_day(day("2024-03-31")).unwrap();
        assert_eq!(d.start().ms(), utc("2024-03-30T23:00:00Z").timestamp_millis());
        assert_eq!(d.span_ms(), 23 * 3_600_000, "the spring-forward day is 23 hours");
        // Chile starts daylight saving at midnight: 2022-09-11 00:00 never happened there.
        let santiago: SourceZone = "America/Santiago".parse().unwrap();
        let d = santiago.local_day(day("2022-09-11")).unwrap();
        assert_eq!(d.start().ms(), utc("2022-09-11T04:00:00Z").timestamp_millis(), "the day starts at 01:00 -03:00");
    }

    #[test]
    fn ranges_say_whether_their_end_is_in() {
        let r = TimeRange::<Included>::new(Timestamp(10), Timestamp(20)).unwrap();
        assert!(r.contains(Timestamp(20)) && r.contains(Timestamp(10)) && !r.contains(Timestamp(21)));
        assert!(TimeRange::<Included>::new(Timestamp(2), Timestamp(1)).is_none());
        assert_eq!(TimeRange::<Included>::ALL.span_ms(), i64::MAX, "saturates");
        assert!(TimeRange::<Excluded>::new(Timestamp(5), Timestamp(5)).unwrap().to_included().is_none());
        assert_eq!(Timestamp::MAX.plus_ms(1), Timestamp::MAX);
        assert_eq!(Timestamp(1_635_827_613_000).utc_text().as_deref(), Some("2021-11-02T04:33:33.000Z"));
    }

    #[test]
    fn impossible_dates_are_unparseable() {
        let z = SourceZone::default();
        for bad in ["2021-13-45 25:61:00", "", "yesterday", "2021-11-02", "12:33:33"] {
            assert_eq!(z.to_utc(bad), Err(TimeError::Unparseable), "{bad}");
        }
    }
}
