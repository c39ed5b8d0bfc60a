//! Nightscout's API v3 search, as its source defines it (nightscout/cgm-remote-monitor
//! `lib/api3/generic/search/input.js`, `generic/collection.js`, `shared/fieldsProjector.js`),
//! for the collections a follower reads: `GET /api/v3/entries` (and the empty
//! `treatments`, `devicestatus`).
//!
//! - Reserved parameters: `token`, `sort`, `sort$desc`, `limit`, `skip`, `fields`, `now`;
//!   every other one is a filter `field$op=value` (`field=value` is `eq`).
//! - Operators `eq ne gt gte lt lte in nin re`; another is 400 "Unsupported filter operator"
//!   as Nightscout answers. Of those, the feed applies what [`crate::find`] applies to v1's
//!   `find[...]` and refuses the rest by name, as it refuses a field it cannot filter on
//!   (Nightscout would hand both to MongoDB and silently match nothing).
//! - `limit`: 1 to 1000, default 1000, else 400 "Parameter limit out of tolerance";
//!   `skip` ≥ 0; `sort` or `sort$desc`, not both; no sort is ascending, as Nightscout's.
//! - `fields`: a comma list, or `_all` (the default).
//!
//! Pure: parameters in, a search out; [`document`] turns an entry into a v3 document.

use crate::entries::Entry;
use crate::find::{self, Dates, EntryFilter, Op};
use serde_json::{Map, Value};

/// Nightscout's `API3_MAX_LIMIT` default, and the default `limit`.
pub const MAX_LIMIT: usize = 1000;

/// The API version answered by `/api/v3/version`: the Nightscout v3 this follows.
pub const API_VERSION: &str = "3.0.3-alpha";

/// A v3 search of one collection.
#[derive(Debug, Clone, PartialEq)]
pub struct Search {
    pub filter: EntryFilter,
    pub newest_first: bool,
    pub limit: usize,
    pub skip: usize,
    /// The fields to return; `None` is all of them.
    pub fields: Option<Vec<String>>,
}

const RESERVED: [&str; 7] = ["token", "sort", "sort$desc", "limit", "skip", "fields", "now"];

/// Which collection a search reads: entries are filtered, the empty ones only checked.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Collection {
    Entries,
    /// Treatments and device status: none are kept, so any field is a filter that holds.
    Empty,
}

fn op(key: &str, name: &str) -> Result<Option<Op>, String> {
    Ok(Some(match name {
        "eq" => Op::Eq,
        "ne" => Op::Ne,
        "gt" => Op::Gt,
        "gte" => Op::Gte,
        "lt" => Op::Lt,
        "lte" => Op::Lte,
        // Nightscout's own operators this feed does not apply.
        "in" | "nin" | "re" => return Ok(None),
        other => {
            return Err(format!("Unsupported filter operator {} ({key})", cgm_domain::ids::clip_for_log(other)));
        }
    }))
}

/// `field$op` as Nightscout splits it (`/(.*)\$([a-zA-Z]+)/`), `eq` without a `$op`.
fn split(key: &str) -> (&str, &str) {
    match key.rsplit_once('$') {
        Some((field, name)) if !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphabetic()) => (field, name),
        _ => (key, "eq"),
    }
}

/// A number, as Nightscout reads `limit` and `skip` before its `parseInt` (`5.5` is 5).
fn whole(v: &str) -> Option<f64> {
    v.trim().parse::<f64>().ok().filter(|x| x.is_finite())
}

/// The search a request's parameters ask for, or the message of Nightscout's 400.
pub fn search<'a>(
    pairs: impl IntoIterator<Item = (&'a str, &'a str)> + Clone,
    collection: Collection,
) -> Result<Search, String> {
    let get = |name: &str| pairs.clone().into_iter().find(|(k, _)| *k == name).map(|(_, v)| v);
    let limit = match get("limit").map(str::trim).filter(|v| !v.is_empty()) {
        None => MAX_LIMIT,
        Some(v) => match whole(v) {
            Some(n) if (1.0..=MAX_LIMIT as f64).contains(&n) => n as usize,
            _ => return Err(format!("Parameter limit out of tolerance (1 to {MAX_LIMIT})")),
        },
    };
    let skip = match get("skip").map(str::trim).filter(|v| !v.is_empty()) {
        None => 0,
        Some(v) => match whole(v) {
            Some(n) if n >= 0.0 => n as usize,
            _ => return Err("Parameter skip out of tolerance (a whole number, 0 or more)".into()),
        },
    };
    let newest_first = match (get("sort"), get("sort$desc")) {
        (Some(_), Some(_)) => return Err("Parameters sort and sort_desc cannot be combined".into()),
        (None, None) => false,
        (Some(f), None) => sorted_by(collection, "sort", f)?,
        (None, Some(f)) => sorted_by(collection, "sort$desc", f)?,
    };
    let fields = match get("fields").map(str::trim) {
        None | Some("") | Some("_all") => None,
        Some(list) => Some(list.split(',').map(|f| f.trim().to_string()).filter(|f| !f.is_empty()).collect()),
    };
    let mut filter = EntryFilter::default();
    for (key, value) in pairs {
        if RESERVED.contains(&key) {
            continue;
        }
        let (field, name) = split(key);
        let Some(op) = op(key, name)? else {
            return Err(format!("{key}: the feed applies eq, ne, gt, gte, lt and lte, not {name}"));
        };
        if collection == Collection::Entries {
            find::apply(&mut filter, key, field, op, value, Dates::Moment)?;
        }
    }
    Ok(Search { filter, newest_first, limit, skip, fields })
}

/// Whether `sort`/`sort$desc` names a field the feed can order by (its documents' times are
/// one order); `true` for `sort$desc`.
fn sorted_by(collection: Collection, param: &str, field: &str) -> Result<bool, String> {
    match (collection, field.trim()) {
        (Collection::Empty, _) | (_, "date" | "srvModified" | "srvCreated" | "dateString" | "sysTime") => {
            Ok(param == "sort$desc")
        }
        (_, other) => Err(format!(
            "{param}: the feed sorts entries by date (srvModified, srvCreated), not {}",
            cgm_domain::ids::clip_for_log(other)
        )),
    }
}

/// The v3 document of an entry: its fields without `_id`, and `identifier` (the v1 `_id`, as
/// Nightscout names a v1 document in v3), `srvModified` and `srvCreated`. A stored reading
/// never changes and the readings index holds no arrival time, so both are its `date`
/// (Nightscout's own fallback for a document without them, `lib/api3/generic/setup.js`).
/// Only `fields` when given.
pub fn document(e: &Entry, fields: Option<&[String]>) -> Value {
    let Ok(Value::Object(mut all)) = serde_json::to_value(e) else { return Value::Object(Map::new()) };
    if let Some(id) = all.remove("_id") {
        all.insert("identifier".into(), id);
    }
    all.insert("srvModified".into(), Value::from(e.date));
    all.insert("srvCreated".into(), Value::from(e.date));
    match fields {
        None => Value::Object(all),
        Some(names) => Value::Object(names.iter().filter_map(|n| all.remove_entry(n.as_str())).collect()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(q: &[(&str, &str)]) -> Result<Search, String> {
        search(q.iter().copied(), Collection::Entries)
    }

    #[test]
    fn xdrip_v3_follower_search() {
        let s = of(&[
            ("sort$desc", "date"),
            ("type", "sgv"),
            ("date$gt", "1714521600000"),
            ("limit", "288"),
            ("fields", "date,dateString,sysTime,sgv,unfiltered,filtered,noise,identifier"),
        ])
        .unwrap();
        assert!(s.newest_first);
        assert_eq!((s.limit, s.skip), (288, 0));
        assert_eq!(s.filter.from_ms, Some(1_714_521_600_001));
        assert!(!s.filter.no_sgv);
        assert_eq!(s.fields.as_ref().map(Vec::len), Some(8));
    }

    #[test]
    fn defaults_are_nightscouts() {
        let s = of(&[]).unwrap();
        assert!(!s.newest_first, "no sort is ascending");
        assert_eq!((s.limit, s.skip, s.fields), (MAX_LIMIT, 0, None));
        assert_eq!(of(&[("fields", "_all"), ("token", "x"), ("now", "1")]).unwrap().fields, None);
        assert_eq!(of(&[("limit", "5.5")]).unwrap().limit, 5);
        assert_eq!(of(&[("skip", "3")]).unwrap().skip, 3);
        assert!(!of(&[("sort", "date")]).unwrap().newest_first);
    }

    #[test]
    fn dates_as_v3_reads_them() {
        // Seconds below 2000-01-01 in ms; ISO 8601; srvModified is the date here.
        assert_eq!(of(&[("date$gte", "1714521600")]).unwrap().filter.from_ms, Some(1_714_521_600_000));
        assert_eq!(of(&[("date$lt", "2024-05-01T08:00:00+08:00")]).unwrap().filter.to_ms, Some(1_714_521_599_999));
        assert_eq!(of(&[("srvModified$gt", "1714521600000")]).unwrap().filter.from_ms, Some(1_714_521_600_001));
        assert!(of(&[("type", "mbg")]).unwrap().filter.no_sgv);
        assert!(of(&[("type$ne", "'sgv'")]).unwrap().filter.no_sgv);
    }

    #[test]
    fn what_cannot_be_applied_is_refused_by_name() {
        for (k, v, says) in [
            ("limit", "1001", "limit out of tolerance"),
            ("limit", "0", "limit out of tolerance"),
            ("limit", "many", "limit out of tolerance"),
            ("skip", "-1", "skip out of tolerance"),
            ("date$between", "1", "Unsupported filter operator between"),
            ("sgv$in", "100|120", "not in"),
            ("noise$gte", "1", "noise"),
            ("sort$desc", "sgv", "not sgv"),
            ("date$gt", "yesterday", "ISO 8601"),
        ] {
            let e = of(&[(k, v)]).unwrap_err();
            assert!(e.contains(says), "{k}={v}: {e}");
        }
        let e = of(&[("sort", "date"), ("sort$desc", "date")]).unwrap_err();
        assert!(e.contains("cannot be combined"), "{e}");
        // The empty collections take any field, but not an unknown operator or a bad limit.
        assert!(search([("eventType", "Temp Basal"), ("created_at$gte", "x")], Collection::Empty).is_ok());
        assert!(search([("created_at$after", "x")], Collection::Empty).is_err());
        assert!(search([("limit", "2000")], Collection::Empty).is_err());
    }

    #[test]
    fn documents_carry_v3s_fields_and_only_those_asked() {
        let e = Entry {
            id: "T1".into(),
            kind: "sgv",
            sgv: 120,
            date: 1_714_521_600_000,
            date_string: "2024-05-01T00:00:00.000Z".into(),
            sys_time: "2024-05-01T00:00:00.000Z".into(),
            utc_offset: 480,
            direction: "Flat",
            delta: Some(1.5),
            noise: 1,
            device: "iCan SN1".into(),
        };
        let all = document(&e, None);
        assert_eq!(all["identifier"], "T1");
        assert_eq!(all["srvModified"], 1_714_521_600_000i64);
        assert_eq!(all["srvCreated"], 1_714_521_600_000i64);
        assert!(all.get("_id").is_none());
        assert_eq!(all["sgv"], 120);
        let some = document(&e, Some(&["date".into(), "sgv".into(), "identifier".into(), "unfiltered".into()]));
        let keys: Vec<&String> = some.as_object().unwrap().keys().collect();
        assert_eq!(keys.len(), 3, "{some}");
        assert_eq!(some["identifier"], "T1");
    }
}
