//! `GET /devices/{device_sn}/agp.json` and `agp.svg`: a device's ambulatory glucose
//! profile ([`cgm_agp::report`]) over a period of local days, as numbers for systems that
//! draw their own, or as the one-page drawing.

use crate::ReadService;
use crate::error::ReadError;
use cgm_agp::report::{AGP_DEFAULT_DAYS, AGP_MAX_DAYS, AgpData, SMOOTHING, TARGETS_FOR, Target, targets};
use cgm_agp::summary::SummaryReply;
use cgm_domain::agp;
use cgm_domain::ids::DeviceSn;
use cgm_domain::metrics::round_to;
use cgm_domain::store::reads::ReadStore;
use cgm_domain::store::rollups::RollupStore;
use cgm_domain::store::sensors::SensorStore;
use cgm_domain::time::Timestamp;
use cgm_edge::{Answer, Params, reply};
use lambda_http::http::StatusCode;
use serde::Serialize;

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

impl<S: ReadStore, U: RollupStore, T: SensorStore> ReadService<S, U, T> {
    async fn agp_data<'a>(&self, sn: &'a DeviceSn, p: Params<'_>) -> Result<AgpData<'a>, ReadError> {
        p.only(&["from", "to"])?;
        let range = p.report_range(Timestamp::now(), &self.zone, AGP_DEFAULT_DAYS, AGP_MAX_DAYS)?;
        Ok(cgm_agp::report::agp_data(&self.store, &self.rollups, &self.zone, sn, range).await?)
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

impl<S: ReadStore, U: RollupStore, T: SensorStore> ReadService<S, U, T> {
    /// `GET /devices/{device_sn}/agp.svg`: the same numbers as one page.
    pub(crate) async fn agp_svg(&self, p: Params<'_>) -> Result<Answer, ReadError> {
        let sn = DeviceSn::from(p.path("device_sn")?);
        let data = self.agp_data(&sn, p).await?;
        let page = cgm_agp::report::agp_page(&sn, &self.zone, &data, None);
        Ok(Answer::new(reply::text(StatusCode::OK, "image/svg+xml", page.svg)).items(page.readings))
    }
}
