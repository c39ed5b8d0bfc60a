//! The one consumer of the readings stream, and the scheduled check of running sensors.
//!
//! Each batch of stream records becomes readings (their new images) and goes through the
//! consumer's steps, each idempotent and each failing alone: a record is reported failed
//! (so Lambda retries from it) only for the step that failed on it, and a redelivered record
//! changes nothing in a step that already took it.
//!
//! - **Daily rollups** ([`rollups`]): each local day a batch touches is recomputed once,
//!   from a Query of the day merged with the batch's own images (the index is only
//!   eventually consistent), and written only over a rollup of fewer readings.
//! - **Sensor sessions and alerts** ([`sessions`]): each device a batch touches is read
//!   once, its readings applied (never backwards), its alert and sensor events sent to the
//!   bus ([`sink`], [`bus`]), and its session written over the version read. It does not wait
//!   for the rollups: a failed rollup never holds up an alert (a day's count then catches up
//!   with the day's next rollup).
//!
//! A record a step can never succeed on (a reading whose day has no instants, a write the
//! store refuses outright: each step says which) is *poisoned*: written aside once, with the
//! steps' reasons, to the [`PoisonStore`] (the quarantine table), and not reported failed,
//! so the shard moves on. Only a record whose failure a retry may cure is retried; one whose
//! writing-aside failed is retried too, so nothing is lost.
//!
//! The scheduled check ([`EventsService::check`]) runs every minute over the index of
//! running sensors: signal lost, and sensors past their `cgmDay`.

pub mod bus;
pub mod rollups;
pub mod sessions;
pub mod sink;
pub mod stream;

use aws_lambda_events::event::dynamodb::Event;
use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use cgm_domain::alerts::AlertSettings;
use cgm_domain::ids::clip_for_log;
use cgm_domain::store::poison::{PoisonStore, Poisoned};
use cgm_domain::store::push::Recorded;
use cgm_domain::store::reads::{ReadStore, StoredReading};
use cgm_domain::store::rollups::RollupStore;
use cgm_domain::store::sensors::SensorStore;
use cgm_domain::time::{SourceZone, Timestamp};
use cgm_shared::aws::{self, CallLimits};
use cgm_shared::config::Config;
use cgm_shared::store::poison::dynamodb::DynamoPoisonStore;
use cgm_shared::store::reads::dynamodb::DynamoReadStore;
use cgm_shared::store::rollups::dynamodb::DynamoRollupStore;
use cgm_shared::store::sensors::dynamodb::DynamoSensorStore;
use sink::{EventBridgeSink, EventSink};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

pub struct EventsService<R, U, T, K, P> {
    reads: R,
    rollups: U,
    sensors: T,
    sink: K,
    poison: P,
    zone: SourceZone,
    alerts: AlertSettings,
    patient_fields: bool,
}

/// What became of a batch's records.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Sequence numbers of the records to retry (a step failed on them, or they could not be
    /// written aside), in batch order.
    pub failed: Vec<String>,
    /// Records no step can ever succeed on, written aside (now or by an earlier delivery).
    pub poisoned: Vec<Poisoned>,
}

impl Outcome {
    /// Lambda's reply: the records to retry; an empty list means the batch is done.
    pub fn response(&self) -> DynamoDbEventResponse {
        let mut response = DynamoDbEventResponse::default();
        for seq in &self.failed {
            let mut f = DynamoDbBatchItemFailure::default();
            f.item_identifier = Some(seq.clone());
            response.batch_item_failures.push(f);
        }
        response
    }
}

impl<R: ReadStore, U: RollupStore, T: SensorStore, K: EventSink, P: PoisonStore> EventsService<R, U, T, K, P> {
    pub fn new(reads: R, rollups: U, sensors: T, sink: K, poison: P, cfg: &Config) -> Self {
        Self {
            reads,
            rollups,
            sensors,
            sink,
            poison,
            zone: cfg.source_timezone,
            alerts: cfg.alerts.clone(),
            patient_fields: cfg.event_patient_fields,
        }
    }

    pub fn rollup_store(&self) -> &U {
        &self.rollups
    }

    pub fn sensor_store(&self) -> &T {
        &self.sensors
    }

    pub fn sink(&self) -> &K {
        &self.sink
    }

    /// Where poisoned records are written aside (and `cgm-replay poison` finds them).
    pub fn poison_store(&self) -> &P {
        &self.poison
    }

    fn settings(&self) -> sessions::Settings<'_> {
        sessions::Settings { alerts: &self.alerts, zone: &self.zone, patient_fields: self.patient_fields }
    }

    /// Handles one batch: what Lambda's event source mapping delivers. The reply names the
    /// records to retry (by sequence number); an empty list means the batch is done.
    pub async fn handle(&self, event: Event) -> DynamoDbEventResponse {
        // Boxed: the steps' futures nest deep enough to exceed the compiler's layout depth
        // in the runtime's service.
        Box::pin(self.process(&stream::readings(&event))).await.response()
    }

    /// Runs a batch's readings through the steps, writes aside what is poisoned, and logs
    /// the batch's line.
    pub async fn process(&self, batch: &stream::Batch) -> Outcome {
        let started = Instant::now();
        let plain: Vec<(String, StoredReading)> =
            batch.readings.iter().map(|(seq, r)| (seq.clone(), r.reading.clone())).collect();
        let days = rollups::step(&self.reads, &self.rollups, &self.zone, &plain).await;
        let sensors = sessions::step(&self.sensors, &self.sink, &self.settings(), &batch.readings, &days.counts).await;
        let mut failed: BTreeSet<&str> = days.failed.iter().chain(&sensors.failed).map(String::as_str).collect();
        let mut reasons: BTreeMap<&str, Vec<&'static str>> = BTreeMap::new();
        for (seq, why) in days.poisoned.iter().chain(&sensors.poisoned) {
            reasons.entry(seq.as_str()).or_default().push(why);
        }
        let now = Timestamp::now();
        let written = futures_util::future::join_all(
            batch
                .readings
                .iter()
                .filter_map(|(seq, r)| Some((seq, r, reasons.get(seq.as_str())?)))
                .map(|(seq, r, why)| self.write_aside(seq, r, why, now)),
        )
        .await;
        let mut poisoned = Vec::with_capacity(written.len());
        for (seq, result) in written {
            match result {
                Some(p) => poisoned.push(p),
                // Never lost: the record comes again and is written aside then.
                None => {
                    failed.insert(seq);
                }
            }
        }
        // Lag from the readings' own times: DynamoDB Local cuts the records' creation time
        // to the minute, and the readings carry when they were measured and received.
        let lag_ms = batch.readings.iter().filter_map(|(_, r)| r.received_at).map(|t| now.since(t)).max();
        let latency_ms = (started.elapsed().as_secs_f64() * 1e6).round() / 1e3;
        macro_rules! line {
            ($level:ident) => {
                tracing::$level!(target: "cgm_events", records = batch.readings.len() + batch.skipped, readings = batch.readings.len(), not_readings = batch.skipped, days = days.days, rollups_written = days.written, devices = sensors.devices, sessions_written = sensors.written, events_sent = sensors.events, clock_ahead = sensors.clock_ahead, outside_alert_window = sensors.outside_window, failed_records = failed.len(), poisoned = poisoned.len(), received_to_done_ms = lag_ms, latency_ms, "stream batch")
            };
        }
        if failed.is_empty() && poisoned.is_empty() {
            line!(info);
        } else {
            line!(warn);
        }
        // In batch order, so the lowest sequence number Lambda retries from comes first.
        let failed =
            batch.readings.iter().map(|(seq, _)| seq).filter(|s| failed.contains(s.as_str())).cloned().collect();
        Outcome { failed, poisoned }
    }

    /// Writes one poisoned record aside: the record on success (new or already there), `None`
    /// when the write failed and the record must be retried.
    async fn write_aside<'a>(
        &self,
        seq: &'a str,
        r: &cgm_domain::session::SensorReading,
        reasons: &[&'static str],
        now: Timestamp,
    ) -> (&'a str, Option<Poisoned>) {
        let p = Poisoned::new(r.reading.test_id.clone(), r.reading.device_sn.clone(), seq, reasons, now);
        let (test_id, device_sn) = (clip_for_log(p.test_id.as_str()), clip_for_log(p.device_sn.as_str()));
        match self.poison.put_poison(&p).await {
            Ok(recorded) => {
                let first = recorded == Recorded::New;
                tracing::warn!(target: "cgm_events", test_id, device_sn, sequence_number = seq, reason = p.reason.as_str(), key = p.key.as_str(), first, "stream record poisoned; written aside, not retried");
                (seq, Some(p))
            }
            Err(e) => {
                tracing::error!(target: "cgm_events", test_id, device_sn, sequence_number = seq, reason = p.reason.as_str(), error = %e, "a poisoned stream record could not be written aside; it is retried");
                (seq, None)
            }
        }
    }

    /// The scheduled check at `now` over the running sensors. An error (the table could not
    /// be read, or a sensor's events could not be sent) fails the invocation: the next
    /// minute's check finds the same sensors.
    pub async fn check(&self, now: Timestamp) -> Result<sessions::CheckReport, String> {
        let started = Instant::now();
        let report = sessions::check(&self.sensors, &self.sink, &self.settings(), now).await.map_err(str::to_string)?;
        let latency_ms = (started.elapsed().as_secs_f64() * 1e6).round() / 1e3;
        tracing::info!(target: "cgm_events", active = report.active, events_sent = report.events, sessions_written = report.written, failed = report.failed, latency_ms, "sensor check");
        if report.failed > 0 {
            return Err(format!("{} sensors could not be brought up to date", report.failed));
        }
        Ok(report)
    }
}

/// The service over the stack's tables, sending its events to `K`.
pub type Service<K> = EventsService<DynamoReadStore, DynamoRollupStore, DynamoSensorStore, K, DynamoPoisonStore>;

/// Builds the service the way a cold start does: one DynamoDB client for the process, and
/// the bus's client. `EVENT_BUS_NAME` must be set in the stack.
pub async fn from_config(cfg: &Config) -> Result<Service<EventBridgeSink>, cgm_shared::ConfigError> {
    let sdk = aws::sdk_config(cfg).await;
    let bus = cfg.event_bus.clone().ok_or(cgm_shared::ConfigError::Missing {
        var: "EVENT_BUS_NAME",
        why: "alert and sensor events go to this EventBridge bus",
    })?;
    let limits = CallLimits::EVENTS;
    let events = aws_sdk_eventbridge::Client::from_conf(
        aws_sdk_eventbridge::config::Builder::from(&sdk)
            .timeout_config(aws::timeouts(limits))
            .retry_config(aws::retries(limits))
            .build(),
    );
    Ok(with_sink(cfg, &sdk, EventBridgeSink::new(events, bus)))
}

/// The service over the tables of `cfg`, its events to `sink` (locally: a
/// [`sink::MemorySink`], as there is no local EventBridge).
pub fn with_sink<K: EventSink>(cfg: &Config, sdk: &aws_config::SdkConfig, sink: K) -> Service<K> {
    let client = aws::dynamodb(sdk, cfg.dynamodb_endpoint.as_deref(), CallLimits::READ);
    EventsService::new(
        DynamoReadStore::new(client.clone(), cfg.tables.readings.clone(), cfg.tables.follow_tokens.clone()),
        DynamoRollupStore::new(client.clone(), cfg.tables.rollups.clone()),
        DynamoSensorStore::new(client.clone(), cfg.tables.sensors.clone()),
        sink,
        DynamoPoisonStore::new(client, cfg.tables.quarantine.clone()).retaining(cfg.raw_body_retention_days),
        cfg,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use cgm_domain::session::SensorReading;
    use cgm_domain::store::poison::memory::MemoryPoisonStore;
    use cgm_domain::store::reads::memory::MemoryReadStore;
    use cgm_domain::store::rollups::memory::MemoryRollupStore;
    use cgm_domain::store::sensors::memory::MemorySensorStore;
    use chrono::NaiveDate;
    use sink::MemorySink;
    use std::sync::atomic::Ordering;

    type Memory = EventsService<MemoryReadStore, MemoryRollupStore, MemorySensorStore, MemorySink, MemoryPoisonStore>;

    fn service() -> Memory {
        let cfg = Config::from_lookup(|_| None).expect("the default configuration");
        EventsService::new(
            MemoryReadStore::default(),
            MemoryRollupStore::default(),
            MemorySensorStore::default(),
            MemorySink::default(),
            MemoryPoisonStore::default(),
            &cfg,
        )
    }

    fn reading(test_id: &str, at: i64) -> SensorReading {
        SensorReading {
            reading: StoredReading {
                test_id: test_id.into(),
                device_sn: "SN-POISON".into(),
                measured_at: Timestamp::from_ms(at),
                mmol: 6.0,
                serial_no: None,
                status: Some("0".into()),
                valid: true,
                incre_minute: Some(3),
                low: None,
                high: None,
            },
            cgm_status: Some("2".into()),
            cgm_day: Some(15),
            customer_name: None,
            patient_id: None,
            visit_id: None,
            received_at: None,
        }
    }

    /// Two good readings of 1 May 2024 around a stored reading whose testTime is in year
    /// +262142: the last day the calendar holds, so its day has no next midnight.
    fn batch() -> stream::Batch {
        let may = SourceZone::default().local_day(NaiveDate::from_ymd_opt(2024, 5, 1).unwrap()).unwrap().start().ms();
        let last_day = NaiveDate::from_ymd_opt(262_142, 12, 31).unwrap().and_hms_opt(0, 0, 0).unwrap();
        let far = last_day.and_utc().timestamp_millis();
        stream::Batch {
            readings: vec![
                ("100".into(), reading("GOOD-1", may)),
                ("101".into(), reading("POISON-1", far)),
                ("102".into(), reading("GOOD-2", may + 180_000)),
            ],
            skipped: 0,
        }
    }

    #[tokio::test]
    async fn a_poison_reading_is_written_aside_once_and_the_batch_moves_on() {
        // Given a batch with one reading whose day can never be rolled up
        let svc = service();

        // When it is handled, and then delivered again
        let first = svc.process(&batch()).await;
        let again = svc.process(&batch()).await;

        // Then the good readings are rolled up and nothing is retried
        assert!(first.failed.is_empty() && again.failed.is_empty(), "{first:?} {again:?}");
        assert!(first.response().batch_item_failures.is_empty());
        let rollups = svc.rollup_store().rollups.lock().unwrap().clone();
        let days: Vec<(NaiveDate, u64)> = rollups.values().map(|r| (r.day, r.readings)).collect();
        assert_eq!(days, [(NaiveDate::from_ymd_opt(2024, 5, 1).unwrap(), 2)]);
        // And the poison reading is kept once, with its keys and why
        let kept = svc.poison_store().kept();
        assert_eq!(kept.len(), 1, "{kept:?}");
        let p = &kept[0];
        assert_eq!(
            (p.test_id.as_str(), p.device_sn.as_str(), p.sequence_number.as_str()),
            ("POISON-1", "SN-POISON", "101")
        );
        assert!(p.reason.contains("the day has no instants"), "{}", p.reason);
        assert_eq!(first.poisoned, kept);
        assert_eq!(
            again.poisoned.iter().map(|p| &p.key).collect::<Vec<_>>(),
            [&p.key],
            "the redelivery's, the same item"
        );
        assert_eq!(svc.poison_store().puts.load(Ordering::SeqCst), 2, "one conditional write per delivery");
    }

    #[tokio::test]
    async fn a_transient_failure_is_still_retried_beside_a_poisoned_record() {
        // Given a rollups table that does not answer
        let svc = service();
        svc.rollup_store().fail.store(true, Ordering::SeqCst);

        // When the batch is handled
        let out = svc.process(&batch()).await;

        // Then the good readings are retried, from the lowest; the poisoned one is not
        assert_eq!(out.failed, ["100", "102"]);
        let ids: Vec<Option<String>> =
            out.response().batch_item_failures.into_iter().map(|f| f.item_identifier).collect();
        assert_eq!(ids, [Some("100".to_string()), Some("102".to_string())]);
        assert_eq!(svc.poison_store().kept().len(), 1);
    }

    #[tokio::test]
    async fn a_poisoned_record_that_cannot_be_written_aside_is_retried() {
        // Given a quarantine table that does not answer
        let svc = service();
        svc.poison_store().fail.store(true, Ordering::SeqCst);

        // When the batch is handled
        let out = svc.process(&batch()).await;

        // Then the record is not lost: Lambda brings it again
        assert_eq!(out.failed, ["101"]);
        assert!(out.poisoned.is_empty());
        assert_eq!(svc.rollup_store().rollups.lock().unwrap().len(), 1, "the good ones are done");
        // And once the table answers, the redelivery writes it aside and moves on
        svc.poison_store().fail.store(false, Ordering::SeqCst);
        let out = svc.process(&batch()).await;
        assert!(out.failed.is_empty(), "{out:?}");
        assert_eq!(svc.poison_store().kept().len(), 1);
    }

    #[tokio::test]
    async fn a_remove_record_is_passed_over_not_failed() {
        let svc = service();
        let item = cgm_shared::store::attr::Item::from([(
            cgm_shared::store::attr::TEST_ID.to_string(),
            cgm_shared::store::attr::s("GONE-1"),
        )]);
        let mut event = stream::event_of_items(&[("200".into(), item)]);
        event.records[0].event_name = "REMOVE".into();
        let response = svc.handle(event).await;
        assert!(response.batch_item_failures.is_empty());
        assert_eq!(svc.poison_store().puts.load(Ordering::SeqCst), 0);
    }
}
