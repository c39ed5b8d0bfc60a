//! `cgm-replay stream`: redo the readings-stream records the consumer gave up on. The
//! failure queue's message names a shard and a sequence range, not the records
//! (`DDBStreamBatchInfo`); within the stream's 24 hours this reads that range again and
//! hands it to the consumer's own steps, as Lambda would have (they are idempotent: records
//! done before change nothing and send nothing).

use anyhow::Context;
use aws_sdk_dynamodbstreams::types::{Record, ShardIteratorType};
use cgm_events::Service;
use cgm_events::sink::EventSink;
use serde_json::Value;

/// Records handed to the consumer at once, as the event source mapping's batch size.
const BATCH: usize = 100;

/// A failure queue message's `DDBStreamBatchInfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchInfo {
    pub stream_arn: String,
    pub shard_id: String,
    pub start_sequence_number: String,
    pub end_sequence_number: String,
}

impl BatchInfo {
    /// From the message body as SQS holds it (or its `DDBStreamBatchInfo` alone).
    pub fn parse(body: &str) -> anyhow::Result<Self> {
        let v: Value = serde_json::from_str(body).context("the message is not JSON")?;
        let info = v.get("DDBStreamBatchInfo").unwrap_or(&v);
        let field = |k: &str| {
            info.get(k)
                .and_then(Value::as_str)
                .map(str::to_string)
                .with_context(|| format!("the message has no DDBStreamBatchInfo.{k}"))
        };
        Ok(BatchInfo {
            stream_arn: field("streamArn")?,
            shard_id: field("shardId")?,
            start_sequence_number: field("startSequenceNumber")?,
            end_sequence_number: field("endSequenceNumber")?,
        })
    }
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Redone {
    pub records: usize,
    /// Records the consumer failed again (their sequence numbers).
    pub failed: Vec<String>,
}

fn seq(r: &Record) -> Option<u128> {
    r.dynamodb.as_ref()?.sequence_number.as_deref()?.parse().ok()
}

/// Reads the range from the stream and hands it to `service` in batches.
pub async fn redo<K: EventSink>(
    streams: &aws_sdk_dynamodbstreams::Client,
    service: &Service<K>,
    info: &BatchInfo,
) -> anyhow::Result<Redone> {
    let end: u128 = info.end_sequence_number.parse().context("endSequenceNumber is not a sequence number")?;
    let mut iterator = streams
        .get_shard_iterator()
        .stream_arn(&info.stream_arn)
        .shard_id(&info.shard_id)
        .shard_iterator_type(ShardIteratorType::AtSequenceNumber)
        .sequence_number(&info.start_sequence_number)
        .send()
        .await
        .context("the range is no longer in the stream (it keeps 24 hours), or the shard is unknown")?
        .shard_iterator;
    let mut range: Vec<Record> = Vec::new();
    'read: while let Some(it) = iterator {
        let out = streams.get_records().shard_iterator(&it).send().await.context("reading the stream")?;
        let records = out.records.unwrap_or_default();
        if records.is_empty() {
            break;
        }
        for r in records {
            if seq(&r).is_none_or(|s| s > end) {
                break 'read;
            }
            range.push(r);
        }
        iterator = out.next_shard_iterator;
    }
    let mut done = Redone { records: range.len(), failed: Vec::new() };
    for chunk in range.chunks(BATCH) {
        let response = service.handle(cgm_local::stream::event_of(chunk)).await;
        done.failed.extend(response.batch_item_failures.into_iter().filter_map(|f| f.item_identifier));
    }
    Ok(done)
}
