//! `/api/v2/properties` as Nightscout's plugins compute them (`lib/plugins/bgnow.js`,
//! `lib/plugins/direction.js`, `lib/api2/properties.js`), from the newest entries: `bgnow`
//! (the newest 5-minute bucket), `delta` (that bucket against the one before, scaled to 5
//! minutes when they are more than 9 minutes apart), `direction` and `buckets`. What the
//! feed cannot know (`iob`, `cob`, `upbat`, pump, loop) is left out rather than invented.
//! Pure: entries in, JSON out.

use crate::entries::Entry;
use serde_json::{Map, Value, json};

/// Minutes of one bucket, and how many.
const BUCKET_MS: i64 = 5 * 60_000;
const BUCKETS: i64 = 4;

/// The properties Nightscout computes that this feed can: `bgnow`, `delta`, `direction`,
/// `buckets`.
pub const KNOWN: [&str; 4] = ["bgnow", "delta", "direction", "buckets"];

fn sgv_json(e: &Entry) -> Value {
    json!({"_id": e.id, "mgdl": e.sgv, "scaled": e.sgv, "mills": e.date, "device": e.device,
           "direction": e.direction, "type": "sgv"})
}

/// The arrow's character and HTML entity, as Nightscout's direction plugin shows them.
fn arrow(direction: &str) -> (&'static str, &'static str) {
    match direction {
        "DoubleUp" => ("⇈", "&#8648;"),
        "SingleUp" => ("↑", "&#8593;"),
        "FortyFiveUp" => ("↗", "&#8599;"),
        "Flat" => ("→", "&#8594;"),
        "FortyFiveDown" => ("↘", "&#8600;"),
        "SingleDown" => ("↓", "&#8595;"),
        "DoubleDown" => ("⇊", "&#8650;"),
        _ => ("-", "&#8211;"),
    }
}

struct Bucket<'a> {
    from: i64,
    to: i64,
    sgvs: Vec<&'a Entry>,
}

impl Bucket<'_> {
    fn mean(&self) -> Option<f64> {
        (!self.sgvs.is_empty()).then(|| self.sgvs.iter().map(|e| e.sgv as f64).sum::<f64>() / self.sgvs.len() as f64)
    }

    fn mills(&self) -> Option<i64> {
        self.sgvs.first().map(|e| e.date)
    }
}

/// The properties of `entries` (newest first), those named in `only` when given, scaled to
/// mmol/L where Nightscout scales (`scaled`, `display`) when `mmol`.
pub fn properties(entries: &[Entry], only: Option<&[&str]>, mmol: bool) -> Map<String, Value> {
    let mut out = Map::new();
    let Some(newest) = entries.first() else { return out };
    // Buckets back from just after the newest reading.
    let end = newest.date + 1;
    let buckets: Vec<Bucket> = (0..BUCKETS)
        .map(|i| {
            let (from, to) = (end - (i + 1) * BUCKET_MS, end - i * BUCKET_MS);
            Bucket { from, to, sgvs: entries.iter().filter(|e| e.date >= from && e.date < to).collect() }
        })
        .collect();
    let scale =
        |mgdl: f64| if mmol { (mgdl / cgm_domain::metrics::MG_DL_PER_MMOL * 10.0).round() / 10.0 } else { mgdl };
    let recent = &buckets[0];
    let mean = recent.mean().unwrap_or(newest.sgv as f64);
    let wanted = |name: &str| only.is_none_or(|o| o.contains(&name));
    if wanted("bgnow") {
        out.insert(
            "bgnow".into(),
            json!({"mean": mean, "last": newest.sgv, "mills": newest.date,
                   "sgvs": recent.sgvs.iter().map(|e| sgv_json(e)).collect::<Vec<_>>()}),
        );
    }
    if wanted("delta")
        && let Some(previous) = buckets[1..].iter().find(|b| !b.sgvs.is_empty())
        && let (Some(p_mean), Some(p_mills), Some(r_mills)) = (previous.mean(), previous.mills(), recent.mills())
    {
        let absolute = mean - p_mean;
        let elapsed = (r_mills - p_mills) as f64 / 60_000.0;
        let interpolated = elapsed > 9.0;
        let mean5 = if interpolated { mean - absolute / elapsed * 5.0 } else { mean - absolute };
        let mgdl = (mean - mean5).round();
        let scaled = scale(mgdl);
        let display = if scaled >= 0.0 { format!("+{scaled}") } else { format!("{scaled}") };
        out.insert(
            "delta".into(),
            json!({"absolute": absolute, "elapsedMins": elapsed, "interpolated": interpolated,
                   "mean5MinsAgo": mean5, "mgdl": mgdl as i64, "scaled": scaled, "display": display,
                   "times": {"recent": r_mills, "previous": p_mills}}),
        );
    }
    if wanted("direction") {
        let (label, entity) = arrow(newest.direction);
        out.insert(
            "direction".into(),
            json!({"value": newest.direction, "label": label, "entity": entity, "display": label, "mills": newest.date}),
        );
    }
    if wanted("buckets") {
        let list: Vec<Value> = buckets
            .iter()
            .enumerate()
            .map(|(i, b)| {
                json!({"index": i, "fromMills": b.from, "toMills": b.to, "mean": b.mean(),
                       "last": b.sgvs.first().map(|e| e.sgv), "mills": b.mills(),
                       "sgvs": b.sgvs.iter().map(|e| sgv_json(e)).collect::<Vec<_>>()})
            })
            .collect();
        out.insert("buckets".into(), Value::Array(list));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(min: i64, sgv: i64, direction: &'static str) -> Entry {
        Entry {
            id: format!("e{min}"),
            kind: "sgv",
            sgv,
            date: 1_000_000_000_000 + min * 60_000,
            date_string: String::new(),
            sys_time: String::new(),
            utc_offset: 480,
            direction,
            delta: None,
            noise: 1,
            device: "iCan SN".into(),
        }
    }

    #[test]
    fn bgnow_delta_and_direction_from_three_minute_readings() {
        // Newest first: 120 at minute 9, 114 at 6, 110 at 3, 104 at 0.
        let entries = [e(9, 120, "SingleUp"), e(6, 114, "FortyFiveUp"), e(3, 110, "Flat"), e(0, 104, "Flat")];
        let p = properties(&entries, None, false);
        // Bucket 0 holds minutes 4..9 (120, 114), bucket 1 holds 0 and 3 (110, 104).
        assert_eq!(p["bgnow"]["mean"].as_f64(), Some(117.0));
        assert_eq!(
            (p["bgnow"]["last"].as_i64(), p["bgnow"]["sgvs"][0]["direction"].as_str()),
            (Some(120), Some("SingleUp"))
        );
        assert_eq!(p["delta"]["mgdl"], 10, "117 − 107, 9 minutes apart: not interpolated");
        assert_eq!((p["delta"]["display"].as_str(), p["delta"]["interpolated"].as_bool()), (Some("+10"), Some(false)));
        assert_eq!((p["direction"]["value"].as_str(), p["direction"]["label"].as_str()), (Some("SingleUp"), Some("↑")));
        assert_eq!(p["buckets"].as_array().unwrap().len(), 4);
        for absent in ["iob", "cob", "upbat"] {
            assert!(p.get(absent).is_none(), "{absent} is not invented");
        }
    }

    #[test]
    fn a_gap_scales_the_delta_to_five_minutes_and_mmol_scales_the_display() {
        // 20 minutes apart would be outside the buckets; 12 minutes: interpolated.
        let entries = [e(12, 130, "Flat"), e(0, 100, "Flat")];
        let p = properties(&entries, None, false);
        assert_eq!(
            (p["delta"]["mgdl"].as_i64(), p["delta"]["interpolated"].as_bool()),
            (Some(13), Some(true)),
            "30 over 12 min → 12.5 per 5"
        );
        let p = properties(&entries, Some(&["delta"]), true);
        assert_eq!(p["delta"]["display"], "+0.7");
        assert_eq!(p.keys().collect::<Vec<_>>(), ["delta"], "only what was named");
        assert!(properties(&[e(0, 100, "Flat")], None, false).get("delta").is_none(), "no previous bucket: no delta");
        assert!(properties(&[], None, false).is_empty());
    }
}
