//! `GET /devices/{device_sn}/agp.json`: the numbers of a device's ambulatory glucose profile
//! ([`cgm_shared::agp`]) over a period of local days: the statistics and the consensus
//! targets beside them, the time in ranges, the modal day's percentiles in 15-minute bins
//! and each day's profile, and the data-sufficiency notice; for systems that draw their own.

use super::analysis::{SummaryReply, summary_of};
use crate::ReadService;
use crate::error::ReadError;
use crate::params;
use cgm_edge::{Answer, Params, reply};
use cgm_shared::agp::{self, DayProfile, ProfileBin};
use cgm_shared::ids::DeviceSn;
use cgm_shared::metrics::round_to;
use cgm_shared::rollup::Period;
use cgm_shared::store::reads::ReadStore;
use cgm_shared::store::rollups::{Bins, RollupStore};
use cgm_shared::store::sensors::SensorStore;
use cgm_shared::time::Timestamp;
use lambda_http::http::StatusCode;
use serde::Serialize;

/// The consensus reports on 14 days; a report covers at most 90.
pub const AGP_DEFAULT_DAYS: u32 = 14;
pub const AGP_MAX_DAYS: u32 = 90;

/// Whom the targets are for, as the consensus sets them (Battelino et al. 2019, table 3).
pub const TARGETS_FOR: &str = "most adults with type 1 or type 2 diabetes; older or high-risk patients and \
                               pregnancy have other targets";

/// One consensus target beside its value.
#[derive(Debug, Serialize)]
pub(crate) struct Target {
    pub measure: &'static str,
    pub label: &'static str,
    pub value: Option<f64>,
    pub target: &'static str,
    pub met: Option<bool>,
}

#[derive(Debug, Serialize)]
struct BinOut {
    start: String,
    readings: u64,
    /// Smoothed 5th … 95th percentiles, mmol/L (what the profile draws).
    #[serde(skip_serializing_if = "Option::is_none")]
    percentiles_mmol: Option<Percentiles>,
    /// The bin's own, before smoothing.
    #[serde(skip_serializing_if = "Option::is_none")]
    raw_percentiles_mmol: Option<Percentiles>,
}

#[derive(Debug, Serialize)]
struct Percentiles {
    p5: f64,
    p25: f64,
    p50: f64,
    p75: f64,
    p95: f64,
}

impl Percentiles {
    fn of(v: [f64; 5]) -> Self {
        let r = |x: f64| round_to(x, 2);
        Percentiles { p5: r(v[0]), p25: r(v[1]), p50: r(v[2]), p75: r(v[3]), p95: r(v[4]) }
    }
}

#[derive(Debug, Serialize)]
struct DayOut {
    date: String,
    hours: f64,
    readings: u64,
    /// `[minutes after local midnight, median mmol/L]` of each 5-minute bin with readings.
    points: Vec<(u32, f64)>,
}

#[derive(Debug, Serialize)]
struct AgpReply<'a> {
    #[serde(flatten)]
    statistics: SummaryReply<'a>,
    zone: String,
    days: f64,
    active_percent: f64,
    sufficient: bool,
    notice: Option<String>,
    targets_for: &'static str,
    targets: Vec<Target>,
    profile_bin_minutes: u32,
    profile_smoothing: &'static str,
    profile: Vec<BinOut>,
    daily: Vec<DayOut>,
}

pub(crate) const SMOOTHING: &str = "1-2-1 weighted moving average of each 15-minute bin and its two neighbours \
                                    (midnight wraps), over the bins with readings";

/// The consensus targets (Battelino et al. 2019) beside the period's values.
pub(crate) fn targets(s: &SummaryReply<'_>) -> Vec<Target> {
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
pub(crate) struct AgpData<'a> {
    pub summary: SummaryReply<'a>,
    pub days: f64,
    pub notice: Option<String>,
    pub profile: Vec<ProfileBin>,
    pub daily: Vec<DayProfile>,
}

impl<S: ReadStore, U: RollupStore, T: SensorStore> ReadService<S, U, T> {
    pub(crate) async fn agp_data<'a>(&self, sn: &'a DeviceSn, p: Params<'_>) -> Result<AgpData<'a>, ReadError> {
        p.only(&["from", "to"])?;
        let range = params::report_range(p, Timestamp::now(), &self.zone, AGP_DEFAULT_DAYS, AGP_MAX_DAYS)?;
        let pieces = self.pieces_with(sn, range, Bins::With).await?;
        let period = Period::of(&self.zone, &pieces);
        let summary = summary_of(sn, range, &self.zone, &period);
        let days = round_to((range.span_ms() + 1) as f64 / 86_400_000.0, 2);
        let notice = agp::insufficiency(days, summary.capture_percent);
        let (first, last) = (self.zone.local_date(range.start()), self.zone.local_date(range.end()));
        let daily = match (first, last) {
            (Some(f), Some(l)) => agp::daily(&self.zone, &pieces, f, l),
            _ => Vec::new(),
        };
        Ok(AgpData { profile: agp::profile(&period.bins), summary, days, notice, daily })
    }

    pub(crate) async fn agp_json(&self, p: Params<'_>) -> Result<Answer, ReadError> {
        let sn = DeviceSn::from(p.path("device_sn")?);
        let AgpData { summary, days, notice, profile, daily } = self.agp_data(&sn, p).await?;
        let items = summary.readings;
        let body = AgpReply {
            zone: self.zone.label(),
            days,
            active_percent: summary.capture_percent,
            sufficient: notice.is_none(),
            notice,
            targets_for: TARGETS_FOR,
            targets: targets(&summary),
            profile_bin_minutes: agp::PROFILE_BIN_MINUTES,
            profile_smoothing: SMOOTHING,
            profile: profile
                .iter()
                .map(|b| BinOut {
                    start: format!("{:02}:{:02}", b.start_minute / 60, b.start_minute % 60),
                    readings: b.readings,
                    percentiles_mmol: b.smoothed.map(Percentiles::of),
                    raw_percentiles_mmol: b.percentiles.map(Percentiles::of),
                })
                .collect(),
            daily: daily
                .into_iter()
                .map(|d| DayOut {
                    date: d.day.format("%Y-%m-%d").to_string(),
                    hours: d.hours,
                    readings: d.readings,
                    points: d.points.into_iter().map(|(m, v)| (m, round_to(v, 2))).collect(),
                })
                .collect(),
            statistics: summary,
        };
        Ok(Answer::new(reply::json(StatusCode::OK, &body)).items(items))
    }
}

/// The drawn page of one request, for the report function's PDF.
pub struct AgpPage {
    pub svg: String,
    /// The readings behind it, for the request's log line.
    pub readings: usize,
    /// The first and last local day, `YYYY-MM-DD`.
    pub first_day: String,
    pub last_day: String,
}

impl<S: ReadStore, U: RollupStore, T: SensorStore> ReadService<S, U, T> {
    /// `GET /devices/{device_sn}/agp.svg`: the same numbers as one page.
    pub(crate) async fn agp_svg(&self, p: Params<'_>) -> Result<Answer, ReadError> {
        let page = self.agp_page(p, None).await?;
        Ok(Answer::new(reply::text(StatusCode::OK, "image/svg+xml", page.svg)).items(page.readings))
    }

    /// The `agp.svg` page of request `p`, with `patient` as a line of its header when given:
    /// what the report function turns into the PDF, so both are the same drawing.
    pub async fn agp_page(&self, p: Params<'_>, patient: Option<&str>) -> Result<AgpPage, ReadError> {
        let sn = DeviceSn::from(p.path("device_sn")?);
        let data = self.agp_data(&sn, p).await?;
        let day = |d: Option<&DayProfile>| d.map(|d| d.day.format("%Y-%m-%d").to_string()).unwrap_or_default();
        Ok(AgpPage {
            svg: page(&sn, &self.zone, &data, patient),
            readings: data.summary.readings,
            first_day: day(data.daily.first()),
            last_day: day(data.daily.last()),
        })
    }
}

/// The page of `data` ([`crate::agp_page`]).
pub(crate) fn page(
    sn: &DeviceSn,
    zone: &cgm_shared::time::SourceZone,
    data: &AgpData<'_>,
    patient: Option<&str>,
) -> String {
    use crate::agp_page::{self, Page, Range, Stat};
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
    agp_page::render(&Page {
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
