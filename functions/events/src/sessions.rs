//! The sessions-and-alerts step: each device a batch touches is read once, its readings
//! applied ([`Session::apply`]: idempotent, never backwards), the events it raises sent to
//! the bus, and the session written only over the version read. A redelivered batch changes
//! nothing and sends nothing; a write that lost a race is read and applied again; a device
//! whose events could not all be sent is not written, and its records are failed so Lambda
//! brings them again (the same events, with the same ids). A failure of one device never
//! holds up another.

use crate::bus;
use crate::sink::{self, EventSink};
use cgm_shared::alerts::AlertSettings;
use cgm_shared::ids::DeviceSn;
use cgm_shared::session::{DomainEvent, SensorReading, Session};
use cgm_shared::store::sensors::{Saved, SensorStore};
use cgm_shared::time::SourceZone;
use chrono::NaiveDate;
use std::collections::BTreeMap;

/// Reads and re-applies after a lost race, before the records are failed.
const MAX_ATTEMPTS: usize = 3;

pub struct Settings<'a> {
    pub alerts: &'a AlertSettings,
    pub zone: &'a SourceZone,
    pub patient_fields: bool,
}

#[derive(Debug, Default)]
pub struct Report {
    pub devices: usize,
    pub written: usize,
    pub events: usize,
    /// Sequence numbers of the records whose device could not be brought up to date.
    pub failed: Vec<String>,
}

pub async fn step<T: SensorStore, K: EventSink>(
    sensors: &T,
    sink: &K,
    s: &Settings<'_>,
    batch: &[(String, SensorReading)],
    day_counts: &BTreeMap<(DeviceSn, NaiveDate), u64>,
) -> Report {
    let mut devices: BTreeMap<DeviceSn, Vec<&(String, SensorReading)>> = BTreeMap::new();
    for rec in batch {
        devices.entry(rec.1.reading.device_sn.clone()).or_default().push(rec);
    }
    let mut report = Report { devices: devices.len(), ..Report::default() };
    let results = futures_util::future::join_all(devices.iter().map(|(sn, recs)| {
        let readings: Vec<SensorReading> = recs.iter().map(|(_, r)| r.clone()).collect();
        let counts: BTreeMap<NaiveDate, u64> = day_counts
            .range((sn.clone(), NaiveDate::MIN)..=(sn.clone(), NaiveDate::MAX))
            .map(|((_, d), n)| (*d, *n))
            .collect();
        async move { (sn, update(sensors, sink, s, sn, &readings, &counts).await) }
    }))
    .await;
    for (sn, result) in results {
        match result {
            Ok(u) => {
                report.written += usize::from(u.written);
                report.events += u.events;
            }
            Err(why) => {
                tracing::warn!(target: "cgm_events", device_sn = sn.as_str(), why, "session not updated; its records are retried");
                report.failed.extend(devices[sn].iter().map(|(seq, _)| seq.clone()));
            }
        }
    }
    report
}

#[derive(Debug, Default)]
struct Updated {
    written: bool,
    events: usize,
}

async fn update<T: SensorStore, K: EventSink>(
    sensors: &T,
    sink: &K,
    s: &Settings<'_>,
    sn: &DeviceSn,
    readings: &[SensorReading],
    counts: &BTreeMap<NaiveDate, u64>,
) -> Result<Updated, &'static str> {
    for _ in 0..MAX_ATTEMPTS {
        let current = sensors.session(sn).await.map_err(|_| "the sensors table failed")?;
        let (next, events) = Session::apply(current.clone(), readings, counts, s.alerts);
        let Some(next) = next else { return Ok(Updated::default()) };
        if current.as_ref() == Some(&next) && events.is_empty() {
            return Ok(Updated::default());
        }
        send(sink, s, &next, &events).await?;
        match sensors.put_session(&next).await.map_err(|_| "the sensors table failed")? {
            Saved::Stored => return Ok(Updated { written: true, events: events.len() }),
            Saved::Conflict => continue,
        }
    }
    Err("the session kept changing under the write")
}

/// Sends a session's events; an error when any could not be sent.
pub async fn send<K: EventSink>(
    sink: &K,
    s: &Settings<'_>,
    session: &Session,
    events: &[DomainEvent],
) -> Result<(), &'static str> {
    let entries: Vec<_> = events.iter().map(|e| bus::entry(e, session, s.zone, s.patient_fields)).collect();
    if sink::publish(sink, &entries).await.is_empty() { Ok(()) } else { Err("the event bus did not take every event") }
}

/// The scheduled check of every running sensor at `now`: signal lost, and sensors past
/// their `cgmDay`. A session that changed meanwhile is left to the next check.
pub async fn check<T: SensorStore, K: EventSink>(
    sensors: &T,
    sink: &K,
    s: &Settings<'_>,
    now: cgm_shared::time::Timestamp,
) -> Result<CheckReport, &'static str> {
    let active = sensors.active().await.map_err(|_| "the sensors table failed")?;
    let mut report = CheckReport { active: active.len(), ..CheckReport::default() };
    for mut session in active {
        let events = session.check(now, s.alerts);
        if events.is_empty() {
            continue;
        }
        if send(sink, s, &session, &events).await.is_err() {
            report.failed += 1;
            continue;
        }
        report.events += events.len();
        match sensors.put_session(&session).await {
            Ok(Saved::Stored) => report.written += 1,
            Ok(Saved::Conflict) => {}
            Err(_) => report.failed += 1,
        }
    }
    Ok(report)
}

#[derive(Debug, Default)]
pub struct CheckReport {
    pub active: usize,
    pub events: usize,
    pub written: usize,
    pub failed: usize,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::MemorySink;
    use cgm_shared::store::reads::StoredReading;
    use cgm_shared::store::sensors::memory::MemorySensorStore;
    use cgm_shared::time::Timestamp;
    use std::sync::atomic::Ordering;

    fn reading(sn: &str, i: i64, mmol: f64) -> (String, SensorReading) {
        let at = Timestamp(1_700_000_000_000 + i * 180_000);
        let r = SensorReading {
            reading: StoredReading {
                test_id: format!("{sn}-{i}").into(),
                device_sn: sn.into(),
                measured_at: at,
                mmol,
                serial_no: Some(i as u64 + 1),
                status: Some("0".into()),
                valid: true,
                incre_minute: Some(3),
                low: None,
                high: None,
            },
            cgm_status: Some("2".into()),
            cgm_day: Some(15),
            customer_name: Some("Ward 7".into()),
            patient_id: Some("PATIENT-CANARY".into()),
            visit_id: None,
            received_at: Some(at.plus_ms(10_000)),
        };
        (format!("{sn}-seq-{i}"), r)
    }

    fn settings() -> (AlertSettings, SourceZone) {
        (AlertSettings::default(), SourceZone::default())
    }

    #[tokio::test]
    async fn a_redelivered_batch_writes_and_sends_nothing_more() {
        let (a, z) = settings();
        let s = Settings { alerts: &a, zone: &z, patient_fields: false };
        let (sensors, sink) = (MemorySensorStore::default(), MemorySink::default());
        let batch = vec![reading("A", 0, 6.0), reading("A", 1, 2.6), reading("B", 0, 7.0)];
        let r = step(&sensors, &sink, &s, &batch, &BTreeMap::new()).await;
        assert_eq!((r.devices, r.written, r.events, r.failed.len()), (2, 2, 3, 0), "A started + urgent low, B started");
        let types: Vec<String> = sink.taken().iter().map(|e| e.detail_type.clone()).collect();
        assert_eq!(types.iter().filter(|t| *t == "cgm.alert.opened").count(), 1);
        assert!(sink.taken().iter().all(|e| !e.detail.contains("PATIENT-CANARY")), "no patient field by default");
        let again = step(&sensors, &sink, &s, &batch, &BTreeMap::new()).await;
        assert_eq!((again.written, again.events, again.failed.len()), (0, 0, 0));
        assert_eq!(sink.taken().len(), 3);
    }

    #[tokio::test]
    async fn events_the_bus_refuses_fail_exactly_that_devices_records_and_come_again() {
        let (a, z) = settings();
        let s = Settings { alerts: &a, zone: &z, patient_fields: true };
        let (sensors, sink) = (MemorySensorStore::default(), MemorySink::default());
        // A's two events refused, then its first again on the retry: not all sent.
        sink.refuse.store(3, Ordering::SeqCst);
        let batch = vec![reading("A", 0, 2.5), reading("B", 0, 7.0)];
        let r = step(&sensors, &sink, &s, &batch, &BTreeMap::new()).await;
        assert_eq!(r.failed, vec!["A-seq-0".to_string()], "{r:?}");
        assert!(sensors.sessions.lock().unwrap().get(&DeviceSn::from("A")).is_none(), "A not written");
        // Lambda redelivers: A's events go out, with the ids they would have had.
        let r = step(&sensors, &sink, &s, &batch, &BTreeMap::new()).await;
        assert!(r.failed.is_empty(), "{r:?}");
        let ids: Vec<String> = sink
            .taken()
            .iter()
            .map(|e| serde_json::from_str::<serde_json::Value>(&e.detail).unwrap()["id"].as_str().unwrap().to_string())
            .collect();
        assert!(
            ids.contains(&"A~started".to_string()) && ids.iter().any(|i| i.starts_with("A~urgent_low~")),
            "{ids:?}"
        );
        assert!(sink.taken().iter().any(|e| e.detail.contains("PATIENT-CANARY")), "patient fields when asked");
    }

    #[tokio::test]
    async fn a_failing_table_fails_the_records_and_the_check_reports_it() {
        let (a, z) = settings();
        let s = Settings { alerts: &a, zone: &z, patient_fields: false };
        let (sensors, sink) = (MemorySensorStore::default(), MemorySink::default());
        sensors.fail.store(true, Ordering::SeqCst);
        let r = step(&sensors, &sink, &s, &[reading("A", 0, 6.0)], &BTreeMap::new()).await;
        assert_eq!(r.failed.len(), 1);
        assert!(check(&sensors, &sink, &s, Timestamp(0)).await.is_err());
        assert!(sink.taken().is_empty());
    }

    #[tokio::test]
    async fn the_check_raises_signal_lost_once() {
        let (a, z) = settings();
        let s = Settings { alerts: &a, zone: &z, patient_fields: false };
        let (sensors, sink) = (MemorySensorStore::default(), MemorySink::default());
        step(&sensors, &sink, &s, &[reading("A", 0, 6.0)], &BTreeMap::new()).await;
        let later = Timestamp(1_700_000_000_000 + 25 * 60_000);
        let r = check(&sensors, &sink, &s, later).await.unwrap();
        assert_eq!((r.active, r.events, r.written), (1, 1, 1));
        let r = check(&sensors, &sink, &s, later.plus_ms(60_000)).await.unwrap();
        assert_eq!(r.events, 0, "once");
        assert_eq!(sink.taken().last().unwrap().detail_type, "cgm.alert.opened");
    }
}
