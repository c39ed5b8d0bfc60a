//! Readings as Nightscout `sgv` entries, so followers built for Nightscout (xDrip+,
//! LoopFollow, nightguard, the Nightscout web page, watch faces) can show iCan data.
//!
//! Nightscout's entry as uploaders write it: `_id`, `type` `"sgv"`, `sgv` (mg/dL, a whole
//! number), `date` (ms), `dateString` and `sysTime` (ISO 8601, UTC), `utcOffset` (minutes),
//! `direction` (the trend arrow's name, always present: some followers skip an entry
//! without one), `delta` (mg/dL over 5 minutes, when the previous reading is recent enough),
//! `noise` and `device`. Arrow and delta come from the rate of change against the previous
//! reading ([`cgm_domain::trend`]). Pure functions: no storage, no HTTP.

use cgm_domain::metrics::MG_DL_PER_MMOL;
use cgm_domain::store::reads::StoredReading;
use cgm_domain::time::SourceZone;
use cgm_domain::trend::{self, direction};
use serde::Serialize;

/// mg/dL as Nightscout shows it: a whole number.
pub fn sgv(mmol: f64) -> i64 {
    (mmol * MG_DL_PER_MMOL).round() as i64
}

/// mg/dL per minute from `previous` to `current` ([`cgm_domain::trend::rate`]).
pub fn rate(current: &StoredReading, previous: Option<&StoredReading>) -> Option<f64> {
    trend::rate((current.measured_at, current.mmol), previous.map(|p| (p.measured_at, p.mmol)))
}

/// One Nightscout `sgv` entry, as uploaders write them and followers read them.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    #[serde(rename = "_id")]
    pub id: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub sgv: i64,
    pub date: i64,
    pub date_string: String,
    pub sys_time: String,
    pub utc_offset: i32,
    pub direction: &'static str,
    /// mg/dL, the rate against the previous reading scaled to 5 minutes, as Nightscout's
    /// `bgnow` scales it; absent without a previous reading within the trend window.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delta: Option<f64>,
    /// Nightscout's noise level: 1 (clean). Only readings the sensor marked valid are served.
    pub noise: u8,
    pub device: String,
}

/// Minutes Nightscout's delta is scaled to.
const DELTA_MINUTES: f64 = 5.0;

/// The entry of `r`, its trend against `previous` (the reading before it, if any).
pub fn entry(r: &StoredReading, previous: Option<&StoredReading>, zone: &SourceZone) -> Entry {
    let date_string = r.measured_at.utc_text().unwrap_or_default();
    let utc_offset = r.measured_at.to_datetime().map_or(0, |at| zone.offset_at(at).local_minus_utc() / 60);
    let rate = rate(r, previous);
    Entry {
        id: r.test_id.to_string(),
        kind: "sgv",
        sgv: sgv(r.mmol),
        date: r.measured_at.ms(),
        sys_time: date_string.clone(),
        date_string,
        utc_offset,
        direction: direction(rate),
        delta: rate.map(|m| (m * DELTA_MINUTES * 1000.0).round() / 1000.0),
        noise: 1,
        device: format!("iCan {}", r.device_sn),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(id: &str, at: i64, mmol: f64) -> StoredReading {
        StoredReading {
            test_id: id.into(),
            device_sn: "SN1".into(),
            measured_at: cgm_domain::time::Timestamp::from_ms(at),
            mmol,
            serial_no: None,
            status: Some("0".into()),
            valid: true,
            incre_minute: Some(3),
            low: None,
            high: None,
        }
    }

    use cgm_domain::trend::TREND_WINDOW_MS;

    #[test]
    fn thresholds_are_nightscouts() {
        let cases = [
            (3.0, "DoubleUp"),
            (2.99, "SingleUp"),
            (2.0, "SingleUp"),
            (1.0, "FortyFiveUp"),
            (0.99, "Flat"),
            (-0.99, "Flat"),
            (-1.0, "FortyFiveDown"),
            (-2.0, "SingleDown"),
            (-2.99, "SingleDown"),
            (-3.0, "DoubleDown"),
        ];
        for (r, want) in cases {
            assert_eq!(direction(Some(r)), want, "{r}");
        }
        assert_eq!(direction(None), "NONE");
    }

    #[test]
    fn mg_dl_are_rounded_whole_numbers() {
        // 5.6 × 18.016 = 100.8896 → 101; 3.9 × 18.016 = 70.2624 → 70.
        assert_eq!(sgv(5.6), 101);
        assert_eq!(sgv(3.9), 70);
    }

    #[test]
    fn rate_against_the_previous_reading() {
        // +0.5 mmol/L in 3 min: 0.5 × 18.016 / 3 = 3.0027 mg/dL/min → DoubleUp.
        let now = reading("b", 180_000, 5.5);
        let before = reading("a", 0, 5.0);
        let r = rate(&now, Some(&before)).unwrap();
        assert!((r - 3.002_667).abs() < 1e-5, "{r}");
        // −0.3 mmol/L in 3 min: −1.8016 → FortyFiveDown.
        assert_eq!(direction(rate(&reading("c", 180_000, 4.7), Some(&before))), "FortyFiveDown");
        // More than 15 minutes apart: no arrow.
        assert_eq!(rate(&reading("d", TREND_WINDOW_MS + 1, 9.0), Some(&before)), None);
    }

    #[test]
    fn an_entry_carries_what_followers_read() {
        let (now, before) = (reading("c", 360_000, 5.0), reading("b", 180_000, 4.0));
        let e = serde_json::to_value(entry(&now, Some(&before), &SourceZone::default())).unwrap();
        assert_eq!((e["_id"].as_str(), e["type"].as_str()), (Some("c"), Some("sgv")));
        assert_eq!(e["sgv"], 90);
        // 1.0 mmol/L in 3 min = 6.005 mg/dL/min, 30.027 over 5 minutes.
        assert_eq!(e["direction"], "DoubleUp");
        assert_eq!(e["delta"].as_f64(), Some(30.027));
        assert_eq!(e["dateString"], "1970-01-01T00:06:00.000Z");
        assert_eq!(e["sysTime"], "1970-01-01T00:06:00.000Z");
        assert_eq!((e["utcOffset"].as_i64(), e["noise"].as_i64()), (Some(480), Some(1)));
        assert_eq!(e["device"], "iCan SN1");
        let alone = serde_json::to_value(entry(&now, None, &SourceZone::default())).unwrap();
        assert_eq!(alone["direction"], "NONE", "always a direction");
        assert!(alone.get("delta").is_none(), "no delta without a previous reading: {alone}");
    }
}
