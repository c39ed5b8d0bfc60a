//! The numbers of an ambulatory glucose profile (AGP), as the international consensus on
//! CGM reporting defines its parts (Battelino et al., Diabetes Care 2019;42:1593): the
//! modal day (every valid reading of the period by local time of day, its median and the
//! 25–75 % and 5–95 % bands in 15-minute bins), the daily profiles (one per local day, gaps
//! left as gaps) and the data-sufficiency rule (14 days, 70 % of the expected readings).
//!
//! Built from the same pieces as every report ([`crate::rollup::Piece`]): the rollups'
//! 5-minute bins combine, three to a bin, into the profile's 15-minute bins, and their
//! counts give exact percentiles ([`GlucoseCounts::percentile`]). Pure: no storage, no HTTP.
//!
//! Smoothing (the consensus shows smoothed curves; the exact algorithm of the reports it
//! cites is not public): each curve is the 1-2-1 weighted moving average of its bin and the
//! two next to it around the clock (midnight wraps), over the bins that hold readings. The
//! same weights apply to the five curves of a bin, so their order (5 ≤ 25 ≤ 50 ≤ 75 ≤ 95)
//! is kept.

use crate::metrics::GlucoseCounts;
use crate::reading::StoredReading;
use crate::rollup::{self, BIN_MINUTES, Piece};
use crate::time::SourceZone;
use chrono::NaiveDate;
use std::collections::BTreeMap;

/// Width of a profile bin, minutes (the consensus: at most 15).
pub const PROFILE_BIN_MINUTES: u32 = 15;
/// Profile bins in a day.
pub const PROFILE_BINS: usize = (24 * 60 / PROFILE_BIN_MINUTES) as usize;
/// The profile's percentiles.
pub const PERCENTILES: [f64; 5] = [5.0, 25.0, 50.0, 75.0, 95.0];
/// The consensus's minimum for a report: 14 days, and 70 % of the expected readings.
pub const SUFFICIENT_DAYS: f64 = 14.0;
pub const SUFFICIENT_ACTIVE_PERCENT: f64 = 70.0;

/// One 15-minute bin of the modal day.
#[derive(Debug, Clone, PartialEq)]
pub struct ProfileBin {
    /// Minutes after local midnight the bin starts.
    pub start_minute: u32,
    pub readings: u64,
    /// The 5th, 25th, 50th, 75th and 95th percentile (mmol/L) of the bin's readings; `None`
    /// without readings.
    pub percentiles: Option<[f64; 5]>,
    /// The same, smoothed (see the module); `None` without readings in the bin.
    pub smoothed: Option<[f64; 5]>,
}

/// The modal day from the period's 5-minute bins (wall-clock time of day).
pub fn profile(bins: &BTreeMap<u16, GlucoseCounts>) -> Vec<ProfileBin> {
    let per = (PROFILE_BIN_MINUTES / BIN_MINUTES) as u16;
    let mut merged: Vec<GlucoseCounts> = vec![GlucoseCounts::default(); PROFILE_BINS];
    for (b, c) in bins {
        if let Some(m) = merged.get_mut(usize::from(b / per)) {
            m.merge(c);
        }
    }
    let raw: Vec<Option<[f64; 5]>> = merged.iter().map(percentiles).collect();
    (0..PROFILE_BINS)
        .map(|i| ProfileBin {
            start_minute: i as u32 * PROFILE_BIN_MINUTES,
            readings: merged[i].len(),
            percentiles: raw[i],
            smoothed: raw[i].map(|_| smooth(&raw, i)),
        })
        .collect()
}

fn percentiles(c: &GlucoseCounts) -> Option<[f64; 5]> {
    let mut out = [0.0; 5];
    for (o, p) in out.iter_mut().zip(PERCENTILES) {
        *o = c.percentile(p)?;
    }
    Some(out)
}

/// The 1-2-1 average around bin `i` (wrapping at midnight) over the bins with readings.
fn smooth(raw: &[Option<[f64; 5]>], i: usize) -> [f64; 5] {
    let n = raw.len();
    let mut sum = [0.0; 5];
    let mut weight = 0.0;
    for (j, w) in [((i + n - 1) % n, 1.0), (i, 2.0), ((i + 1) % n, 1.0)] {
        if let Some(v) = raw[j] {
            for (s, x) in sum.iter_mut().zip(v) {
                *s += w * x;
            }
            weight += w;
        }
    }
    sum.map(|s| s / weight)
}

/// One local day's profile: the median of each 5-minute bin that holds readings.
#[derive(Debug, Clone, PartialEq)]
pub struct DayProfile {
    pub day: NaiveDate,
    /// The day's length in hours: 23 or 25 on a daylight-saving change.
    pub hours: f64,
    pub readings: u64,
    /// (minutes after local midnight on the wall clock, median mmol/L), by time of day.
    pub points: Vec<(u32, f64)>,
}

/// The profile of each local day from `first` to `last`, from the pieces of a range.
pub fn daily(zone: &SourceZone, pieces: &[Piece], first: NaiveDate, last: NaiveDate) -> Vec<DayProfile> {
    let mut bins: BTreeMap<NaiveDate, BTreeMap<u16, GlucoseCounts>> = BTreeMap::new();
    for piece in pieces {
        match piece {
            Piece::Day(r) => {
                let day = bins.entry(r.day).or_default();
                for (b, c) in &r.bins {
                    day.entry(*b).or_default().merge(c);
                }
            }
            Piece::Readings(rs) => {
                for r in rs.iter().filter(|r| r.valid) {
                    add(&mut bins, zone, r);
                }
            }
        }
    }
    let mut out = Vec::new();
    let mut d = first;
    while d <= last {
        let day_bins = bins.remove(&d).unwrap_or_default();
        let hours = zone.local_day(d).map_or(24.0, |s| s.span_ms() as f64 / 3_600_000.0);
        let points: Vec<(u32, f64)> =
            day_bins.iter().filter_map(|(b, c)| Some((u32::from(*b) * BIN_MINUTES, c.percentile(50.0)?))).collect();
        out.push(DayProfile { day: d, hours, readings: day_bins.values().map(GlucoseCounts::len).sum(), points });
        let Some(next) = d.succ_opt() else { break };
        d = next;
    }
    out
}

fn add(bins: &mut BTreeMap<NaiveDate, BTreeMap<u16, GlucoseCounts>>, zone: &SourceZone, r: &StoredReading) {
    if let Some(day) = zone.local_date(r.measured_at) {
        bins.entry(day).or_default().entry(rollup::bin_of(zone, r.measured_at)).or_default().add(r.mmol);
    }
}

/// Why the data cannot support a report, as the consensus sets the minimum; `None` when it
/// can.
pub fn insufficiency(days: f64, active_percent: f64) -> Option<String> {
    let short = days < SUFFICIENT_DAYS;
    let sparse = active_percent < SUFFICIENT_ACTIVE_PERCENT;
    match (short, sparse) {
        (false, false) => None,
        (true, false) => Some(format!(
            "Only {days:.0} days: the consensus asks for at least 14 days of CGM data for a reliable profile."
        )),
        (false, true) => Some(format!(
            "CGM active {active_percent:.0} % of the time: the consensus asks for at least 70 % of the expected readings."
        )),
        (true, true) => Some(format!(
            "Only {days:.0} days, CGM active {active_percent:.0} % of the time: the consensus asks for at least 14 days \
             and 70 % of the expected readings."
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::Timestamp;

    /// Percentiles as a reader of the consensus would compute them by hand: sort, then
    /// interpolate linearly between closest ranks (h = (n − 1) p / 100).
    fn by_hand(values: &mut [f64], p: f64) -> f64 {
        values.sort_by(f64::total_cmp);
        let h = (values.len() - 1) as f64 * p / 100.0;
        let (lo, frac) = (h.floor() as usize, h - h.floor());
        values[lo] + frac * (values.get(lo + 1).copied().unwrap_or(values[lo]) - values[lo])
    }

    #[test]
    fn profile_percentiles_equal_those_computed_by_hand() {
        // 14 days of 5-minute readings; the value depends on day and time of day.
        let mut bins: BTreeMap<u16, GlucoseCounts> = BTreeMap::new();
        let mut by_profile_bin: Vec<Vec<f64>> = vec![Vec::new(); PROFILE_BINS];
        for day in 0..14u32 {
            for b in 0..288u16 {
                let v = 4.0 + f64::from((day * 7 + u32::from(b) * 3) % 90) / 10.0;
                bins.entry(b).or_default().add(v);
                by_profile_bin[usize::from(b / 3)].push(v);
            }
        }
        let prof = profile(&bins);
        assert_eq!(prof.len(), 96);
        for (bin, values) in prof.iter().zip(by_profile_bin.iter_mut()) {
            assert_eq!(bin.readings, 42);
            let got = bin.percentiles.unwrap();
            for (g, p) in got.iter().zip(PERCENTILES) {
                assert!((g - by_hand(values, p)).abs() < 1e-9, "bin {} p{p}: {g}", bin.start_minute);
            }
            let s = bin.smoothed.unwrap();
            assert!(s.windows(2).all(|w| w[0] <= w[1]), "smoothed bands stay ordered: {s:?}");
        }
        // Smoothing wraps: bin 0's neighbours are 23:45 and 00:15.
        let raw = |i: usize| prof[i].percentiles.unwrap()[2];
        let want = (raw(95) + 2.0 * raw(0) + raw(1)) / 4.0;
        assert!((prof[0].smoothed.unwrap()[2] - want).abs() < 1e-9);
    }

    #[test]
    fn an_empty_bin_is_left_empty_and_not_averaged_in() {
        let mut bins: BTreeMap<u16, GlucoseCounts> = BTreeMap::new();
        bins.entry(0).or_default().add(5.0);
        bins.entry(6).or_default().add(9.0); // 00:30, two profile bins later
        let prof = profile(&bins);
        assert_eq!(prof[1].percentiles, None);
        assert_eq!(prof[1].smoothed, None);
        assert_eq!(prof[0].smoothed.unwrap()[2], 5.0, "its neighbours are empty");
        assert_eq!(prof[2].smoothed.unwrap()[2], 9.0);
    }

    #[test]
    fn days_are_as_long_as_the_zone_makes_them() {
        let berlin: SourceZone = "Europe/Berlin".parse().unwrap();
        let d = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        let start = berlin.local_day(d("2024-03-31")).unwrap().start().ms();
        let readings: Vec<StoredReading> = (0..12)
            .map(|i| StoredReading {
                test_id: format!("t{i}").into(),
                device_sn: "D".into(),
                measured_at: Timestamp::from_ms(start + i * 600_000),
                mmol: 5.0 + i as f64 / 10.0,
                serial_no: Some(i as u64),
                status: Some("0".into()),
                valid: i != 0,
                incre_minute: Some(10),
                low: None,
                high: None,
            })
            .collect();
        let days = daily(&berlin, &[Piece::Readings(readings)], d("2024-03-30"), d("2024-04-01"));
        let hours: Vec<f64> = days.iter().map(|p| p.hours).collect();
        assert_eq!(hours, vec![24.0, 23.0, 24.0]);
        assert_eq!(days[1].readings, 11, "the warm-up reading is left out");
        assert_eq!(days[1].points.first(), Some(&(10, 5.1)));
        assert!(days[0].points.is_empty() && days[2].points.is_empty(), "days without data stay empty");
    }

    #[test]
    fn the_notice_says_what_is_missing() {
        assert_eq!(insufficiency(14.0, 70.0), None);
        assert!(insufficiency(13.0, 90.0).unwrap().contains("14 days"));
        assert!(insufficiency(14.0, 69.9).unwrap().contains("70 %"));
        let both = insufficiency(3.0, 10.0).unwrap();
        assert!(both.contains("3 days") && both.contains("10 %"));
    }
}
