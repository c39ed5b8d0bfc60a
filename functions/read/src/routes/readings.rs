//! `GET /devices/{device_sn}/readings`: a device's readings by time, JSON or CSV, paged.

use super::{PAGE_BUDGET_BYTES, PAGE_TIME_BUDGET};
use crate::ReadService;
use crate::error::{ReadError, bad};
use crate::params::{self, Format};
use crate::text::csv_field;
use cgm_domain::cursor::{self, QueryHash};
use cgm_domain::ids::{DeviceSn, TestId};
use cgm_domain::store::reads::paging;
use cgm_domain::store::reads::{Position, ReadStore, ReadingQuery, StoredReading};
use cgm_domain::store::rollups::RollupStore;
use cgm_domain::store::sensors::SensorStore;
use cgm_domain::time::{SourceZone, Timestamp};
use cgm_edge::{Answer, Params, reply};
use lambda_http::http::{HeaderValue, StatusCode};
use serde::Serialize;
use std::time::Instant;

pub const READINGS_DEFAULT_LIMIT: usize = 1_000;
pub const READINGS_MAX_LIMIT: usize = 5_000;

const CSV_HEADER: &str =
    "device_sn,test_id,serial_no,measured_at,measured_at_utc,local_time,glucose_mmol,status,valid\r\n";

#[derive(Debug, Serialize)]
struct ReadingOut<'a> {
    test_id: &'a TestId,
    serial_no: Option<u64>,
    measured_at: Timestamp,
    measured_at_utc: Option<String>,
    local_time: Option<String>,
    glucose_mmol: f64,
    status: Option<&'a str>,
    valid: bool,
}

impl<'a> ReadingOut<'a> {
    fn of(r: &'a StoredReading, zone: &SourceZone) -> Self {
        ReadingOut {
            test_id: &r.test_id,
            serial_no: r.serial_no,
            measured_at: r.measured_at,
            measured_at_utc: r.measured_at.utc_text(),
            local_time: zone.format_local_at(r.measured_at),
            glucose_mmol: r.mmol,
            status: r.status.as_deref(),
            valid: r.valid,
        }
    }
}

#[derive(Debug, Serialize)]
struct ReadingsPage<'a> {
    device_sn: &'a DeviceSn,
    from: Option<i64>,
    to: Option<i64>,
    include_invalid: bool,
    readings: Vec<ReadingOut<'a>>,
    next_cursor: Option<String>,
}

fn csv_row(r: &StoredReading, zone: &SourceZone) -> String {
    format!(
        "{},{},{},{},{},{},{},{},{}\r\n",
        csv_field(r.device_sn.as_str()),
        csv_field(r.test_id.as_str()),
        r.serial_no.map(|n| n.to_string()).unwrap_or_default(),
        r.measured_at.ms(),
        r.measured_at.utc_text().unwrap_or_default(),
        zone.format_local_at(r.measured_at).unwrap_or_default(),
        r.mmol,
        csv_field(r.status.as_deref().unwrap_or("")),
        r.valid,
    )
}

impl<S: ReadStore, U: RollupStore, T: SensorStore> ReadService<S, U, T> {
    pub(crate) async fn readings(&self, p: Params<'_>, started: Instant) -> Result<Answer, ReadError> {
        p.only(&["from", "to", "include_invalid", "limit", "format", "cursor"])?;
        let sn = DeviceSn::from(p.path("device_sn")?);
        let bounds = params::bounds(p)?;
        let include_invalid = p.flag("include_invalid")?;
        let limit = p.limit("limit", READINGS_DEFAULT_LIMIT, READINGS_MAX_LIMIT)?;
        let format = params::format(p)?;
        let range = bounds.range();
        let qh = QueryHash::of(&[
            "readings",
            sn.as_str(),
            &range.start().ms().to_string(),
            &range.end().ms().to_string(),
            if include_invalid { "all" } else { "valid" },
        ]);
        let start = match p.cursor::<Position>(qh)? {
            // A start key outside the query's range is refused by DynamoDB: say so here.
            Some(c) if !range.contains(c.measured_at) => return Err(bad("cursor is malformed")),
            start => start,
        };
        let q = ReadingQuery { device_sn: &sn, range, valid_only: !include_invalid, newest_first: false };
        let until = started + PAGE_TIME_BUDGET;
        let zone = self.zone;
        let next_cursor = |p: Option<Position>| p.map(|p| cursor::encode(&p, qh));
        match format {
            Format::Json => {
                let page = paging::fill_page(&self.store, &q, start, limit, PAGE_BUDGET_BYTES, until, |r| {
                    let size = serde_json::to_vec(&ReadingOut::of(r, &zone)).map_or(0, |b| b.len()) + 1;
                    (r.clone(), size)
                })
                .await?;
                let items = page.items.len();
                let body = ReadingsPage {
                    device_sn: &sn,
                    from: bounds.from,
                    to: bounds.to,
                    include_invalid,
                    readings: page.items.iter().map(|r| ReadingOut::of(r, &zone)).collect(),
                    next_cursor: next_cursor(page.next),
                };
                Ok(Answer::new(reply::json(StatusCode::OK, &body)).items(items))
            }
            Format::Csv => {
                let page = paging::fill_page(&self.store, &q, start, limit, PAGE_BUDGET_BYTES, until, |r| {
                    let row = csv_row(r, &zone);
                    let size = row.len();
                    (row, size)
                })
                .await?;
                let items = page.items.len();
                let mut body = String::with_capacity(page.items.iter().map(String::len).sum::<usize>() + 128);
                body.push_str(CSV_HEADER);
                for row in &page.items {
                    body.push_str(row);
                }
                let mut resp = reply::text(StatusCode::OK, "text/csv; charset=utf-8", body);
                // CSV has no room for the cursor: it travels in a header.
                if let Some(next) = next_cursor(page.next)
                    && let Ok(v) = HeaderValue::from_str(&next)
                {
                    resp.headers_mut().insert("x-next-cursor", v);
                }
                resp.headers_mut()
                    .insert("content-disposition", HeaderValue::from_static("attachment; filename=\"readings.csv\""));
                Ok(Answer::new(resp).items(items))
            }
        }
    }
}
