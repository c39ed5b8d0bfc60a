//! The numbers of a device's ambulatory glucose profile over a period of local days
//! ([`cgm_domain::agp`]): the statistics and the consensus targets beside them, the time in
//! ranges, the modal day's percentiles in 15-minute bins, each day's profile and the
//! data-sufficiency notice; and the page that draws them. What `agp.json`, `agp.svg`,
//! `agp.pdf` and FHIR's summary PDF all show.

use crate::summary::{SummaryReply, summary_of};
use cgm_domain::agp::{self, DayProfile, ProfileBin};
use cgm_domain::ids::DeviceSn;
use cgm_domain::metrics::round_to;
use cgm_domain::rollup::Period;
use cgm_domain::store::reads::ReadStore;
use cgm_domain::store::reads::paging::ReadAllError;
use cgm_domain::store::rollups::{Bins, RollupStore, read_range};
use cgm_domain::time::{Included, SourceZone, TimeRange};
use serde::Serialize;

/// A backstop far above what 90 days can hold, so a runaway device cannot exhaust memory.
pub const MAX_READINGS_IN_MEMORY: usize = 200_000;

/// The consensus reports on 14 days; a report covers at most 90.
pub const AGP_DEFAULT_DAYS: u32 = 14;
pub const AGP_MAX_DAYS: u32 = 90;

/// Whom the targets are for, as the consensus sets them (Battelino et al. 2019, table 3).
pub const TARGETS_FOR: &str = "most adults with type 1 or type 2 diabetes; older or high-risk patients and \
                               pregnancy have other targets";

/// One consensus target beside its value.
#[derive(Debug, Serialize)]
pub struct Target {
    pub measure: &'static str,
    pub label: &'static str,
    pub value: Option<f64>,
    pub target: &'static str,
    pub met: Option<bool>,
}

pub const SMOOTHING: &str = "1-2-1 weighted moving average of each 15-minute bin and its two neighbours \
                                    (midnight wraps), over the bins with readings";

/// The consensus targets (Battelino et al. 2019) beside the period's values.
pub fn targets(s: &SummaryReply<'_>) -> Vec<Target> {
    let tir = s.time_in_ranges_percent.as_ref();
    let t = |measure, label, value: Option<f64>, target, met: fn(f64) -> bool| Target {
        measure,
        label,
        value,
        target,
        met: value.map(met),
    };
    vec![
        t("tir", "Time in range 3.9–10.0 mmol/L", tir.map(|r| r.in_range_3_9_to_10_0), "> 70 %", |v| v > 70.0),
        t("tbr", "Time below 3.9 mmol/L", tir.map(|r| r.low_3_0_to_3_9 + r.very_low_below_3_0), "< 4 %", |v| v < 4.0),
        t("tbr_very_low", "Time below 3.0 mmol/L", tir.map(|r| r.very_low_below_3_0), "< 1 %", |v| v < 1.0),
        t("tar", "Time above 10.0 mmol/L", tir.map(|r| r.high_10_0_to_13_9 + r.very_high_above_13_9), "< 25 %", |v| {
            v < 25.0
        }),
        t("tar_very_high", "Time above 13.9 mmol/L", tir.map(|r| r.very_high_above_13_9), "< 5 %", |v| v < 5.0),
        t("cv", "Glucose variability (CV)", s.cv_percent, "≤ 36 %", |v| v <= 36.0),
    ]
}

/// The page's numbers: what the JSON route answers and the SVG draws.
pub struct AgpData<'a> {
    pub summary: SummaryReply<'a>,
    pub days: f64,
    pub notice: Option<String>,
    pub profile: Vec<ProfileBin>,
    pub daily: Vec<DayProfile>,
}

/// The AGP of `sn` over `range` (whole local days, the first and last possibly partial), from
/// the daily rollups with their 5-minute bins and the readings of days without one.
pub async fn agp_data<'a, S: ReadStore, U: RollupStore>(
    store: &S,
    rollups: &U,
    zone: &SourceZone,
    sn: &'a DeviceSn,
    range: TimeRange<Included>,
) -> Result<AgpData<'a>, ReadAllError> {
    let pieces = read_range(store, rollups, zone, sn, range, Bins::With, MAX_READINGS_IN_MEMORY).await?;
    let period = Period::of(zone, &pieces);
    let summary = summary_of(sn, range, zone, &period);
    let days = round_to((range.span_ms() + 1) as f64 / 86_400_000.0, 2);
    let notice = agp::insufficiency(days, summary.capture_percent);
    let daily = match (zone.local_date(range.start()), zone.local_date(range.end())) {
        (Some(f), Some(l)) => agp::daily(zone, &pieces, f, l),
        _ => Vec::new(),
    };
    Ok(AgpData { profile: agp::profile(&period.bins), summary, days, notice, daily })
}

/// The drawn page of one request (the SVG, and the PDF made from it).
pub struct AgpPage {
    pub svg: String,
    /// The readings behind it, for the request's log line.
    pub readings: usize,
    /// The first and last local day, `YYYY-MM-DD`.
    pub first_day: String,
    pub last_day: String,
}

/// The drawn page of `data`, with what a reply says about it.
pub fn agp_page(sn: &DeviceSn, zone: &SourceZone, data: &AgpData<'_>, patient: Option<&str>) -> AgpPage {
    let day = |d: Option<&DayProfile>| d.map(|d| d.day.format("%Y-%m-%d").to_string()).unwrap_or_default();
    AgpPage {
        svg: page_svg(sn, zone, data, patient),
        readings: data.summary.readings,
        first_day: day(data.daily.first()),
        last_day: day(data.daily.last()),
    }
}

/// The page of `data`, drawn ([`crate::page`]), with `patient` as a line of its header
/// when given (the PDF's, with `AGP_PATIENT_FIELDS=true`).
pub fn page_svg(sn: &DeviceSn, zone: &SourceZone, data: &AgpData<'_>, patient: Option<&str>) -> String {
    use crate::page::{self, Page, Range, Stat};
    let s = &data.summary;
    let first = data.daily.first().map(|d| d.day.format("%Y-%m-%d").to_string()).unwrap_or_default();
    let last = data.daily.last().map(|d| d.day.format("%Y-%m-%d").to_string()).unwrap_or_default();
    let period = format!("{first} – {last} ({} days)", data.days);
    let or_dash = |v: Option<String>| v.unwrap_or_else(|| "–".to_string());
    let stats = [
        Stat { label: "Days".into(), value: format!("{}", data.days), target: "14 days or more".into() },
        Stat {
            label: "% time CGM active".into(),
            value: format!("{:.1} %", s.capture_percent),
            target: "70 % or more".into(),
        },
        Stat {
            label: "Mean glucose".into(),
            value: or_dash(s.mean_mmol.zip(s.mean_mg_dl).map(|(m, g)| format!("{m:.1} mmol/L ({g:.0} mg/dL)"))),
            target: String::new(),
        },
        Stat {
            label: "Glucose management indicator (GMI)".into(),
            value: or_dash(s.gmi_percent.map(|v| format!("{v:.1} %"))),
            target: String::new(),
        },
        Stat {
            label: "Glucose variability (CV)".into(),
            value: or_dash(s.cv_percent.map(|v| format!("{v:.1} %"))),
            target: "36 % or less".into(),
        },
        Stat {
            label: "Warm-up readings excluded".into(),
            value: s.invalid_readings_excluded.to_string(),
            target: String::new(),
        },
    ];
    let tir = s.time_in_ranges_percent.as_ref();
    let ranges = [
        Range {
            class: "very-high",
            label: "Very high, above 13.9 mmol/L",
            percent: tir.map(|t| t.very_high_above_13_9),
            target: "< 5 %",
            colour: "#e67e22",
        },
        Range {
            class: "high",
            label: "High, 10.1–13.9 mmol/L",
            percent: tir.map(|t| t.high_10_0_to_13_9),
            target: "< 25 % with very high",
            colour: "#f7c873",
        },
        Range {
            class: "in-range",
            label: "In range, 3.9–10.0 mmol/L",
            percent: tir.map(|t| t.in_range_3_9_to_10_0),
            target: "> 70 %",
            colour: "#2e9e44",
        },
        Range {
            class: "low",
            label: "Low, 3.0–3.8 mmol/L",
            percent: tir.map(|t| t.low_3_0_to_3_9),
            target: "< 4 % with very low",
            colour: "#e74c3c",
        },
        Range {
            class: "very-low",
            label: "Very low, below 3.0 mmol/L",
            percent: tir.map(|t| t.very_low_below_3_0),
            target: "< 1 %",
            colour: "#922b21",
        },
    ];
    page::render(&Page {
        device_sn: sn.as_str(),
        period: &period,
        zone,
        stats: &stats,
        targets_for: TARGETS_FOR,
        ranges: &ranges,
        profile: &data.profile,
        daily: &data.daily,
        notice: data.notice.as_deref(),
        smoothing: SMOOTHING,
        patient,
    })
}
