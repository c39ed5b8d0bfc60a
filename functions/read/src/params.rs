//! The read side's own parameters, on top of the edge's: a `from`/`to` range, the range
//! of the routes that compute over one, and the output format.

use crate::error::{ReadError, bad};
use cgm_domain::time::{Included, TimeRange, Timestamp};
use cgm_edge::Params;

pub const DAY_MS: i64 = 86_400_000;

/// `from` and `to` as given (both included), each optional.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    pub from: Option<i64>,
    pub to: Option<i64>,
}

impl Bounds {
    pub fn range(&self) -> TimeRange<Included> {
        let (from, to) = (self.from.unwrap_or(i64::MIN), self.to.unwrap_or(i64::MAX));
        TimeRange::new(Timestamp::from_ms(from), Timestamp::from_ms(to)).unwrap_or(TimeRange::ALL)
    }
}

pub fn bounds(p: Params<'_>) -> Result<Bounds, ReadError> {
    let (from, to) = (p.instant("from")?, p.instant("to")?);
    if let (Some(f), Some(t)) = (from, to)
        && f > t
    {
        return Err(bad("from is after to"));
    }
    Ok(Bounds { from, to })
}

/// A range for the routes that compute over it: `to` defaults to now, `from` to `default_ms`
/// before `to`; at most `max_ms` long.
pub fn analysis_range(
    p: Params<'_>,
    now: Timestamp,
    default_ms: i64,
    max_ms: i64,
) -> Result<TimeRange<Included>, ReadError> {
    let b = bounds(p)?;
    let to = b.to.map_or(now, Timestamp::from_ms);
    let from = b.from.map_or(to.minus_ms(default_ms), Timestamp::from_ms);
    let range = TimeRange::new(from, to).ok_or_else(|| bad("from is after to"))?;
    if range.span_ms() > max_ms {
        return Err(bad(format!("the range is longer than {} days; ask for a shorter one", max_ms / DAY_MS)));
    }
    Ok(range)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Csv,
}

/// `format=csv|json` wins; otherwise an `Accept` that names `text/csv` (and not JSON first).
pub fn format(p: Params<'_>) -> Result<Format, ReadError> {
    match p.query("format").map(|v| v.trim().to_ascii_lowercase()) {
        Some(v) if v == "csv" => return Ok(Format::Csv),
        Some(v) if v == "json" => return Ok(Format::Json),
        Some(_) => return Err(bad("format must be json or csv")),
        None => {}
    }
    let accept = p.header("accept").unwrap_or("").to_ascii_lowercase();
    let csv = accept.find("text/csv");
    let json = accept.find("application/json");
    Ok(match (csv, json) {
        (Some(c), Some(j)) if j < c => Format::Json,
        (Some(_), _) => Format::Csv,
        _ => Format::Json,
    })
}
