//! A request's parameters as types. Every refusal is one [`BadRequest`] whose message names
//! the parameter and says what is expected; it never echoes the value (a token, a cursor or
//! an id may end up in a log line through it).

use cgm_domain::cursor::{self, CursorPayload, QueryHash};
use cgm_domain::time::{Included, SourceZone, TimeRange, Timestamp};
use chrono::{DateTime, NaiveDate, NaiveDateTime};
use lambda_http::{Request, RequestExt};
use serde_json::{Map, Value};

/// The longest path parameter accepted (the push route's own limit for ids).
pub const MAX_ID_BYTES: usize = 1_024;

/// The caller's input is wrong; the text says how.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadRequest(pub String);

impl BadRequest {
    pub fn new(msg: impl Into<String>) -> Self {
        BadRequest(msg.into())
    }

    /// A request whose `span` (range, period) holds more readings than a route reads at
    /// once: the caller's to narrow. `why` says how many (`ReadAllError::TooMany`).
    pub fn too_many_readings(why: impl std::fmt::Display, span: &str) -> Self {
        BadRequest(format!("{why}; ask for a shorter {span}"))
    }
}

fn bad(msg: impl Into<String>) -> BadRequest {
    BadRequest::new(msg)
}

/// The parameters of one request.
#[derive(Clone, Copy)]
pub struct Params<'a> {
    req: &'a Request,
}

impl<'a> Params<'a> {
    pub fn of(req: &'a Request) -> Self {
        Params { req }
    }

    /// A path parameter: present, not blank, at most [`MAX_ID_BYTES`].
    pub fn path(&self, name: &'static str) -> Result<&'a str, BadRequest> {
        match self.req.path_parameters_ref().and_then(|p| p.first(name)) {
            Some(v) if v.len() > MAX_ID_BYTES => Err(bad(format!("{name} is longer than {MAX_ID_BYTES} bytes"))),
            Some(v) if !v.trim().is_empty() => Ok(v),
            _ => Err(bad(format!("{name} is empty"))),
        }
    }

    /// A query parameter as sent (the first, when repeated).
    pub fn query(&self, name: &str) -> Option<&'a str> {
        self.req.query_string_parameters_ref().and_then(|q| q.first(name))
    }

    /// Every value of a query parameter, in order (FHIR repeats `date` for a range).
    pub fn all(&self, name: &str) -> Vec<&'a str> {
        self.req.query_string_parameters_ref().and_then(|q| q.all(name)).unwrap_or_default()
    }

    /// Refuses any query parameter not in `known`, naming it: an unknown filter is an error,
    /// never silently ignored.
    pub fn only(&self, known: &[&str]) -> Result<(), BadRequest> {
        let Some(q) = self.req.query_string_parameters_ref() else { return Ok(()) };
        match q.iter().map(|(k, _)| k).find(|k| !known.contains(k)) {
            None => Ok(()),
            Some(k) => Err(bad(format!(
                "unknown query parameter {:?}; this route takes {}",
                cgm_domain::ids::clip_for_log(k),
                if known.is_empty() { "none".to_string() } else { known.join(", ") }
            ))),
        }
    }

    /// Every query parameter as sent, in order (the first of a repeated one only once).
    pub fn pairs(&self) -> Vec<(&'a str, &'a str)> {
        let Some(q) = self.req.query_string_parameters_ref() else { return Vec::new() };
        let mut out: Vec<(&'a str, &'a str)> = Vec::new();
        for (k, v) in q.iter() {
            if !out.iter().any(|(seen, _)| *seen == k) {
                out.push((k, v));
            }
        }
        out
    }

    /// Every query parameter with every value of a repeated one.
    pub fn pairs_all(&self) -> Vec<(&'a str, &'a str)> {
        self.req.query_string_parameters_ref().map(|q| q.iter().collect()).unwrap_or_default()
    }

    pub fn header(&self, name: &str) -> Option<&'a str> {
        self.req.headers().get(name).and_then(|v| v.to_str().ok())
    }

    /// A whole number from 1 to `max`, `default` when absent.
    pub fn limit(&self, name: &str, default: usize, max: usize) -> Result<usize, BadRequest> {
        match self.query(name) {
            None => Ok(default),
            Some(v) => match v.trim().parse::<usize>() {
                Ok(n) if (1..=max).contains(&n) => Ok(n),
                _ => Err(bad(format!("{name} must be a whole number from 1 to {max}"))),
            },
        }
    }

    /// `true`/`1` or `false`/`0`/empty; `false` when absent.
    pub fn flag(&self, name: &str) -> Result<bool, BadRequest> {
        match self.query(name).map(|v| v.trim().to_ascii_lowercase()) {
            None => Ok(false),
            Some(v) if v == "true" || v == "1" => Ok(true),
            Some(v) if v == "false" || v == "0" || v.is_empty() => Ok(false),
            Some(_) => Err(bad(format!("{name} must be true or false"))),
        }
    }

    /// Whole milliseconds since the epoch, and nothing else (the vendor's own time format).
    pub fn epoch_ms(&self, name: &'static str) -> Result<Option<i64>, BadRequest> {
        let Some(v) = self.query(name) else { return Ok(None) };
        let v = v.trim();
        if v.is_empty() {
            return Err(bad(format!("{name} is empty: give milliseconds since the epoch")));
        }
        if v.len() > 1 && v.starts_with('-') && v[1..].bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad(format!("{name} must not be negative")));
        }
        v.parse::<i64>()
            .map(Some)
            .map_err(|_| bad(format!("{name} must be a whole number of milliseconds since the epoch")))
    }

    /// An instant: ms since the epoch, or ISO 8601 / RFC 3339 with an offset.
    pub fn instant(&self, name: &str) -> Result<Option<i64>, BadRequest> {
        self.query(name).map(|v| parse_instant(name, v)).transpose()
    }

    /// `YYYY-MM-DD`, a calendar day.
    pub fn date(&self, name: &str) -> Result<Option<NaiveDate>, BadRequest> {
        self.query(name)
            .map(|v| {
                NaiveDate::parse_from_str(v.trim(), "%Y-%m-%d")
                    .map_err(|_| bad(format!("{name} must be a calendar day as YYYY-MM-DD")))
            })
            .transpose()
    }

    /// A report's range: `from` and `to` each a local day (`YYYY-MM-DD`, in `zone`: `from` its
    /// start, `to` its end) or an instant; by default the last `default_days` full local days
    /// before `now`'s; at most `max_days` days (a daylight-saving hour more is allowed).
    pub fn report_range(
        &self,
        now: Timestamp,
        zone: &SourceZone,
        default_days: u32,
        max_days: u32,
    ) -> Result<TimeRange<Included>, BadRequest> {
        let p = self;
        let day_or_instant = |name: &str, end: bool| -> Result<Option<Timestamp>, BadRequest> {
            let Some(v) = p.query(name).map(str::trim) else { return Ok(None) };
            if v.len() == 10 && v.as_bytes().get(4) == Some(&b'-') {
                let day = p.date(name)?.ok_or_else(|| bad(format!("{name} must be a day or an instant")))?;
                let span =
                    zone.local_day(day).ok_or_else(|| bad(format!("{name}: that day does not exist in the zone")))?;
                return Ok(Some(if end { span.end().minus_ms(1) } else { span.start() }));
            }
            Ok(p.instant(name)?.map(Timestamp::from_ms))
        };
        let (from, to) = (day_or_instant("from", false)?, day_or_instant("to", true)?);
        let today = zone.local_date(now).ok_or_else(|| bad("the current time has no local day"))?;
        let to = match to {
            Some(t) => t,
            None => {
                zone.local_day(today).map(|d| d.start().minus_ms(1)).ok_or_else(|| bad("no local day before today"))?
            }
        };
        let from = match from {
            Some(f) => f,
            None => {
                let last = zone.local_date(to).ok_or_else(|| bad("to has no local day"))?;
                let first = last - chrono::Duration::days(i64::from(default_days) - 1);
                zone.local_day(first).map(|d| d.start()).ok_or_else(|| bad("that day does not exist in the zone"))?
            }
        };
        let range = TimeRange::new(from, to).ok_or_else(|| bad("from is after to"))?;
        if range.span_ms() > i64::from(max_days) * 86_400_000 + 3_600_000 {
            return Err(bad(format!("the range is longer than {max_days} days; ask for a shorter one")));
        }
        Ok(range)
    }

    /// The `cursor` parameter, checked against the query it must belong to.
    pub fn cursor<P: CursorPayload>(&self, query: QueryHash) -> Result<Option<P>, BadRequest> {
        self.query("cursor").map(|c| cursor::decode(c.trim(), query).map_err(|e| bad(e.to_string()))).transpose()
    }

    /// The cursor in the query parameter `name` (FHIR's `_cursor`), its refusal naming it.
    pub fn cursor_param<P: CursorPayload>(&self, name: &str, query: QueryHash) -> Result<Option<P>, BadRequest> {
        self.query(name).map(|c| cursor::decode(c.trim(), query).map_err(|e| bad(format!("{name}: {e}")))).transpose()
    }

    /// The body as sent.
    pub fn body(&self) -> &'a [u8] {
        self.req.body()
    }

    /// The body as a JSON object.
    pub fn json_object(&self) -> Result<Map<String, Value>, BadRequest> {
        let body: &[u8] = self.req.body();
        match serde_json::from_slice(body) {
            Ok(Value::Object(o)) => Ok(o),
            _ => Err(bad("the body must be a JSON object")),
        }
    }
}

/// An instant as ms since the epoch, from ms digits or ISO 8601 / RFC 3339 with an offset.
pub fn parse_instant(name: &str, text: &str) -> Result<i64, BadRequest> {
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
        Err(_) if NaiveDateTime::parse_from_str(t, "%Y-%m-%dT%H:%M:%S%.f").is_ok() => {
            Err(bad(format!("{name} needs an offset, e.g. 2021-11-02T12:00:00+08:00 (escape + as %2B) or Z")))
        }
        Err(_) => Err(bad(format!(
            "{name} is not a time: give ms since the epoch or an ISO 8601 time with an offset, e.g. 2021-11-02T12:00:00Z"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(r: Result<i64, BadRequest>) -> String {
        r.expect_err("a 400").0
    }

    fn with_query(q: &str) -> Request {
        let mut req = Request::default();
        let map: std::collections::HashMap<String, String> = q
            .split('&')
            .filter(|p| !p.is_empty())
            .filter_map(|p| p.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        req = req.with_query_string_parameters(map);
        req
    }

    #[test]
    fn times_are_ms_or_iso_with_an_offset() {
        assert_eq!(parse_instant("from", "1635827613000").unwrap(), 1_635_827_613_000);
        assert_eq!(parse_instant("from", "2021-11-02T12:33:33+08:00").unwrap(), 1_635_827_613_000);
        assert_eq!(parse_instant("from", "2021-11-02T04:33:33Z").unwrap(), 1_635_827_613_000);
        assert_eq!(parse_instant("from", "2021-11-02T12:33:33 08:00").unwrap(), 1_635_827_613_000, "+ unescaped");
        assert_eq!(parse_instant("from", "2021-11-02T04:33:33.5Z").unwrap(), 1_635_827_613_500);
    }

    #[test]
    fn bad_times_say_what_is_wrong() {
        assert!(err(parse_instant("from", "2021-11-02T12:33:33")).contains("needs an offset"));
        assert!(err(parse_instant("to", "yesterday")).starts_with("to is not a time"));
        assert!(err(parse_instant("from", "-5")).contains("negative"));
        assert!(err(parse_instant("from", "")).contains("empty"));
        assert!(err(parse_instant("from", "99999999999999999999")).contains("too large"));
        assert!(err(parse_instant("from", "2021-13-45T00:00:00Z")).contains("not a time"));
    }

    #[test]
    fn limits_flags_and_epoch_ms() {
        let req = with_query("limit=0&big=9&ok=5&f=TRUE&g=maybe&t=-3&u=12&v=1.5");
        let p = Params::of(&req);
        assert_eq!(p.limit("limit", 10, 8).unwrap_err().0, "limit must be a whole number from 1 to 8");
        assert!(p.limit("big", 10, 8).is_err());
        assert_eq!(p.limit("ok", 10, 8), Ok(5));
        assert_eq!(p.limit("absent", 10, 8), Ok(10));
        assert_eq!(p.flag("f"), Ok(true));
        assert!(p.flag("g").is_err());
        assert_eq!(p.flag("absent"), Ok(false));
        assert_eq!(p.epoch_ms("t").unwrap_err().0, "t must not be negative");
        assert_eq!(p.epoch_ms("u"), Ok(Some(12)));
        assert!(p.epoch_ms("v").unwrap_err().0.contains("whole number"));
    }

    #[test]
    fn a_missing_path_parameter_is_named() {
        let req = Request::default();
        assert_eq!(Params::of(&req).path("device_sn").unwrap_err().0, "device_sn is empty");
    }
}
