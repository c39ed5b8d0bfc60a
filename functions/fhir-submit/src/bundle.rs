//! The `cgm-data-submission-bundle`: a `transaction` Bundle with a `timestamp`, each entry a
//! `POST` of one profiled resource (profiles.fsh, CGMDataSubmissionBundle), with
//! `ifNoneExist` on its identifier so an EHR that supports conditional create matches what
//! it already has instead of storing it twice (the IG's "Client-Controlled Deduplication").
//!
//! Entries refer to each other by `fullUrl`, a `urn:uuid` derived from the identifier (UUID
//! v5): the same resource has the same `fullUrl` in every bundle, so a retried bundle is the
//! same bundle.

use cgm_shared::config::PatientReference;
use serde_json::{Value, json};
use std::collections::HashMap;
use uuid::Uuid;

/// One entry to POST.
#[derive(Debug, Clone)]
pub struct Entry {
    pub full_url: String,
    pub resource_type: String,
    /// `identifier=<system>|<value>` of the resource's first identifier.
    pub if_none_exist: Option<String>,
    pub resource: Value,
    /// What the resource was called in the read API (`Observation/<id>`): references to it
    /// are rewritten to [`Entry::full_url`].
    local_ref: Option<String>,
}

/// `identifier=<system>|<value>`, each part percent-encoded as a search value.
pub fn identifier_search(system: &str, value: &str) -> String {
    token_search("identifier", system, value)
}

/// `<param>=<system>|<value>`, a token search (`code`, a chained `patient.identifier`), each
/// part percent-encoded as a search value.
pub fn token_search(param: &str, system: &str, value: &str) -> String {
    format!("{param}={}|{}", search_value(system), search_value(value))
}

/// A search value, percent-encoded: unreserved characters and the URI punctuation an
/// identifier system holds (`:`, `/`) stay ([`cgm_fhir_profiles::url::SEARCH_VALUE`]).
pub use cgm_fhir_profiles::url::search_value;

/// The `fullUrl` of the resource with this identifier.
pub fn full_url(system: &str, value: &str) -> String {
    format!("urn:uuid:{}", Uuid::new_v5(&Uuid::NAMESPACE_URL, format!("{system}|{value}").as_bytes()))
}

impl Entry {
    /// An entry for a resource as `cgm-fhir-profiles` made it: its logical id dropped (the
    /// EHR assigns its own), its first identifier the `fullUrl` and the `ifNoneExist`.
    pub fn of(mut resource: Value) -> Entry {
        let resource_type = resource["resourceType"].as_str().unwrap_or_default().to_string();
        let local_ref = resource
            .as_object_mut()
            .and_then(|o| o.remove("id"))
            .and_then(|id| id.as_str().map(|id| format!("{resource_type}/{id}")));
        let ident = &resource["identifier"][0];
        let (system, value) = (ident["system"].as_str(), ident["value"].as_str());
        let (full_url, if_none_exist) = match (system, value) {
            (Some(s), Some(v)) => (full_url(s, v), Some(identifier_search(s, v))),
            _ => (format!("urn:uuid:{}", Uuid::new_v5(&Uuid::NAMESPACE_URL, resource.to_string().as_bytes())), None),
        };
        Entry { full_url, resource_type, if_none_exist, resource, local_ref }
    }
}

/// `entries` without their `Device`s, each reference to one a logical reference by the
/// device's identifier instead (for an EHR without conditional create, which would store
/// the Device once per bundle).
pub fn without_devices(entries: Vec<Entry>) -> Vec<Entry> {
    let mut by_ref: HashMap<String, Value> = HashMap::new();
    let mut rest = Vec::new();
    for e in entries {
        if e.resource_type == "Device" {
            // References to it may already be its fullUrl (a bundle sent before).
            let to = json!({"type": "Device", "identifier": e.resource["identifier"][0].clone()});
            if let Some(r) = &e.local_ref {
                by_ref.insert(r.clone(), to.clone());
            }
            by_ref.insert(e.full_url.clone(), to);
        } else {
            rest.push(e);
        }
    }
    for e in &mut rest {
        replace_references(&mut e.resource, &by_ref);
    }
    rest
}

/// Each object `{"reference": r}` with `r` in `by_ref` becomes `by_ref[r]`.
fn replace_references(v: &mut Value, by_ref: &HashMap<String, Value>) {
    match v {
        Value::Object(o) => {
            if let Some(to) = o.get("reference").and_then(Value::as_str).and_then(|r| by_ref.get(r)) {
                *v = to.clone();
                return;
            }
            o.values_mut().for_each(|c| replace_references(c, by_ref));
        }
        Value::Array(a) => a.iter_mut().for_each(|c| replace_references(c, by_ref)),
        _ => {}
    }
}

/// The subject of every submitted resource.
pub fn patient_subject(how: PatientReference, system: &str, patient_id: &str, ehr_id: Option<&str>) -> Value {
    // `type` says what a conditional reference's query finds (validators read a type from
    // the reference's path otherwise).
    match (how, ehr_id) {
        (_, Some(id)) => json!({"reference": format!("Patient/{id}"), "type": "Patient"}),
        (PatientReference::Identifier, None) | (PatientReference::Search, None) => {
            json!({"type": "Patient", "identifier": {"system": system, "value": patient_id}})
        }
        (PatientReference::Conditional, None) => {
            json!({"reference": format!("Patient?{}", identifier_search(system, patient_id)), "type": "Patient"})
        }
    }
}

/// The bundle's JSON: `entries` in order, with references between them rewritten to their
/// `fullUrl`s, and `ifNoneExist` on each entry when `conditional`.
pub fn submission_bundle(entries: &mut [Entry], conditional: bool, timestamp: &str) -> String {
    let refs: HashMap<String, String> =
        entries.iter().filter_map(|e| e.local_ref.clone().map(|r| (r, e.full_url.clone()))).collect();
    let out: Vec<Value> = entries
        .iter_mut()
        .map(|e| {
            rewrite_references(&mut e.resource, &refs);
            let mut request = json!({"method": "POST", "url": e.resource_type});
            if conditional && let Some(q) = &e.if_none_exist {
                request["ifNoneExist"] = json!(q);
            }
            json!({"fullUrl": e.full_url, "resource": e.resource, "request": request})
        })
        .collect();
    json!({
        "resourceType": "Bundle",
        "meta": {"profile": [cgm_fhir_profiles::profile("cgm-data-submission-bundle")]},
        "type": "transaction",
        "timestamp": timestamp,
        "entry": out,
    })
    .to_string()
}

fn rewrite_references(v: &mut Value, refs: &HashMap<String, String>) {
    match v {
        Value::Object(o) => {
            for (k, child) in o.iter_mut() {
                if k == "reference"
                    && let Some(to) = child.as_str().and_then(|r| refs.get(r))
                {
                    *child = json!(to);
                } else {
                    rewrite_references(child, refs);
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|c| rewrite_references(c, refs)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_lose_their_ids_and_refer_to_each_other_by_full_url() {
        let device = json!({"resourceType": "Device", "id": "SN1", "identifier": [{"system": "urn:x:device-sn", "value": "SN1"}]});
        let obs = json!({"resourceType": "Observation", "id": "t1", "identifier": [{"system": "urn:x:test-id", "value": "t 1"}],
                         "device": {"reference": "Device/SN1"}});
        let mut entries = vec![Entry::of(device), Entry::of(obs)];
        let b: Value = serde_json::from_str(&submission_bundle(&mut entries, true, "2026-12-04T00:00:00Z")).unwrap();
        assert_eq!(b["type"], "transaction");
        assert_eq!(b["timestamp"], "2026-12-04T00:00:00Z");
        let e = b["entry"].as_array().unwrap();
        assert!(e[0]["resource"].get("id").is_none());
        assert_eq!(e[1]["resource"]["device"]["reference"], e[0]["fullUrl"]);
        assert_eq!(e[1]["request"]["ifNoneExist"], "identifier=urn:x:test-id|t%201");
        assert_eq!(e[1]["request"]["method"], "POST");
        assert_eq!(e[1]["request"]["url"], "Observation");
        assert!(e[0]["fullUrl"].as_str().unwrap().starts_with("urn:uuid:"));
        // The same resource has the same fullUrl in every bundle; without conditional create
        // there is no ifNoneExist.
        let again =
            Entry::of(json!({"resourceType": "Device", "identifier": [{"system": "urn:x:device-sn", "value": "SN1"}]}));
        assert_eq!(again.full_url, e[0]["fullUrl"]);
        let mut one = vec![again];
        let b: Value = serde_json::from_str(&submission_bundle(&mut one, false, "t")).unwrap();
        assert!(b["entry"][0]["request"].get("ifNoneExist").is_none());
    }

    #[test]
    fn without_conditional_create_the_device_is_named_not_sent() {
        let device = json!({"resourceType": "Device", "id": "SN1", "identifier": [{"system": "urn:x:device-sn", "value": "SN1"}]});
        let obs = json!({"resourceType": "Observation", "id": "t1", "identifier": [{"system": "urn:x:test-id", "value": "t1"}],
                         "device": {"reference": "Device/SN1"}});
        let named = json!({"type": "Device", "identifier": {"system": "urn:x:device-sn", "value": "SN1"}});
        let mut entries = vec![Entry::of(device), Entry::of(obs)];
        let rest = without_devices(entries.clone());
        assert_eq!(rest.len(), 1);
        assert_eq!(rest[0].resource["device"], named);
        // The same after a conditional bundle rewrote the reference to the Device's fullUrl.
        submission_bundle(&mut entries, true, "t");
        assert_eq!(without_devices(entries)[0].resource["device"], named);
    }

    #[test]
    fn the_patient_is_named_as_configured() {
        let c = patient_subject(PatientReference::Conditional, "urn:oid:1.2.3", "P 7&8", None);
        assert_eq!(c["reference"], "Patient?identifier=urn:oid:1.2.3|P%207%268");
        let i = patient_subject(PatientReference::Identifier, "urn:oid:1.2.3", "P7", None);
        assert_eq!(i["identifier"]["value"], "P7");
        let s = patient_subject(PatientReference::Search, "urn:oid:1.2.3", "P7", Some("abc"));
        assert_eq!(s["reference"], "Patient/abc");
    }
}
