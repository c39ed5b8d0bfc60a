//! The glucose statistics of a device's period (what `/summary` answers and the AGP's
//! statistics panel shows), from the period's daily rollups and readings
//! ([`cgm_domain::rollup::Period`]).

use cgm_domain::gaps;
use cgm_domain::ids::DeviceSn;
use cgm_domain::metrics::{self, round_to};
use cgm_domain::rollup::Period;
use cgm_domain::time::{Included, SourceZone, TimeRange};
use serde::Serialize;

const CV_METHOD: &str = "sample standard deviation (n - 1) divided by the mean";

/// What every analysis reply starts with: the device and its range, in UTC ms and in local
/// time.
#[derive(Debug, Serialize)]
pub struct RangeHeader<'a> {
    device_sn: &'a DeviceSn,
    from: i64,
    from_local: Option<String>,
    to: i64,
    to_local: Option<String>,
}

impl<'a> RangeHeader<'a> {
    pub fn new(device_sn: &'a DeviceSn, range: TimeRange<Included>, zone: &SourceZone) -> Self {
        RangeHeader {
            device_sn,
            from: range.start().ms(),
            from_local: zone.format_local_at(range.start()),
            to: range.end().ms(),
            to_local: zone.format_local_at(range.end()),
        }
    }
}

/// The summary of `period`, the counts of `range` (what `/summary` answers, and the
/// statistics of the AGP).
pub fn summary_of<'a>(
    sn: &'a DeviceSn,
    range: TimeRange<Included>,
    zone: &SourceZone,
    period: &Period,
) -> SummaryReply<'a> {
    let valid = usize::try_from(period.glucose.len()).unwrap_or(usize::MAX);
    let interval = period.usual_interval().unwrap_or(gaps::DEFAULT_INCRE_MINUTE);
    let expected = metrics::expected_readings(range.start().ms(), range.end().ms(), interval);
    let s = period.summary();
    let r1 = |v: f64| round_to(v, 1);
    SummaryReply {
        range: RangeHeader::new(sn, range, zone),
        readings: valid,
        invalid_readings_excluded: usize::try_from(period.invalid).unwrap_or(usize::MAX),
        interval_minutes: interval,
        expected_readings: expected,
        capture_percent: r1(metrics::capture_percent(valid, expected)),
        mean_mmol: s.as_ref().map(|s| round_to(s.mean_mmol, 2)),
        mean_mg_dl: s.as_ref().map(|s| r1(s.mean_mg_dl)),
        gmi_percent: s.as_ref().map(|s| r1(s.gmi_percent)),
        sd_mmol: s.as_ref().and_then(|s| s.sd_mmol).map(|v| round_to(v, 2)),
        cv_percent: s.as_ref().and_then(|s| s.cv_percent).map(r1),
        cv_method: CV_METHOD,
        time_in_ranges_percent: s.as_ref().map(|s| TimeInRanges {
            very_low_below_3_0: r1(s.bands.very_low),
            low_3_0_to_3_9: r1(s.bands.low),
            in_range_3_9_to_10_0: r1(s.bands.in_range),
            high_10_0_to_13_9: r1(s.bands.high),
            very_high_above_13_9: r1(s.bands.very_high),
        }),
    }
}

#[derive(Debug, Serialize)]
pub struct SummaryReply<'a> {
    #[serde(flatten)]
    pub range: RangeHeader<'a>,
    pub readings: usize,
    pub invalid_readings_excluded: usize,
    pub interval_minutes: u64,
    pub expected_readings: u64,
    pub capture_percent: f64,
    pub mean_mmol: Option<f64>,
    pub mean_mg_dl: Option<f64>,
    pub gmi_percent: Option<f64>,
    pub sd_mmol: Option<f64>,
    pub cv_percent: Option<f64>,
    pub cv_method: &'static str,
    pub time_in_ranges_percent: Option<TimeInRanges>,
}

#[derive(Debug, Serialize)]
pub struct TimeInRanges {
    pub very_low_below_3_0: f64,
    pub low_3_0_to_3_9: f64,
    pub in_range_3_9_to_10_0: f64,
    pub high_10_0_to_13_9: f64,
    pub very_high_above_13_9: f64,
}
