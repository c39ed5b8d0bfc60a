//! `GET /devices/{device_sn}/chart.svg?date=`: one local day of a device's readings as SVG.

use super::MAX_READINGS_IN_MEMORY;
use crate::ReadService;
use crate::chart::{self, ChartInput, ChartPoint};
use crate::error::{ReadError, bad};
use cgm_domain::ids::DeviceSn;
use cgm_domain::store::reads::paging;
use cgm_domain::store::reads::{ReadStore, ReadingQuery};
use cgm_domain::store::rollups::RollupStore;
use cgm_domain::store::sensors::SensorStore;
use cgm_edge::{Answer, Params, reply};
use chrono::Utc;
use lambda_http::http::StatusCode;

impl<S: ReadStore, U: RollupStore, T: SensorStore> ReadService<S, U, T> {
    pub(crate) async fn chart(&self, p: Params<'_>) -> Result<Answer, ReadError> {
        p.only(&["date"])?;
        let sn = DeviceSn::from(p.path("device_sn")?);
        let day = match p.date("date")? {
            Some(d) => d,
            None => {
                let now = Utc::now();
                now.with_timezone(&self.zone.offset_at(now)).date_naive()
            }
        };
        let span = self.zone.local_day(day).ok_or_else(|| bad("date is out of range"))?;
        let range = span.to_included().ok_or_else(|| bad("date is out of range"))?;
        let q = ReadingQuery { device_sn: &sn, range, valid_only: false, newest_first: false };
        let readings = paging::read_all(&self.store, &q, MAX_READINGS_IN_MEMORY).await?;
        let points: Vec<ChartPoint> = readings
            .iter()
            .map(|r| ChartPoint {
                at_ms: r.measured_at.ms(),
                mmol: r.mmol,
                valid: r.valid,
                incre_minute: r.incre_minute,
            })
            .collect();
        // The device's thresholds as of its latest reading that day.
        let low = readings.iter().rev().find_map(|r| r.low);
        let high = readings.iter().rev().find_map(|r| r.high);
        let day_text = day.format("%Y-%m-%d").to_string();
        let zone = self.zone.label();
        let hour_marks: Vec<(u32, i64)> =
            chart::GRID_HOURS.iter().filter_map(|&h| Some((h, self.zone.local_instant(day, h * 60)?.ms()))).collect();
        let svg = chart::render(&ChartInput {
            device_sn: sn.as_str(),
            day: &day_text,
            zone: &zone,
            day_start_ms: span.start().ms(),
            day_end_ms: span.end().ms(),
            points: &points,
            low,
            high,
            hour_marks: &hour_marks,
        });
        Ok(Answer::new(reply::text(StatusCode::OK, "image/svg+xml", svg)).items(points.len()))
    }
}
