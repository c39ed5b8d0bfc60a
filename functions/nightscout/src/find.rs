//! Nightscout's `find[...]` filters on entries, as followers send them
//! (nightscout/cgm-remote-monitor `lib/server/query.js`): `find[date][$gte]=<ms>`,
//! `find[dateString][$lt]=<ISO 8601>`, `find[type][$ne]=cal`, `find[sgv][$gt]=70`, and the
//! plain `find[field]=value` for equality. Nightscout hands them to MongoDB; we apply the
//! ones that mean something for a CGM feed and refuse any other with a message naming it
//! (Nightscout would answer 500 for a malformed one, or silently match nothing).
//!
//! Pure: parameters in, a filter out.

use chrono::{DateTime, NaiveDate};

/// What a request's parameters ask of the entries.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct EntryFilter {
    /// Entries measured at or after this instant (ms), at or before the other.
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
    /// `sgv` bounds in mg/dL, both included.
    pub sgv_min: Option<f64>,
    pub sgv_max: Option<f64>,
    /// A `find[type]` that no `sgv` entry can match: the answer is empty.
    pub no_sgv: bool,
}

impl EntryFilter {
    pub fn admits_sgv(&self, sgv: i64) -> bool {
        let v = sgv as f64;
        self.sgv_min.is_none_or(|m| v >= m) && self.sgv_max.is_none_or(|m| v <= m)
    }

    pub fn admits_time(&self, ms: i64) -> bool {
        self.from_ms.is_none_or(|f| ms >= f) && self.to_ms.is_none_or(|t| ms <= t)
    }

    fn lower(&mut self, ms: i64) {
        self.from_ms = Some(self.from_ms.map_or(ms, |f| f.max(ms)));
    }

    fn upper(&mut self, ms: i64) {
        self.to_ms = Some(self.to_ms.map_or(ms, |t| t.min(ms)));
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Op {
    Eq,
    Ne,
    Gt,
    Gte,
    Lt,
    Lte,
}

/// `find[field]` or `find[field][$op]`: the field and the operator; `None` for a key that
/// is not a `find`.
fn split(key: &str) -> Option<Result<(&str, Op), String>> {
    let rest = key.strip_prefix("find[")?;
    let (field, tail) = match rest.split_once(']') {
        Some(x) => x,
        None => return Some(Err(format!("{key}: a find parameter is find[field] or find[field][$op]"))),
    };
    let op = match tail {
        "" => Op::Eq,
        "[$eq]" => Op::Eq,
        "[$ne]" => Op::Ne,
        "[$gt]" => Op::Gt,
        "[$gte]" => Op::Gte,
        "[$lt]" => Op::Lt,
        "[$lte]" => Op::Lte,
        other => {
            return Some(Err(format!(
                "{key}: operator {other} is not one the feed applies ($eq, $ne, $gt, $gte, $lt, $lte)"
            )));
        }
    };
    Some(Ok((field, op)))
}

/// ms since the epoch, as Nightscout reads `find[date]` (`parseInt`: a fraction is cut off).
fn ms(key: &str, v: &str) -> Result<i64, String> {
    let t = v.trim();
    let whole = t.split_once('.').map_or(t, |(w, frac)| if frac.bytes().all(|b| b.is_ascii_digit()) { w } else { t });
    whole.parse::<i64>().map_err(|_| {
        format!("{key} must be milliseconds since the epoch (a number); for an ISO 8601 time use find[dateString]")
    })
}

/// An ISO 8601 instant with its offset, or a bare `YYYY-MM-DD` (UTC midnight), as
/// `dateString` holds them; compared as instants, which is what Nightscout's comparison of
/// its own UTC strings amounts to.
fn iso(key: &str, v: &str) -> Result<i64, String> {
    let t = v.trim();
    if let Ok(d) = DateTime::parse_from_rfc3339(t) {
        return Ok(d.timestamp_millis());
    }
    if let Ok(d) = NaiveDate::parse_from_str(t, "%Y-%m-%d") {
        return Ok(d.and_hms_opt(0, 0, 0).map_or(0, |d| d.and_utc().timestamp_millis()));
    }
    Err(format!("{key} must be an ISO 8601 time with its offset (2024-05-01T08:00:00Z) or a date (2024-05-01)"))
}

fn number(key: &str, v: &str) -> Result<f64, String> {
    v.trim().parse::<f64>().ok().filter(|x| x.is_finite()).ok_or_else(|| format!("{key} must be a number (mg/dL)"))
}

/// How a `date` value is read.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Dates {
    /// v1's `find[date]`: `parseInt` of ms.
    Ms,
    /// v3's `date`, `srvModified`, `srvCreated` (`lib/api3/shared/dateTools.js`
    /// `parseToMoment`): ms, or seconds below 2000-01-01 in ms; or an ISO 8601 time.
    Moment,
}

/// Epoch ms of 2000-01-01: v3 reads a smaller number as seconds.
const MIN_TIMESTAMP_MS: i64 = 946_684_800_000;

fn moment(key: &str, v: &str) -> Result<i64, String> {
    let t = v.trim();
    if let Ok(n) = t.parse::<f64>()
        && n.is_finite()
    {
        let n = n as i64;
        return Ok(if n < MIN_TIMESTAMP_MS { n.saturating_mul(1000) } else { n });
    }
    DateTime::parse_from_rfc3339(t)
        .or_else(|_| DateTime::parse_from_rfc2822(t))
        .map(|d| d.timestamp_millis())
        .map_err(|_| format!("{key} must be ms since the epoch or an ISO 8601 time with its offset"))
}

/// The filter of an entries request from its `find[...]` parameters; any other parameter is
/// the caller's to check. An error names the parameter.
pub fn entry_filter<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<EntryFilter, String> {
    let mut f = EntryFilter::default();
    for (key, value) in pairs {
        let Some(parsed) = split(key) else { continue };
        let (field, op) = parsed?;
        apply(&mut f, key, field, op, value, Dates::Ms)?;
    }
    Ok(f)
}

/// Narrows `f` by one condition `field op value`, the parameter `key` named in an error.
pub(crate) fn apply(
    f: &mut EntryFilter,
    key: &str,
    field: &str,
    op: Op,
    value: &str,
    dates: Dates,
) -> Result<(), String> {
    let field = match (field, dates) {
        // What v3 adds to every document; ours are never modified, so both are the date.
        ("srvModified" | "srvCreated", Dates::Moment) => "date",
        _ => field,
    };
    match field {
        "date" | "dateString" => {
            let at = match (field, dates) {
                ("date", Dates::Ms) => ms(key, value)?,
                ("date", Dates::Moment) => moment(key, value)?,
                _ => iso(key, value)?,
            };
            // dateString is text: "2024-05-01" sorts before every time of that day.
            let date_only = field == "dateString" && !value.contains('T');
            match op {
                Op::Eq if date_only => return Err(format!("{key}: equality with a date matches no entry's time")),
                Op::Eq => {
                    f.lower(at);
                    f.upper(at);
                }
                Op::Gt if date_only => f.lower(at),
                Op::Gt => f.lower(at.saturating_add(1)),
                Op::Gte => f.lower(at),
                Op::Lt => f.upper(at.saturating_sub(1)),
                Op::Lte if date_only => f.upper(at.saturating_sub(1)),
                Op::Lte => f.upper(at),
                Op::Ne => return Err(format!("{key}: $ne is not applied to {field}")),
            }
        }
        "type" => {
            let is_sgv = value.trim().trim_matches('\'') == "sgv";
            match op {
                Op::Eq => f.no_sgv |= !is_sgv,
                Op::Ne => f.no_sgv |= is_sgv,
                _ => return Err(format!("{key}: type takes $eq or $ne")),
            }
        }
        "sgv" => {
            let v = number(key, value)?;
            match op {
                Op::Eq => {
                    f.sgv_min = Some(f.sgv_min.map_or(v, |m| m.max(v)));
                    f.sgv_max = Some(f.sgv_max.map_or(v, |m| m.min(v)));
                }
                Op::Gt => f.sgv_min = Some(f.sgv_min.map_or(v.floor() + 1.0, |m| m.max(v.floor() + 1.0))),
                Op::Gte => f.sgv_min = Some(f.sgv_min.map_or(v, |m| m.max(v))),
                Op::Lt => f.sgv_max = Some(f.sgv_max.map_or(v.ceil() - 1.0, |m| m.min(v.ceil() - 1.0))),
                Op::Lte => f.sgv_max = Some(f.sgv_max.map_or(v, |m| m.min(v))),
                Op::Ne => return Err(format!("{key}: $ne is not applied to sgv")),
            }
        }
        other => {
            let fields = match dates {
                Dates::Ms => "date, dateString, type and sgv",
                Dates::Moment => "date, srvModified, srvCreated, dateString, type and sgv",
            };
            return Err(format!("{key}: the feed filters on {fields}, not {}", cgm_domain::ids::clip_for_log(other)));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(pairs: &[(&str, &str)]) -> Result<EntryFilter, String> {
        entry_filter(pairs.iter().copied())
    }

    #[test]
    fn date_bounds_in_ms_whole_or_fractional_strict_or_not() {
        let f = of(&[("find[date][$gt]", "1000"), ("find[date][$lte]", "5000.9")]).unwrap();
        assert_eq!((f.from_ms, f.to_ms), (Some(1001), Some(5000)));
        let f = of(&[("find[date][$gte]", "1000"), ("find[date][$lt]", "5000")]).unwrap();
        assert_eq!((f.from_ms, f.to_ms), (Some(1000), Some(4999)));
        let f = of(&[("find[date]", "7")]).unwrap();
        assert_eq!((f.from_ms, f.to_ms), (Some(7), Some(7)));
        // Two lower bounds: the later wins.
        let f = of(&[("find[date][$gte]", "10"), ("find[date][$gt]", "20")]).unwrap();
        assert_eq!(f.from_ms, Some(21));
    }

    #[test]
    fn date_strings_are_compared_as_instants() {
        let f = of(&[("find[dateString][$gte]", "2024-05-01T08:00:00+08:00")]).unwrap();
        assert_eq!(f.from_ms, Some(1_714_521_600_000));
        let f = of(&[("find[dateString][$gt]", "2024-05-01T00:00:00.000Z")]).unwrap();
        assert_eq!(f.from_ms, Some(1_714_521_600_001));
        // A bare date sorts before the day's times.
        let f = of(&[("find[dateString][$gt]", "2024-05-01"), ("find[dateString][$lte]", "2024-05-02")]).unwrap();
        assert_eq!((f.from_ms, f.to_ms), (Some(1_714_521_600_000), Some(1_714_608_000_000 - 1)));
    }

    #[test]
    fn types_and_sgv_bounds() {
        assert!(!of(&[("find[type][$ne]", "cal")]).unwrap().no_sgv);
        assert!(!of(&[("find[type]", "sgv")]).unwrap().no_sgv);
        assert!(of(&[("find[type][$eq]", "mbg")]).unwrap().no_sgv);
        assert!(of(&[("find[type][$ne]", "sgv")]).unwrap().no_sgv);
        let f = of(&[("find[sgv][$gt]", "70"), ("find[sgv][$lt]", "180.5")]).unwrap();
        assert!(!f.admits_sgv(70) && f.admits_sgv(71) && f.admits_sgv(180) && !f.admits_sgv(181));
        let f = of(&[("find[sgv][$gte]", "70"), ("find[sgv][$lte]", "180")]).unwrap();
        assert!(f.admits_sgv(70) && f.admits_sgv(180) && !f.admits_sgv(69));
    }

    #[test]
    fn what_cannot_be_applied_is_refused_by_name() {
        for (k, v, says) in [
            ("find[date][$gte]", "2024-05-01T00:00:00Z", "find[dateString]"),
            ("find[date][$in]", "1", "$in"),
            ("find[noise][$gte]", "1", "noise"),
            ("find[type][$gt]", "sgv", "$eq or $ne"),
            ("find[dateString][$gte]", "yesterday", "ISO 8601"),
            ("find[sgv][$gt]", "high", "number"),
            ("find[date", "1", "find[field]"),
            ("find[date][$ne]", "1", "$ne"),
        ] {
            let e = of(&[(k, v)]).unwrap_err();
            assert!(e.contains(k) && e.contains(says), "{k}={v}: {e}");
        }
        assert_eq!(of(&[("count", "10"), ("rr", "1")]).unwrap(), EntryFilter::default(), "not a find: left alone");
    }
}
