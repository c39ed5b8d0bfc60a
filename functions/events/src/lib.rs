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
//! The scheduled check ([`EventsService::check`]) runs every minute over the index of
//! running sensors: signal lost, and sensors past their `cgmDay`.

pub mod bus;
pub mod rollups;
pub mod sessions;
pub mod sink;
pub mod stream;

use aws_lambda_events::event::dynamodb::Event;
use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use cgm_shared::alerts::AlertSettings;
use cgm_shared::aws::{self, CallLimits};
use cgm_shared::config::Config;
use cgm_shared::store::reads::dynamodb::DynamoReadStore;
use cgm_shared::store::reads::{ReadStore, StoredReading};
use cgm_shared::store::rollups::RollupStore;
use cgm_shared::store::rollups::dynamodb::DynamoRollupStore;
use cgm_shared::store::sensors::SensorStore;
use cgm_shared::store::sensors::dynamodb::DynamoSensorStore;
use cgm_shared::time::{SourceZone, Timestamp};
use sink::{EventBridgeSink, EventSink};
use std::collections::BTreeSet;
use std::time::Instant;

pub struct EventsService<R, U, T, K> {
    reads: R,
    rollups: U,
    sensors: T,
    sink: K,
    zone: SourceZone,
    alerts: AlertSettings,
    patient_fields: bool,
}

impl<R: ReadStore, U: RollupStore, T: SensorStore, K: EventSink> EventsService<R, U, T, K> {
    pub fn new(reads: R, rollups: U, sensors: T, sink: K, cfg: &Config) -> Self {
        Self {
            reads,
            rollups,
            sensors,
            sink,
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

    fn settings(&self) -> sessions::Settings<'_> {
        sessions::Settings { alerts: &self.alerts, zone: &self.zone, patient_fields: self.patient_fields }
    }

    /// Handles one batch: what Lambda's event source mapping delivers. The reply names the
    /// records to retry (by sequence number); an empty list means the batch is done.
    pub async fn handle(&self, event: Event) -> DynamoDbEventResponse {
        let started = Instant::now();
        let batch = stream::readings(&event);
        let plain: Vec<(String, StoredReading)> =
            batch.readings.iter().map(|(seq, r)| (seq.clone(), r.reading.clone())).collect();
        let days = rollups::step(&self.reads, &self.rollups, &self.zone, &plain).await;
        let sensors = sessions::step(&self.sensors, &self.sink, &self.settings(), &batch.readings, &days.counts).await;
        let failed: BTreeSet<&str> = days.failed.iter().chain(&sensors.failed).map(String::as_str).collect();
        // Lag from the readings' own times: DynamoDB Local cuts the records' creation time
        // to the minute, and the readings carry when they were measured and received.
        let now = Timestamp::now();
        let lag_ms = batch.readings.iter().filter_map(|(_, r)| r.received_at).map(|t| now.since(t)).max();
        let latency_ms = (started.elapsed().as_secs_f64() * 1e6).round() / 1e3;
        macro_rules! line {
            ($level:ident) => {
                tracing::$level!(target: "cgm_events", records = event.records.len(), readings = batch.readings.len(), not_readings = batch.skipped, days = days.days, rollups_written = days.written, devices = sensors.devices, sessions_written = sensors.written, events_sent = sensors.events, failed_records = failed.len(), received_to_done_ms = lag_ms, latency_ms, "stream batch")
            };
        }
        if failed.is_empty() {
            line!(info);
        } else {
            line!(warn);
        }
        let mut response = DynamoDbEventResponse::default();
        for seq in failed {
            let mut f = DynamoDbBatchItemFailure::default();
            f.item_identifier = Some(seq.to_string());
            response.batch_item_failures.push(f);
        }
        response
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
pub type Service<K> = EventsService<DynamoReadStore, DynamoRollupStore, DynamoSensorStore, K>;

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
        DynamoSensorStore::new(client, cfg.tables.sensors.clone()),
        sink,
        cfg,
    )
}
