//! `GET /devices/{device_sn}/gaps` and `GET /devices/{device_sn}/summary`: what a range of a
//! device's readings says, computed over the whole range.

use super::MAX_READINGS_IN_MEMORY;
use crate::ReadService;
use crate::error::ReadError;
use crate::params::{self, DAY_MS};
use cgm_agp::summary::{RangeHeader, summary_of};
use cgm_domain::cursor::{self, CursorPayload, QueryHash, read_pair};
use cgm_domain::gaps::{Gap, Neighbour};
use cgm_domain::ids::DeviceSn;
use cgm_domain::rollup::{self, Period, Piece};
use cgm_domain::store::reads::paging::{self, Side};
use cgm_domain::store::reads::{ReadStore, StoredReading};
use cgm_domain::store::rollups::{Bins, RollupStore, read_range};
use cgm_domain::store::sensors::SensorStore;
use cgm_domain::time::{Included, SourceZone, TimeRange, Timestamp};
use cgm_edge::{Answer, Params, reply};
use lambda_http::http::StatusCode;
use serde::Serialize;

pub const GAPS_DEFAULT_LIMIT: usize = 1_000;
pub const GAPS_MAX_LIMIT: usize = 5_000;
/// The consensus reports on 14 days; summary and gaps default to the last 14.
pub const ANALYSIS_DEFAULT_MS: i64 = 14 * DAY_MS;
/// Summary and gaps read their whole range: 90 days of one-minute readings is 129,600.
pub const ANALYSIS_MAX_MS: i64 = 90 * DAY_MS;

/// Where the next page of gaps starts: after the gap due at `expected_from_ms` that begins
/// with serial number `first_serial_no`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GapCursor {
    pub expected_from_ms: i64,
    pub first_serial_no: u64,
}

impl CursorPayload for GapCursor {
    const KIND: &'static str = "gap";

    fn write(&self) -> String {
        format!("{}:{}", self.expected_from_ms, self.first_serial_no)
    }

    fn read(text: &str) -> Option<Self> {
        read_pair(text).map(|(expected_from_ms, first_serial_no)| GapCursor { expected_from_ms, first_serial_no })
    }
}

#[derive(Debug, Serialize)]
struct GapsReply<'a> {
    #[serde(flatten)]
    range: RangeHeader<'a>,
    expected: u64,
    received: u64,
    missing: u64,
    gap_count: usize,
    readings_without_serial_no: usize,
    gaps: Vec<GapOut>,
    next_cursor: Option<String>,
}

#[derive(Debug, Serialize)]
struct GapOut {
    first_serial_no: u64,
    last_serial_no: u64,
    missing: u64,
    incre_minute: u64,
    expected_from: i64,
    expected_from_local: Option<String>,
    expected_to: i64,
    expected_to_local: Option<String>,
    after: SideOut,
    before: SideOut,
}

#[derive(Debug, Serialize)]
struct SideOut {
    serial_no: u64,
    measured_at: i64,
    local_time: Option<String>,
}

impl GapOut {
    fn of(g: &Gap, zone: &SourceZone) -> Self {
        let side = |n: &Neighbour| SideOut {
            serial_no: n.serial_no,
            measured_at: n.measured_at_ms,
            local_time: zone.format_local_ms(n.measured_at_ms),
        };
        GapOut {
            first_serial_no: g.first_serial_no,
            last_serial_no: g.last_serial_no,
            missing: g.missing(),
            incre_minute: g.incre_minute,
            expected_from: g.expected_from_ms,
            expected_from_local: zone.format_local_ms(g.expected_from_ms),
            expected_to: g.expected_to_ms,
            expected_to_local: zone.format_local_ms(g.expected_to_ms),
            after: side(&g.after),
            before: side(&g.before),
        }
    }
}

impl<S: ReadStore, U: RollupStore, T: SensorStore> ReadService<S, U, T> {
    pub(crate) async fn gaps(&self, p: Params<'_>) -> Result<Answer, ReadError> {
        p.only(&["from", "to", "limit", "cursor"])?;
        let sn = DeviceSn::from(p.path("device_sn")?);
        let range = params::analysis_range(p, Timestamp::now(), ANALYSIS_DEFAULT_MS, ANALYSIS_MAX_MS)?;
        let limit = p.limit("limit", GAPS_DEFAULT_LIMIT, GAPS_MAX_LIMIT)?;
        // The cursor is tied to the parameters as given: with `to` left to default to now it
        // stays valid from one page to the next.
        let qh = QueryHash::of(&["gaps", sn.as_str(), p.query("from").unwrap_or(""), p.query("to").unwrap_or("")]);
        let after = p.cursor::<GapCursor>(qh)?;
        let (pieces, before, next) = tokio::try_join!(
            async { self.pieces(&sn, range).await },
            async { paging::neighbour(&self.store, &sn, Side::Before(range.start())).await.map_err(ReadError::from) },
            async { paging::neighbour(&self.store, &sn, Side::After(range.end())).await.map_err(ReadError::from) },
        )?;
        let anchor = |r: Option<StoredReading>| r.as_ref().and_then(rollup::seq_of);
        let report = rollup::gaps_of(&pieces, anchor(before), anchor(next), range.start().ms(), range.end().ms());
        let remaining: Vec<&Gap> = report
            .gaps
            .iter()
            .filter(|g| {
                after.is_none_or(|a| (g.expected_from_ms, g.first_serial_no) > (a.expected_from_ms, a.first_serial_no))
            })
            .collect();
        let shown = &remaining[..remaining.len().min(limit)];
        let next_cursor = (remaining.len() > shown.len()).then(|| {
            let last = shown[shown.len() - 1];
            cursor::encode(
                &GapCursor { expected_from_ms: last.expected_from_ms, first_serial_no: last.first_serial_no },
                qh,
            )
        });
        let body = GapsReply {
            range: RangeHeader::new(&sn, range, &self.zone),
            expected: report.expected,
            received: report.received,
            missing: report.missing,
            gap_count: report.gaps.len(),
            readings_without_serial_no: usize::try_from(rollup::without_serial(&pieces)).unwrap_or(usize::MAX),
            gaps: shown.iter().map(|g| GapOut::of(g, &self.zone)).collect(),
            next_cursor,
        };
        Ok(Answer::new(reply::json(StatusCode::OK, &body)).items(shown.len()))
    }

    pub(crate) async fn summary(&self, p: Params<'_>) -> Result<Answer, ReadError> {
        p.only(&["from", "to"])?;
        let sn = DeviceSn::from(p.path("device_sn")?);
        let range = params::analysis_range(p, Timestamp::now(), ANALYSIS_DEFAULT_MS, ANALYSIS_MAX_MS)?;
        let period = Period::of(&self.zone, &self.pieces(&sn, range).await?);
        let body = summary_of(&sn, range, &self.zone, &period);
        let valid = body.readings;
        Ok(Answer::new(reply::json(StatusCode::OK, &body)).items(valid))
    }

    /// The range as rollups of its whole days and readings of the rest
    /// ([`cgm_domain::store::rollups::read_range`]).
    async fn pieces(&self, sn: &DeviceSn, range: TimeRange<Included>) -> Result<Vec<Piece>, ReadError> {
        self.pieces_with(sn, range, Bins::Without).await
    }

    pub(crate) async fn pieces_with(
        &self,
        sn: &DeviceSn,
        range: TimeRange<Included>,
        bins: Bins,
    ) -> Result<Vec<Piece>, ReadError> {
        Ok(read_range(&self.store, &self.rollups, &self.zone, sn, range, bins, MAX_READINGS_IN_MEMORY).await?)
    }
}
