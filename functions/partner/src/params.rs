//! Reading and checking the caller's input; every refusal is a 400 that says what is wrong.

use cgm_shared::partner::ProxyError;
use cgm_shared::partner::paging::Cursor;
use lambda_http::{Request, RequestExt};

pub const DEFAULT_LIMIT: usize = 2_000;
pub const MAX_LIMIT: usize = 5_000;

fn bad(msg: impl Into<String>) -> ProxyError {
    ProxyError::BadRequest(msg.into())
}

pub fn path_param(req: &Request, name: &'static str) -> Result<String, ProxyError> {
    match req.path_parameters_ref().and_then(|p| p.first(name)) {
        Some(v) if !v.trim().is_empty() => Ok(v.to_string()),
        _ => Err(bad(format!("{name} is empty"))),
    }
}

pub fn query<'a>(req: &'a Request, name: &str) -> Option<&'a str> {
    req.query_string_parameters_ref().and_then(|q| q.first(name))
}

/// A time in ms since the epoch.
fn time(req: &Request, name: &'static str) -> Result<Option<i64>, ProxyError> {
    let Some(v) = query(req, name) else { return Ok(None) };
    let v = v.trim();
    if v.is_empty() {
        return Err(bad(format!("{name} is empty: give milliseconds since the epoch")));
    }
    if v.starts_with('-') && v[1..].bytes().all(|b| b.is_ascii_digit()) && v.len() > 1 {
        return Err(bad(format!("{name} must not be negative")));
    }
    v.parse::<i64>()
        .map(Some)
        .map_err(|_| bad(format!("{name} must be a whole number of milliseconds since the epoch")))
}

/// `start_time` and `end_time`: both or (when `required` is false) neither.
pub fn range(req: &Request, required: bool, max_ms: i64) -> Result<Option<(i64, i64)>, ProxyError> {
    let (start, end) = (time(req, "start_time")?, time(req, "end_time")?);
    let (start, end) = match (start, end) {
        (Some(s), Some(e)) => (s, e),
        (None, None) if !required => return Ok(None),
        (None, _) => return Err(bad("start_time is required (milliseconds since the epoch)")),
        (_, None) => return Err(bad("end_time is required (milliseconds since the epoch)")),
    };
    if start > end {
        return Err(bad("start_time is after end_time"));
    }
    if end - start > max_ms {
        return Err(bad(format!("the range is longer than the {} days one query may ask for", max_ms / 86_400_000)));
    }
    Ok(Some((start, end)))
}

pub fn limit(req: &Request) -> Result<usize, ProxyError> {
    match query(req, "limit") {
        None => Ok(DEFAULT_LIMIT),
        Some(v) => match v.trim().parse::<usize>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
            _ => Err(bad(format!("limit must be a whole number from 1 to {MAX_LIMIT}"))),
        },
    }
}

/// The caller's cursor, checked against the query it must belong to.
pub fn cursor(req: &Request, query_hash: u64) -> Result<Option<Cursor>, ProxyError> {
    let Some(v) = query(req, "cursor") else { return Ok(None) };
    let c = Cursor::decode(v.trim()).map_err(|e| bad(e.to_string()))?;
    c.check(query_hash).map_err(|e| bad(e.to_string()))?;
    Ok(Some(c))
}

pub fn json_body(req: &Request) -> Result<serde_json::Map<String, serde_json::Value>, ProxyError> {
    let body: &[u8] = req.body();
    match serde_json::from_slice(body) {
        Ok(serde_json::Value::Object(o)) => Ok(o),
        _ => Err(bad("the body must be a JSON object")),
    }
}
