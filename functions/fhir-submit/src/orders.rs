//! What to send for a patient, and how often: a [`Plan`], from the configuration
//! (`FHIR_SUBMIT_PROFILES`, `FHIR_SUMMARY_PERIOD_DAYS`) or from the EHR's standing orders
//! (`FHIR_READ_STANDING_ORDERS=true`).
//!
//! A standing order is the IG's `cgm-data-submission-standing-order`, a `ServiceRequest`
//! for the patient with `data-submission-schedule` extensions (profiles.fsh, "Extension:
//! DataSubmissionSchedule"): each names `submissionPeriod` (how often, 1..1), an optional
//! `lookbackPeriod` (how far back a submission covers) and `submissionDataProfile`s (1..*,
//! what to send), the periods as UCUM units of time. The profiles this submitter makes are
//! the two reading profiles (the unit follows the one asked for), `cgm-summary` and its
//! members, and `cgm-summary-pdf` (which refers to its panel, so the panel goes with it).
//! When several schedules ask for one kind, the most frequent one is followed. A profile
//! it cannot make is logged by name and left out; a schedule it cannot read is an error
//! naming the order and the element, and nothing is guessed for that patient.

use cgm_fhir_profiles::GlucoseUnit;
use cgm_shared::config::FhirSubmitSettings;
use serde_json::Value;

const CANONICAL: &str = "http://hl7.org/fhir/uv/cgm/StructureDefinition/";
/// The IG's CodeSystem `CGMCodes` (profiles.fsh, `Id: cgm`).
pub const CGM_CODES: &str = "http://hl7.org/fhir/uv/cgm/CodeSystem/cgm";
pub const STANDING_ORDER: &str = "cgm-data-submission-standing-order";
const SCHEDULE: &str = "http://hl7.org/fhir/uv/cgm/StructureDefinition/data-submission-schedule";
const DAY_MS: i64 = 86_400_000;
/// The longest summary the submitter computes (the FHIR read API's limit too).
const MAX_SUMMARY_DAYS: i64 = 90;

/// The readings: sent at most once per `every_ms` (0: each run), the first submission
/// going back no further than `lookback_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadingsPlan {
    pub every_ms: i64,
    pub lookback_ms: Option<i64>,
    pub unit: GlucoseUnit,
}

/// A summary (and its PDF when `pdf`) every `every_days` local days, each covering the
/// `lookback_days` local days that end with the period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SummaryPlan {
    pub every_days: i64,
    pub lookback_days: i64,
    pub pdf: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Plan {
    pub readings: Option<ReadingsPlan>,
    pub summary: Option<SummaryPlan>,
}

/// A standing order that cannot be followed: which one, and what in it. Never the patient.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("standing order {order}: {what}")]
pub struct OrderError {
    pub order: String,
    pub what: String,
}

impl Plan {
    /// What the configuration says: readings each run, a summary every
    /// `FHIR_SUMMARY_PERIOD_DAYS` over those days.
    pub fn configured(s: &FhirSubmitSettings, unit: GlucoseUnit) -> Plan {
        let days = i64::try_from(s.summary_period_days).unwrap_or(14);
        Plan {
            readings: s.submit_readings.then_some(ReadingsPlan { every_ms: 0, lookback_ms: None, unit }),
            summary: s.submit_summary.then_some(SummaryPlan {
                every_days: days,
                lookback_days: days,
                pdf: s.submit_summary_pdf,
            }),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.readings.is_none() && self.summary.is_none()
    }

    /// The plan the active standing orders of a searchset Bundle ask for, and the profiles
    /// they name that this submitter does not make. `unit` is the reading unit used when an
    /// order asks for both.
    pub fn from_orders(searchset: &Value, unit: GlucoseUnit) -> Result<(Plan, Vec<String>), OrderError> {
        let mut plan = Plan::default();
        let mut ignored = Vec::new();
        let orders = searchset["entry"].as_array().map(Vec::as_slice).unwrap_or_default();
        for order in orders.iter().map(|e| &e["resource"]) {
            if order["resourceType"] != "ServiceRequest" || !is_standing_order(order) {
                continue;
            }
            if order["status"].as_str().is_some_and(|s| s != "active") {
                continue;
            }
            let id = order["id"].as_str().unwrap_or("(no id)").to_string();
            let err = |what: String| OrderError { order: id.clone(), what };
            let schedules = order["extension"].as_array().map(Vec::as_slice).unwrap_or_default();
            for (i, ext) in schedules.iter().enumerate().filter(|(_, e)| e["url"] == SCHEDULE) {
                let at = |name: &str| format!("extension[{i}].extension[{name}]");
                let part = |name: &str| -> Vec<&Value> {
                    ext["extension"].as_array().into_iter().flatten().filter(|e| e["url"] == name).collect()
                };
                let every = match part("submissionPeriod").as_slice() {
                    [one] => {
                        period_ms(&one["valueQuantity"]).map_err(|w| err(format!("{}: {w}", at("submissionPeriod"))))?
                    }
                    _ => return Err(err(format!("{}: exactly one is required", at("submissionPeriod")))),
                };
                let lookback = match part("lookbackPeriod").as_slice() {
                    [] => None,
                    [one] => Some(
                        period_ms(&one["valueQuantity"]).map_err(|w| err(format!("{}: {w}", at("lookbackPeriod"))))?,
                    ),
                    _ => return Err(err(format!("{}: at most one is allowed", at("lookbackPeriod")))),
                };
                let profiles = part("submissionDataProfile");
                if profiles.is_empty() {
                    return Err(err(format!("{}: at least one is required", at("submissionDataProfile"))));
                }
                for p in profiles {
                    let Some(canonical) = p["valueCanonical"].as_str() else {
                        return Err(err(format!("{}: valueCanonical is required", at("submissionDataProfile"))));
                    };
                    // A canonical may carry its version: `…/cgm-summary|1.0.0`.
                    let name = canonical.split('|').next().unwrap_or("").strip_prefix(CANONICAL);
                    match name {
                        Some(r @ ("cgm-sensor-reading-moles-per-volume" | "cgm-sensor-reading-mass-per-volume")) => {
                            let asked = if r.ends_with("mass-per-volume") {
                                GlucoseUnit::MgPerDl
                            } else {
                                GlucoseUnit::MmolPerL
                            };
                            let r_unit = match plan.readings {
                                Some(p) if p.unit != asked => unit,
                                _ => asked,
                            };
                            plan.readings = Some(match plan.readings {
                                Some(p) if p.every_ms < every => ReadingsPlan { unit: r_unit, ..p },
                                // As often: the further lookback (none is all of it).
                                Some(p) if p.every_ms == every => ReadingsPlan {
                                    unit: r_unit,
                                    lookback_ms: p.lookback_ms.zip(lookback).map(|(a, b)| a.max(b)),
                                    ..p
                                },
                                _ => ReadingsPlan { every_ms: every, lookback_ms: lookback, unit: r_unit },
                            });
                        }
                        Some(s) if s == "cgm-summary-pdf" || s.starts_with("cgm-summary") => {
                            let pdf = s == "cgm-summary-pdf";
                            let every_days = days(every);
                            let asked = lookback.map_or(every_days, days);
                            if asked > MAX_SUMMARY_DAYS {
                                tracing::warn!(
                                    days = asked,
                                    "a standing order's lookback is longer than a summary covers: 90 days are sent"
                                );
                            }
                            let lookback_days = asked.min(MAX_SUMMARY_DAYS);
                            plan.summary = Some(match plan.summary {
                                Some(p) if p.every_days < every_days => SummaryPlan { pdf: p.pdf || pdf, ..p },
                                Some(p) if p.every_days == every_days => SummaryPlan {
                                    pdf: p.pdf || pdf,
                                    lookback_days: p.lookback_days.max(lookback_days),
                                    ..p
                                },
                                _ => SummaryPlan { every_days, lookback_days, pdf },
                            });
                        }
                        _ => ignored.push(canonical.to_string()),
                    }
                }
            }
        }
        Ok((plan, ignored))
    }
}

/// The searchset's orders of the one patient searched for. An EHR that ignored the patient
/// parameter would answer every patient's orders: with the patient's logical id known, the
/// others are dropped; without it (the search named the patient by identifier), orders of
/// more than one subject are refused, since none can be told to be this patient's.
pub fn of_one_patient(mut searchset: Value, ehr_id: Option<&str>) -> Result<Value, OrderError> {
    let entries = searchset["entry"].as_array().cloned().unwrap_or_default();
    let subject = |e: &Value| e["resource"]["subject"]["reference"].as_str().map(str::to_string);
    let kept: Vec<Value> = match ehr_id {
        Some(id) => {
            let want = format!("Patient/{id}");
            entries
                .into_iter()
                .filter(|e| subject(e).is_some_and(|s| s == want || s.ends_with(&format!("/{want}"))))
                .collect()
        }
        None => {
            let subjects: std::collections::BTreeSet<Option<String>> = entries.iter().map(subject).collect();
            if subjects.len() > 1 {
                return Err(OrderError {
                    order: "(search)".into(),
                    what: format!(
                        "the EHR answered standing orders of {} patients to a search for one (it may not support \
                         the patient parameter); set FhirPatientReference=search so orders can be matched by id",
                        subjects.len()
                    ),
                });
            }
            entries
        }
    };
    searchset["entry"] = Value::Array(kept);
    Ok(searchset)
}

fn is_standing_order(order: &Value) -> bool {
    order["code"]["coding"]
        .as_array()
        .is_some_and(|c| c.iter().any(|c| c["system"] == CGM_CODES && c["code"] == STANDING_ORDER))
}

/// A UCUM unit of time (the `units-of-time` value set) as milliseconds; `mo` and `a` are
/// UCUM's mean Julian month (30.4375 d) and year (365.25 d).
fn period_ms(q: &Value) -> Result<i64, String> {
    let value = q["value"].as_f64().filter(|v| v.is_finite() && *v > 0.0).ok_or("a positive value is required")?;
    if q["system"].as_str().is_some_and(|s| s != "http://unitsofmeasure.org") {
        return Err("the unit must be UCUM's (http://unitsofmeasure.org)".into());
    }
    let unit_ms = match q["code"].as_str() {
        Some("s") => 1_000.0,
        Some("min") => 60_000.0,
        Some("h") => 3_600_000.0,
        Some("d") => DAY_MS as f64,
        Some("wk") => 7.0 * DAY_MS as f64,
        Some("mo") => 30.4375 * DAY_MS as f64,
        Some("a") => 365.25 * DAY_MS as f64,
        _ => return Err("code must be one of s, min, h, d, wk, mo, a".into()),
    };
    let ms = value * unit_ms;
    if ms > 100.0 * 365.25 * DAY_MS as f64 {
        return Err("longer than a hundred years".into());
    }
    Ok(ms.round() as i64)
}

/// Whole local days of a period (a summary covers whole days): at least one.
fn days(ms: i64) -> i64 {
    ((ms + DAY_MS / 2) / DAY_MS).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn order(id: &str, schedules: Value) -> Value {
        json!({"resource": {
            "resourceType": "ServiceRequest", "id": id, "status": "active", "intent": "order",
            "code": {"coding": [{"system": CGM_CODES, "code": STANDING_ORDER}]},
            "subject": {"reference": "Patient/p1"},
            "extension": schedules,
        }})
    }

    fn schedule(every: Value, lookback: Option<Value>, profiles: &[&str]) -> Value {
        let mut parts = vec![json!({"url": "submissionPeriod", "valueQuantity": every})];
        if let Some(l) = lookback {
            parts.push(json!({"url": "lookbackPeriod", "valueQuantity": l}));
        }
        parts.extend(
            profiles
                .iter()
                .map(|p| json!({"url": "submissionDataProfile", "valueCanonical": format!("{CANONICAL}{p}")})),
        );
        json!({"url": SCHEDULE, "extension": parts})
    }

    fn ucum(value: f64, code: &str) -> Value {
        json!({"value": value, "system": "http://unitsofmeasure.org", "code": code})
    }

    fn bundle(entries: Vec<Value>) -> Value {
        json!({"resourceType": "Bundle", "type": "searchset", "entry": entries})
    }

    #[test]
    fn the_igs_example_asks_for_a_summary_and_its_pdf_every_two_weeks() {
        // examples.fsh, cgmDataSubmissionStandingOrderExample.
        let b =
            bundle(vec![order("so-1", json!([schedule(ucum(2.0, "wk"), None, &["cgm-summary", "cgm-summary-pdf"])]))]);
        let (plan, ignored) = Plan::from_orders(&b, GlucoseUnit::MmolPerL).unwrap();
        assert_eq!(plan.readings, None);
        assert_eq!(plan.summary, Some(SummaryPlan { every_days: 14, lookback_days: 14, pdf: true }));
        assert!(ignored.is_empty());
    }

    #[test]
    fn readings_follow_the_profile_asked_for_and_the_most_frequent_schedule() {
        let b = bundle(vec![
            order(
                "a",
                json!([schedule(ucum(1.0, "d"), Some(ucum(30.0, "d")), &["cgm-sensor-reading-mass-per-volume|1.0.0"])]),
            ),
            order(
                "b",
                json!([
                    schedule(ucum(6.0, "h"), None, &["cgm-sensor-reading-mass-per-volume"]),
                    schedule(ucum(1.0, "mo"), Some(ucum(3.0, "mo")), &["cgm-summary"])
                ]),
            ),
        ]);
        let (plan, _) = Plan::from_orders(&b, GlucoseUnit::MmolPerL).unwrap();
        assert_eq!(
            plan.readings,
            Some(ReadingsPlan { every_ms: 6 * 3_600_000, lookback_ms: None, unit: GlucoseUnit::MgPerDl })
        );
        // A UCUM month is 30.4375 days; a summary covers whole days, at most 90.
        assert_eq!(plan.summary, Some(SummaryPlan { every_days: 30, lookback_days: 90, pdf: false }));
    }

    #[test]
    fn no_order_or_another_kind_of_request_asks_for_nothing() {
        assert!(Plan::from_orders(&bundle(vec![]), GlucoseUnit::MmolPerL).unwrap().0.is_empty());
        let mut other = order("x", json!([schedule(ucum(1.0, "d"), None, &["cgm-summary"])]));
        other["resource"]["code"]["coding"][0]["code"] = json!("cgm-data-submission-one-time-order");
        let mut revoked = order("y", json!([schedule(ucum(1.0, "d"), None, &["cgm-summary"])]));
        revoked["resource"]["status"] = json!("revoked");
        assert!(Plan::from_orders(&bundle(vec![other, revoked]), GlucoseUnit::MmolPerL).unwrap().0.is_empty());
    }

    #[test]
    fn only_the_patients_own_orders_are_followed() {
        let mut theirs = order("b", json!([schedule(ucum(1.0, "d"), None, &["cgm-summary"])]));
        theirs["resource"]["subject"]["reference"] = json!("Patient/p2");
        let mine = order("a", json!([schedule(ucum(1.0, "h"), None, &["cgm-sensor-reading-moles-per-volume"])]));
        let both = bundle(vec![mine, theirs]);
        // By id: the other patient's order is dropped.
        let kept = of_one_patient(both.clone(), Some("p1")).unwrap();
        assert_eq!(kept["entry"].as_array().unwrap().len(), 1);
        assert_eq!(kept["entry"][0]["resource"]["id"], "a");
        // By identifier: which one is this patient's cannot be told, so neither is followed.
        let e = of_one_patient(both, None).unwrap_err();
        assert!(e.what.contains("standing orders of 2 patients"), "{e}");
    }

    #[test]
    fn profiles_it_cannot_make_are_named_and_bad_schedules_refused_by_element() {
        let b = bundle(vec![order("so-2", json!([schedule(ucum(1.0, "d"), None, &["cgm-summary", "other-profile"])]))]);
        let (plan, ignored) = Plan::from_orders(&b, GlucoseUnit::MmolPerL).unwrap();
        assert!(plan.summary.is_some());
        assert_eq!(ignored, vec![format!("{CANONICAL}other-profile")]);

        for (every, why) in [
            (ucum(0.0, "d"), "a positive value is required"),
            (ucum(1.0, "day"), "code must be one of"),
            (json!({"value": 1, "system": "http://example.org", "code": "d"}), "must be UCUM's"),
        ] {
            let b = bundle(vec![order("so-3", json!([schedule(every, None, &["cgm-summary"])]))]);
            let e = Plan::from_orders(&b, GlucoseUnit::MmolPerL).unwrap_err();
            assert_eq!(e.order, "so-3");
            assert!(e.what.starts_with("extension[0].extension[submissionPeriod]: ") && e.what.contains(why), "{e}");
        }
        let b = bundle(vec![order("so-4", json!([schedule(ucum(1.0, "d"), None, &[])]))]);
        assert!(Plan::from_orders(&b, GlucoseUnit::MmolPerL).unwrap_err().what.contains("submissionDataProfile"));
    }
}
