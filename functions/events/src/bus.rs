//! Domain events as the bus's entries: a JSON `detail` a hospital's rules can match on,
//! with the sensor's hospital and local times, and the patient references only when
//! `EVENT_PATIENT_FIELDS=true`.

use crate::sink::BusEntry;
use cgm_domain::metrics::MG_DL_PER_MMOL;
use cgm_domain::session::{DomainEvent, Session};
use cgm_domain::time::{SourceZone, Timestamp};
use serde_json::{Value, json};

pub fn entry(e: &DomainEvent, session: &Session, zone: &SourceZone, patient_fields: bool) -> BusEntry {
    let local = |t: Timestamp| zone.format_local_at(t);
    let round = |v: f64, places: i32| (v * 10f64.powi(places)).round() / 10f64.powi(places);
    let (detail_type, mut detail) = match e {
        DomainEvent::Alert(a) => (
            format!("cgm.alert.{}", a.transition.as_str()),
            json!({
                "id": a.id,
                "alert_id": a.alert_id,
                "kind": a.kind.as_str(),
                "level": a.kind.level(),
                "state": a.transition.as_str(),
                "device_sn": a.device_sn.as_str(),
                "at": a.at.ms(),
                "at_local": local(a.at),
                "opened_at": a.opened_at.ms(),
                "opened_at_local": local(a.opened_at),
                "value_mmol": a.value_mmol.map(|v| round(v, 2)),
                "value_mg_dl": a.value_mmol.map(|v| (v * MG_DL_PER_MMOL).round()),
                "threshold_mmol": a.threshold_mmol.map(|v| round(v, 2)),
                "last_reading_at": session.last.at.ms(),
                "found_late": a.found_late,
                "retracted": a.retracted,
            }),
        ),
        DomainEvent::Sensor(s) => (
            format!("cgm.sensor.{}", s.change.as_str()),
            json!({
                "id": s.id,
                "change": s.change.as_str(),
                "device_sn": s.device_sn.as_str(),
                "at": s.at.ms(),
                "at_local": local(s.at),
                "wear_start": session.wear_start().ms(),
                "expected_end": session.expected_end().map(Timestamp::ms),
                "readings": session.readings(),
            }),
        ),
    };
    if let Value::Object(m) = &mut detail {
        m.insert("customer_name".into(), json!(session.customer_name));
        if patient_fields {
            m.insert("patient_id".into(), json!(session.patient_id));
            m.insert("visit_id".into(), json!(session.visit_id));
        }
    }
    BusEntry { detail_type, detail: detail.to_string() }
}
