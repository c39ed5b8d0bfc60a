//! Reading the caller's input into types; every refusal is a 400 that says what is wrong
//! (naming the parameter, never echoing a token).

use crate::handler::ReadError;
use chrono::{DateTime, NaiveDate};
use lambda_http::{Request, RequestExt};

/// The longest device serial number accepted in a path (the push route's own limit).
const MAX_ID_BYTES: usize = 1_024;

fn bad(msg: impl Into<String>) -> ReadError {
    ReadError::BadRequest(msg.into())
}

pub fn path_param(req: &Request, name: &'static str) -> Result<String, ReadError> {
    match req.path_parameters_ref().and_then(|p| p.first(name)) {
        Some(v) if !v.trim().is_empty() && v.len() <= MAX_ID_BYTES => Ok(v.to_string()),
        Some(v) if v.len() > MAX_ID_BYTES => Err(bad(format!("{name} is longer than {MAX_ID_BYTES} bytes"))),
        _ => Err(bad(format!("{name} is empty"))),
    }
}

pub fn query<'a>(req: &'a Request, name: &str) -> Option<&'a str> {
    req.query_string_parameters_ref().and_then(|q| q.first(name))
}

/// A time as ms since the epoch, or ISO 8601 / RFC 3339 with an offset.
pub fn parse_time(name: &str, text: &str) -> Result<i64, ReadError> {
    let t = text.trim();
    if t.is_empty() {
        return Err(bad(format!("{name} is empty: give ms since the epoch or an ISO 8601 time with an offset")));
    }
    if t.bytes().all(|b| b.is_ascii_digit()) {
        return t.parse::<i64>().map_err(|_| bad(format!("{name} is too large")));
    }
    if t.starts_with('-') && t[1..].bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad(format!("{name} must not be negative")));
    }
    // An unescaped `+` in a query string arrives as a space: `…T08:00:00 08:00`.
    let repaired = match t.rfind(' ') {
        Some(i) if i > 10 => format!("{}+{}", &t[..i], &t[i + 1..]),
        _ => t.to_string(),
    };
    match DateTime::parse_from_rfc3339(&repaired) {
        Ok(d) => Ok(d.timestamp_millis()),
        Err(_) if chrono::NaiveDateTime::parse_from_str(t, "%Y-%m-%dT%H:%M:%S%.f").is_ok() => {
            Err(bad(format!("{name} needs an offset, e.g. 2021-11-02T12:00:00+08:00 (escape + as %2B) or Z")))
        }
        Err(_) => Err(bad(format!(
            "{name} is not a time: give ms since the epoch or an ISO 8601 time with an offset, e.g. 2021-11-02T12:00:00Z"
        ))),
    }
}

/// `from` and `to` (both included), each when given.
pub fn from_to(req: &Request) -> Result<(Option<i64>, Option<i64>), ReadError> {
    let from = query(req, "from").map(|v| parse_time("from", v)).transpose()?;
    let to = query(req, "to").map(|v| parse_time("to", v)).transpose()?;
    if let (Some(f), Some(t)) = (from, to)
        && f > t
    {
        return Err(bad("from is after to"));
    }
    Ok((from, to))
}

/// A range for the routes that compute over it: `to` defaults to now, `from` to `default_ms`
/// before `to`; at most `max_ms` long.
pub fn analysis_range(req: &Request, now_ms: i64, default_ms: i64, max_ms: i64) -> Result<(i64, i64), ReadError> {
    let (from, to) = from_to(req)?;
    let to = to.unwrap_or(now_ms);
    let from = from.unwrap_or(to.saturating_sub(default_ms));
    if from > to {
        return Err(bad("from is after to"));
    }
    if to - from > max_ms {
        return Err(bad(format!("the range is longer than {} days; ask for a shorter one", max_ms / 86_400_000)));
    }
    Ok((from, to))
}

pub fn limit(req: &Request, name: &str, default: usize, max: usize) -> Result<usize, ReadError> {
    match query(req, name) {
        None => Ok(default),
        Some(v) => match v.trim().parse::<usize>() {
            Ok(n) if (1..=max).contains(&n) => Ok(n),
            _ => Err(bad(format!("{name} must be a whole number from 1 to {max}"))),
        },
    }
}

pub fn flag(req: &Request, name: &str) -> Result<bool, ReadError> {
    match query(req, name).map(|v| v.trim().to_ascii_lowercase()) {
        None => Ok(false),
        Some(v) if v == "true" || v == "1" => Ok(true),
        Some(v) if v == "false" || v == "0" || v.is_empty() => Ok(false),
        Some(_) => Err(bad(format!("{name} must be true or false"))),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Csv,
}

/// `format=csv|json` wins; otherwise an `Accept` that names `text/csv` (and not JSON first).
pub fn format(req: &Request) -> Result<Format, ReadError> {
    match query(req, "format").map(|v| v.trim().to_ascii_lowercase()) {
        Some(v) if v == "csv" => return Ok(Format::Csv),
        Some(v) if v == "json" => return Ok(Format::Json),
        Some(_) => return Err(bad("format must be json or csv")),
        None => {}
    }
    let accept = req.headers().get("accept").and_then(|v| v.to_str().ok()).unwrap_or("").to_ascii_lowercase();
    let csv = accept.find("text/csv");
    let json = accept.find("application/json");
    Ok(match (csv, json) {
        (Some(c), Some(j)) if j < c => Format::Json,
        (Some(_), _) => Format::Csv,
        _ => Format::Json,
    })
}

/// `date=YYYY-MM-DD`, a local calendar day; `None` when not given.
pub fn date(req: &Request) -> Result<Option<NaiveDate>, ReadError> {
    match query(req, "date") {
        None => Ok(None),
        Some(v) => NaiveDate::parse_from_str(v.trim(), "%Y-%m-%d")
            .map(Some)
            .map_err(|_| bad("date must be a calendar day as YYYY-MM-DD")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(r: Result<i64, ReadError>) -> String {
        match r {
            Err(ReadError::BadRequest(m)) => m,
            other => panic!("expected a 400, got {other:?}"),
        }
    }

    #[test]
    fn times_are_ms_or_iso_with_an_offset() {
        assert_eq!(parse_time("from", "1635827613000").unwrap(), 1_635_827_613_000);
        assert_eq!(parse_time("from", "2021-11-02T12:33:33+08:00").unwrap(), 1_635_827_613_000);
        assert_eq!(parse_time("from", "2021-11-02T04:33:33Z").unwrap(), 1_635_827_613_000);
        assert_eq!(parse_time("from", "2021-11-02T12:33:33 08:00").unwrap(), 1_635_827_613_000, "+ sent unescaped");
        assert_eq!(parse_time("from", "2021-11-02T04:33:33.5Z").unwrap(), 1_635_827_613_500);
    }

    #[test]
    fn bad_times_say_what_is_wrong() {
        assert!(err(parse_time("from", "2021-11-02T12:33:33")).contains("needs an offset"));
        assert!(err(parse_time("to", "yesterday")).starts_with("to is not a time"));
        assert!(err(parse_time("from", "-5")).contains("negative"));
        assert!(err(parse_time("from", "")).contains("empty"));
        assert!(err(parse_time("from", "99999999999999999999")).contains("too large"));
        assert!(err(parse_time("from", "2021-13-45T00:00:00Z")).contains("not a time"));
    }
}
