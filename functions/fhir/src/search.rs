//! FHIR search parameters as this server takes them (R4 search, `date` and `token` types):
//! an unknown parameter, prefix or modifier is a 400 naming it, never ignored.

use cgm_domain::time::{Included, SourceZone, TimeRange, Timestamp};
use cgm_edge::{BadRequest, Params};
use chrono::{DateTime, NaiveDate};

fn bad(msg: impl Into<String>) -> BadRequest {
    BadRequest::new(msg)
}

/// The instants one FHIR `date` value covers, from its precision: a year, a month, a day
/// (local days in the source zone, as FHIR reads a date without an offset in the server's
/// zone) or a second (or the fraction given) of a dateTime with its offset. End excluded.
fn date_span(text: &str, zone: &SourceZone) -> Result<(i64, i64), BadRequest> {
    let day_span = |first: NaiveDate, after: NaiveDate| -> Result<(i64, i64), BadRequest> {
        let start = zone.local_day(first).ok_or_else(|| bad("date: that day does not exist"))?.start();
        let end = zone.local_day(after).ok_or_else(|| bad("date: that day does not exist"))?.start();
        Ok((start.ms(), end.ms()))
    };
    let t = text.trim();
    match t.len() {
        4 if t.bytes().all(|b| b.is_ascii_digit()) => {
            let y: i32 = t.parse().map_err(|_| bad("date: not a year"))?;
            let (a, b) = (NaiveDate::from_ymd_opt(y, 1, 1), NaiveDate::from_ymd_opt(y + 1, 1, 1));
            day_span(a.ok_or_else(|| bad("date: not a year"))?, b.ok_or_else(|| bad("date: not a year"))?)
        }
        7 => {
            let first = NaiveDate::parse_from_str(&format!("{t}-01"), "%Y-%m-%d")
                .map_err(|_| bad("date: expected YYYY, YYYY-MM, YYYY-MM-DD or a dateTime with its offset"))?;
            let after = first.checked_add_months(chrono::Months::new(1)).ok_or_else(|| bad("date: out of range"))?;
            day_span(first, after)
        }
        10 => {
            let day = NaiveDate::parse_from_str(t, "%Y-%m-%d")
                .map_err(|_| bad("date: expected YYYY, YYYY-MM, YYYY-MM-DD or a dateTime with its offset"))?;
            day_span(day, day.succ_opt().ok_or_else(|| bad("date: out of range"))?)
        }
        _ => {
            // An unescaped `+` of an offset arrives as a space.
            let repaired = t.replacen(' ', "+", 1);
            let at = DateTime::parse_from_rfc3339(&repaired).map_err(|_| {
                bad("date: expected YYYY, YYYY-MM, YYYY-MM-DD or a dateTime with seconds and its offset, \
                     e.g. 2024-05-02T10:15:00+08:00 (escape + as %2B)")
            })?;
            let start = at.timestamp_millis();
            // The precision given: a whole second, or the fraction's last digit.
            let fraction =
                repaired.split_once('.').map_or(0, |(_, f)| f.bytes().take_while(u8::is_ascii_digit).count());
            let width = match fraction {
                0 => 1_000,
                1 => 100,
                2 => 10,
                _ => 1,
            };
            Ok((start, start + width))
        }
    }
}

/// Every `date` parameter together: the instants (both ends included) they all allow.
/// `eq` (the default) keeps the value's span, `ge`/`gt` start at its start/end, `le`/`lt`
/// end at its end/start; `ne`, `sa`, `eb` and `ap` are refused.
pub fn date_range(values: &[&str], zone: &SourceZone) -> Result<TimeRange<Included>, BadRequest> {
    let (mut from, mut to) = (i64::MIN, i64::MAX);
    for v in values {
        let v = v.trim();
        let (prefix, rest) = match v.get(..2) {
            Some(p) if p.bytes().all(|b| b.is_ascii_lowercase()) => (p, &v[2..]),
            _ => ("eq", v),
        };
        let (start, end) = date_span(rest, zone)?;
        match prefix {
            "eq" => {
                from = from.max(start);
                to = to.min(end - 1);
            }
            "ge" => from = from.max(start),
            "gt" => from = from.max(end),
            "le" => to = to.min(end - 1),
            "lt" => to = to.min(start - 1),
            "ne" | "sa" | "eb" | "ap" => {
                return Err(bad(format!("date: the prefix {prefix} is not supported; use eq, ge, gt, le or lt")));
            }
            _ => return Err(bad("date: unknown prefix; use eq, ge, gt, le or lt")),
        }
    }
    TimeRange::new(Timestamp::from_ms(from), Timestamp::from_ms(to))
        .ok_or_else(|| bad("date: the values leave no time between them"))
}

/// A `token` parameter's codes (comma means any of them), each with its system checked:
/// `code`, `system|code` or `|code` (no system). `system` is the only one accepted.
pub fn codes<'a>(value: &'a str, name: &str, system: &str) -> Result<Vec<&'a str>, BadRequest> {
    value
        .split(',')
        .map(|t| {
            let t = t.trim();
            let code = match t.split_once('|') {
                None => t,
                Some((s, c)) if s.is_empty() || s == system => c,
                Some(_) => return Err(bad(format!("{name}: only codes of {system} are served"))),
            };
            if code.is_empty() { Err(bad(format!("{name}: a code is empty"))) } else { Ok(code) }
        })
        .collect()
}

/// The id in a reference parameter: `Type/<id>`, `<base>/Type/<id>` or `<id>`.
pub fn reference_id<'a>(value: &'a str, name: &str, kind: &str) -> Result<&'a str, BadRequest> {
    let v = value.trim();
    let id = match v.rsplit_once('/') {
        None => v,
        Some((head, id)) if head == kind || head.ends_with(&format!("/{kind}")) => id,
        Some(_) => return Err(bad(format!("{name} must be {kind}/<id> or <id>"))),
    };
    if id.is_empty() { Err(bad(format!("{name} has no id"))) } else { Ok(id) }
}

/// `_format`, when given: JSON only (`json`, `application/json`, `application/fhir+json`).
pub fn check_format(p: Params<'_>) -> Result<(), BadRequest> {
    match p.query("_format").map(str::trim) {
        None | Some("json" | "application/json" | "application/fhir+json") => Ok(()),
        Some(_) => Err(bad("_format: this server answers FHIR JSON only (json or application/fhir+json)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zone() -> SourceZone {
        "+08:00".parse().unwrap()
    }

    fn ms(s: &str) -> i64 {
        DateTime::parse_from_rfc3339(s).unwrap().timestamp_millis()
    }

    #[test]
    fn dates_cover_their_precision_in_the_source_zone() {
        let r = date_range(&["ge2024-05-01", "le2024-05-14"], &zone()).unwrap();
        assert_eq!(r.start().ms(), ms("2024-05-01T00:00:00+08:00"));
        assert_eq!(r.end().ms(), ms("2024-05-15T00:00:00+08:00") - 1);
        let r = date_range(&["2024-05"], &zone()).unwrap();
        assert_eq!(
            (r.start().ms(), r.end().ms()),
            (ms("2024-05-01T00:00:00+08:00"), ms("2024-06-01T00:00:00+08:00") - 1)
        );
        let r = date_range(&["2024"], &zone()).unwrap();
        assert_eq!(r.end().ms(), ms("2025-01-01T00:00:00+08:00") - 1);
        let r = date_range(&["gt2024-05-02T10:15:00Z", "lt2024-05-02T11:00:00.5Z"], &zone()).unwrap();
        assert_eq!((r.start().ms(), r.end().ms()), (ms("2024-05-02T10:15:01Z"), ms("2024-05-02T11:00:00.5Z") - 1));
        // An unescaped + arrives as a space.
        let r = date_range(&["ge2024-05-02T10:15:00 08:00"], &zone()).unwrap();
        assert_eq!(r.start().ms(), ms("2024-05-02T10:15:00+08:00"));
        assert_eq!(date_range(&[], &zone()).unwrap(), TimeRange::ALL);
    }

    #[test]
    fn unsupported_prefixes_and_bad_dates_are_refused_by_name() {
        for (v, says) in [
            ("ne2024-05-01", "prefix ne is not supported"),
            ("ap2024-05-01", "prefix ap is not supported"),
            ("xx2024-05-01", "unknown prefix"),
            ("2024-13-01", "expected YYYY"),
            ("2024-05-02T10:15:00", "with seconds and its offset"),
            ("yesterday", "expected YYYY"),
        ] {
            let e = date_range(&[v], &zone()).unwrap_err().0;
            assert!(e.contains(says), "{v}: {e}");
        }
        let e = date_range(&["ge2024-05-02", "le2024-05-01"], &zone()).unwrap_err().0;
        assert!(e.contains("no time between"), "{e}");
    }

    #[test]
    fn tokens_and_references() {
        assert_eq!(codes("105272-9", "code", "http://loinc.org").unwrap(), ["105272-9"]);
        assert_eq!(
            codes("http://loinc.org|105272-9,|99504-3", "code", "http://loinc.org").unwrap(),
            ["105272-9", "99504-3"]
        );
        assert!(codes("http://snomed.info/sct|1", "code", "http://loinc.org").unwrap_err().0.contains("only codes of"));
        assert!(codes("a,,b", "code", "http://loinc.org").is_err());
        assert_eq!(reference_id("Device/SN1", "device", "Device").unwrap(), "SN1");
        assert_eq!(reference_id("https://x.example/fhir/Device/SN1", "device", "Device").unwrap(), "SN1");
        assert_eq!(reference_id("SN1", "device", "Device").unwrap(), "SN1");
        assert!(reference_id("Patient/1", "device", "Device").is_err());
        assert!(reference_id("Device/", "device", "Device").is_err());
    }
}
