//! The one consumer of the readings stream. Each batch of stream records becomes readings
//! (their new images) and goes through the consumer's steps, each idempotent and each
//! failing alone: a record is reported failed (so Lambda retries from it) only for the step
//! that failed on it.
//!
//! Steps today: **daily rollups** ([`rollups`]): each local day a batch touches is
//! recomputed once, from a Query of the day merged with the batch's own images (the index
//! is only eventually consistent), and written only over a rollup of fewer readings. Sensor
//! sessions and alerts are the next steps here; the stream has no other reader.

pub mod rollups;
pub mod stream;

use aws_lambda_events::event::dynamodb::Event;
use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use cgm_shared::aws::{self, CallLimits};
use cgm_shared::config::Config;
use cgm_shared::store::reads::ReadStore;
use cgm_shared::store::reads::dynamodb::DynamoReadStore;
use cgm_shared::store::rollups::RollupStore;
use cgm_shared::store::rollups::dynamodb::DynamoRollupStore;
use cgm_shared::time::SourceZone;
use std::collections::BTreeSet;
use std::time::Instant;

pub struct EventsService<R, U> {
    reads: R,
    rollups: U,
    zone: SourceZone,
}

impl<R: ReadStore, U: RollupStore> EventsService<R, U> {
    pub fn new(reads: R, rollups: U, zone: SourceZone) -> Self {
        Self { reads, rollups, zone }
    }

    pub fn rollup_store(&self) -> &U {
        &self.rollups
    }

    /// Handles one batch: what Lambda's event source mapping delivers. The reply names the
    /// records to retry (by sequence number); an empty list means the batch is done.
    pub async fn handle(&self, event: Event) -> DynamoDbEventResponse {
        let started = Instant::now();
        let batch = stream::readings(&event);
        let report = rollups::step(&self.reads, &self.rollups, &self.zone, &batch.readings).await;
        let failed: BTreeSet<&str> = report.failed.iter().map(String::as_str).collect();
        let latency_ms = (started.elapsed().as_secs_f64() * 1e6).round() / 1e3;
        let line = |level: tracing::Level| {
            if level == tracing::Level::WARN {
                tracing::warn!(target: "cgm_events", records = event.records.len(), readings = batch.readings.len(), not_readings = batch.skipped, days = report.days, rollups_written = report.written, failed_records = failed.len(), latency_ms, "stream batch");
            } else {
                tracing::info!(target: "cgm_events", records = event.records.len(), readings = batch.readings.len(), not_readings = batch.skipped, days = report.days, rollups_written = report.written, failed_records = failed.len(), latency_ms, "stream batch");
            }
        };
        line(if failed.is_empty() { tracing::Level::INFO } else { tracing::Level::WARN });
        let mut response = DynamoDbEventResponse::default();
        for seq in failed {
            let mut f = DynamoDbBatchItemFailure::default();
            f.item_identifier = Some(seq.to_string());
            response.batch_item_failures.push(f);
        }
        response
    }
}

/// Builds the service the way a cold start does: one DynamoDB client for the process.
pub async fn from_config(cfg: &Config) -> EventsService<DynamoReadStore, DynamoRollupStore> {
    let sdk = aws::sdk_config(cfg).await;
    let client = aws::dynamodb(&sdk, cfg.dynamodb_endpoint.as_deref(), CallLimits::READ);
    let reads = DynamoReadStore::new(client.clone(), cfg.tables.readings.clone(), cfg.tables.follow_tokens.clone());
    EventsService::new(reads, DynamoRollupStore::new(client, cfg.tables.rollups.clone()), cfg.source_timezone)
}
