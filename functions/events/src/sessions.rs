//! The sessions-and-alerts step: each device a batch touches is read once, its readings
//! applied ([`Session::apply`]: idempotent, never backwards, the alerts a fold by measured
//! time), and the session written only over the version read, with the events it decided in
//! its outbox; then the outbox is sent to the bus and cleared. So a redelivered batch
//! changes nothing and sends nothing; a write that lost a race is read and applied again; an
//! event the bus did not take stays in the outbox, its records are failed, and the retry (or
//! the next minute's check) sends only what was not sent. A failure of one device never holds
//! up another. A session the store refuses outright (a permanent failure) is reported as
//! poison, not retried.

use crate::bus;
use crate::sink::{self, EventSink};
use cgm_domain::alerts::AlertSettings;
use cgm_domain::ids::DeviceSn;
use cgm_domain::session::{Outgoing, SensorReading, Session};
use cgm_domain::store::StoreError;
use cgm_domain::store::sensors::{Saved, SensorStore};
use cgm_domain::time::SourceZone;
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
    /// Readings whose clock was ahead of their arrival (stored, never evaluated).
    pub clock_ahead: usize,
    /// Readings the stream delivered after the alert window had moved past them.
    pub outside_window: usize,
    /// Sequence numbers of the records whose device could not be brought up to date.
    pub failed: Vec<String>,
    /// Records that can never succeed (the store refused the session itself), with why:
    /// written aside once by the consumer and not retried.
    pub poisoned: Vec<(String, &'static str)>,
}

/// Why a device could not be brought up to date.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// A retry may cure it.
    Transient(&'static str),
    /// No retry can: the store refuses the session.
    Permanent(&'static str),
}

fn store_failure(e: StoreError) -> Failure {
    if e.is_permanent() {
        Failure::Permanent("the sensors table refused the session")
    } else {
        Failure::Transient("the sensors table failed")
    }
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
                report.clock_ahead += u.clock_ahead;
                report.outside_window += u.outside_window;
            }
            Err(Failure::Transient(why)) => {
                tracing::warn!(target: "cgm_events", device_sn = sn.as_str(), why, "device not brought up to date; its records are retried");
                report.failed.extend(devices[sn].iter().map(|(seq, _)| seq.clone()));
            }
            Err(Failure::Permanent(why)) => {
                tracing::error!(target: "cgm_events", device_sn = sn.as_str(), why, "session refused for good; its records are set aside");
                report.poisoned.extend(devices[sn].iter().map(|(seq, _)| (seq.clone(), why)));
            }
        }
    }
    report
}

#[derive(Debug, Default)]
struct Updated {
    written: bool,
    events: usize,
    clock_ahead: usize,
    outside_window: usize,
}

async fn update<T: SensorStore, K: EventSink>(
    sensors: &T,
    sink: &K,
    s: &Settings<'_>,
    sn: &DeviceSn,
    readings: &[SensorReading],
    counts: &BTreeMap<NaiveDate, u64>,
) -> Result<Updated, Failure> {
    for _ in 0..MAX_ATTEMPTS {
        let current = sensors.session(sn).await.map_err(store_failure)?;
        let applied = Session::apply(current.clone(), readings, counts, s.alerts);
        let (clock_ahead, outside_window) = (applied.clock_ahead, applied.outside_window);
        let Some(mut next) = applied.session else {
            return Ok(Updated { clock_ahead, ..Updated::default() });
        };
        let decided: Vec<Outgoing> =
            applied.events.iter().map(|e| bus::entry(e, &next, s.zone, s.patient_fields)).collect();
        next.outbox.extend(decided);
        if current.as_ref() == Some(&next) && next.outbox.is_empty() {
            return Ok(Updated { clock_ahead, outside_window, ..Updated::default() });
        }
        if current.as_ref() != Some(&next) {
            match sensors.put_session(&next).await.map_err(store_failure)? {
                Saved::Stored => next.version += 1,
                Saved::Conflict => continue,
            }
        }
        let events = flush(sensors, sink, next).await?;
        return Ok(Updated { written: true, events, clock_ahead, outside_window });
    }
    Err(Failure::Transient("the session kept changing under the write"))
}

/// Sends a written session's outbox and clears what the bus took: the number sent, or an
/// error when some could not be (they stay in the outbox for the retry).
pub async fn flush<T: SensorStore, K: EventSink>(sensors: &T, sink: &K, session: Session) -> Result<usize, Failure> {
    if session.outbox.is_empty() {
        return Ok(0);
    }
    let failed = sink::publish(sink, &session.outbox).await;
    let sent: Vec<Outgoing> =
        session.outbox.iter().enumerate().filter(|(i, _)| !failed.contains(i)).map(|(_, e)| e.clone()).collect();
    let mut next = session;
    for attempt in 0..MAX_ATTEMPTS {
        if attempt > 0 {
            // Another writer got there first: take what we sent out of its outbox.
            match sensors.session(&next.device_sn).await.map_err(store_failure)? {
                Some(stored) => next = stored,
                None => break,
            }
        }
        next.outbox.retain(|e| !sent.contains(e));
        match sensors.put_session(&next).await.map_err(store_failure)? {
            Saved::Stored => break,
            Saved::Conflict => continue,
        }
    }
    if failed.is_empty() { Ok(sent.len()) } else { Err(Failure::Transient("the event bus did not take every event")) }
}

/// The scheduled check of every running sensor at `now`: signal lost, sensors past their
/// `cgmDay`, and any outbox a failed send left behind. A session that changed meanwhile is
/// left to the next check.
pub async fn check<T: SensorStore, K: EventSink>(
    sensors: &T,
    sink: &K,
    s: &Settings<'_>,
    now: cgm_domain::time::Timestamp,
) -> Result<CheckReport, &'static str> {
    let active = sensors.active().await.map_err(|_| "the sensors table failed")?;
    let mut report = CheckReport { active: active.len(), ..CheckReport::default() };
    for mut session in active {
        let events = session.check(now, s.alerts);
        if events.is_empty() && session.outbox.is_empty() {
            continue;
        }
        let decided: Vec<Outgoing> = events.iter().map(|e| bus::entry(e, &session, s.zone, s.patient_fields)).collect();
        session.outbox.extend(decided);
        if !events.is_empty() {
            match sensors.put_session(&session).await {
                Ok(Saved::Stored) => {
                    report.written += 1;
                    session.version += 1;
                }
                Ok(Saved::Conflict) => continue,
                Err(_) => {
                    report.failed += 1;
                    continue;
                }
            }
        }
        match flush(sensors, sink, session).await {
            Ok(n) => report.events += n,
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
    use cgm_domain::store::reads::StoredReading;
    use cgm_domain::store::sensors::memory::MemorySensorStore;
    use cgm_domain::time::Timestamp;
    use std::sync::atomic::Ordering;

    fn reading(sn: &str, i: i64, mmol: f64) -> (String, SensorReading) {
        let at = Timestamp::from_ms(1_700_000_000_000 + i * 180_000);
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
    async fn events_the_bus_refuses_stay_in_the_outbox_and_go_once_on_the_retry() {
        let (a, z) = settings();
        let s = Settings { alerts: &a, zone: &z, patient_fields: true };
        let (sensors, sink) = (MemorySensorStore::default(), MemorySink::default());
        // A's two events refused, then its first again on the retry: one is not sent.
        sink.refuse.store(3, Ordering::SeqCst);
        let batch = vec![reading("A", 0, 2.5), reading("B", 0, 7.0)];
        let r = step(&sensors, &sink, &s, &batch, &BTreeMap::new()).await;
        assert_eq!(r.failed, vec!["A-seq-0".to_string()], "{r:?}");
        let stored = sensors.sessions.lock().unwrap().get(&DeviceSn::from("A")).cloned().expect("A written");
        assert_eq!(stored.outbox.len(), 1, "what the bus did not take waits in the outbox");
        // Lambda redelivers: only what was not sent goes out, with the id it had.
        let r = step(&sensors, &sink, &s, &batch, &BTreeMap::new()).await;
        assert!(r.failed.is_empty(), "{r:?}");
        let ids: Vec<String> = sink
            .taken()
            .iter()
            .map(|e| serde_json::from_str::<serde_json::Value>(&e.detail).unwrap()["id"].as_str().unwrap().to_string())
            .collect();
        let a_ids: Vec<&String> = ids.iter().filter(|i| i.starts_with("A~")).collect();
        assert_eq!(a_ids.len(), 2, "each of A's events once: {ids:?}");
        assert!(ids.contains(&"A~started".to_string()) && ids.iter().any(|i| i.starts_with("A~urgent_low~")));
        assert!(sensors.sessions.lock().unwrap()[&DeviceSn::from("A")].outbox.is_empty());
        assert!(sink.taken().iter().any(|e| e.detail.contains("PATIENT-CANARY")), "patient fields when asked");
        // And a third delivery sends nothing.
        step(&sensors, &sink, &s, &batch, &BTreeMap::new()).await;
        assert_eq!(sink.taken().len(), ids.len());
    }

    #[tokio::test]
    async fn an_outbox_left_by_a_failed_send_goes_with_the_next_check() {
        let (a, z) = settings();
        let s = Settings { alerts: &a, zone: &z, patient_fields: false };
        let (sensors, sink) = (MemorySensorStore::default(), MemorySink::default());
        sink.refuse.store(4, Ordering::SeqCst);
        let r = step(&sensors, &sink, &s, &[reading("A", 0, 2.5)], &BTreeMap::new()).await;
        assert_eq!(r.failed.len(), 1);
        assert!(sink.taken().is_empty());
        let r = check(&sensors, &sink, &s, Timestamp::from_ms(1_700_000_000_000 + 60_000)).await.unwrap();
        assert_eq!(r.events, 2, "{r:?}");
        assert_eq!(sink.taken().len(), 2);
        assert!(sensors.sessions.lock().unwrap()[&DeviceSn::from("A")].outbox.is_empty());
    }

    #[tokio::test]
    async fn a_failing_table_fails_the_records_and_the_check_reports_it() {
        let (a, z) = settings();
        let s = Settings { alerts: &a, zone: &z, patient_fields: false };
        let (sensors, sink) = (MemorySensorStore::default(), MemorySink::default());
        sensors.fail.store(true, Ordering::SeqCst);
        let r = step(&sensors, &sink, &s, &[reading("A", 0, 6.0)], &BTreeMap::new()).await;
        assert_eq!(r.failed.len(), 1);
        assert!(check(&sensors, &sink, &s, Timestamp::from_ms(0)).await.is_err());
        assert!(sink.taken().is_empty());
    }

    #[tokio::test]
    async fn the_check_raises_signal_lost_once() {
        let (a, z) = settings();
        let s = Settings { alerts: &a, zone: &z, patient_fields: false };
        let (sensors, sink) = (MemorySensorStore::default(), MemorySink::default());
        step(&sensors, &sink, &s, &[reading("A", 0, 6.0)], &BTreeMap::new()).await;
        let later = Timestamp::from_ms(1_700_000_000_000 + 25 * 60_000);
        let r = check(&sensors, &sink, &s, later).await.unwrap();
        assert_eq!((r.active, r.events, r.written), (1, 1, 1));
        let r = check(&sensors, &sink, &s, later.plus_ms(60_000)).await.unwrap();
        assert_eq!(r.events, 0, "once");
        assert_eq!(sink.taken().last().unwrap().detail_type, "cgm.alert.opened");
    }
}
