//! What Lambda's event source mapping does for the readings stream, on DynamoDB Local's own
//! stream: read each shard from its oldest record, hand batches to the consumer as the
//! DynamoDB stream event Lambda would deliver, and on reported failures read again from the
//! lowest failed sequence number (so later records of that batch come again, as in Lambda).
//!
//! DynamoDB Local implements DescribeStream, GetShardIterator and GetRecords; its records
//! carry no `eventSourceARN` and a creation time cut to the minute, so nothing here relies
//! on either.

use aws_lambda_events::event::dynamodb::{Event, EventRecord, StreamRecord};
use aws_sdk_dynamodbstreams::types::ShardIteratorType;
use cgm_events::Service;
use cgm_events::sink::EventSink;
use std::collections::HashMap;
use std::time::Duration;

/// Records per batch, as the template's event source mapping (BatchSize).
const BATCH_SIZE: i32 = 100;
const IDLE_POLL: Duration = Duration::from_millis(250);
const RETRY_PAUSE: Duration = Duration::from_millis(200);

pub struct StreamConsumer<K> {
    streams: aws_sdk_dynamodbstreams::Client,
    dynamodb: aws_sdk_dynamodb::Client,
    table: String,
    service: std::sync::Arc<Service<K>>,
}

impl<K: EventSink + 'static> StreamConsumer<K> {
    pub fn new(
        sdk: &aws_config::SdkConfig,
        endpoint: &str,
        dynamodb: aws_sdk_dynamodb::Client,
        table: &str,
        service: std::sync::Arc<Service<K>>,
    ) -> Self {
        let conf = aws_sdk_dynamodbstreams::config::Builder::from(sdk).endpoint_url(endpoint).build();
        StreamConsumer {
            streams: aws_sdk_dynamodbstreams::Client::from_conf(conf),
            dynamodb,
            table: table.to_string(),
            service,
        }
    }

    /// The service batches go to: its sink holds the events, its check can be run at any
    /// instant.
    pub fn service(&self) -> std::sync::Arc<Service<K>> {
        self.service.clone()
    }

    /// The schedule's stand-in: the sensor check every `every`, as the stack's rule runs it
    /// every minute. Runs until the future is dropped.
    pub async fn run_checks(service: std::sync::Arc<Service<K>>, every: Duration) {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(e) = service.check(cgm_domain::time::Timestamp::now()).await {
                eprintln!("cgm-dev: the sensor check failed: {e}");
            }
        }
    }

    /// Runs until the future is dropped, reading every shard.
    pub async fn run(self) -> anyhow::Result<()> {
        let arn = self
            .dynamodb
            .describe_table()
            .table_name(&self.table)
            .send()
            .await?
            .table
            .and_then(|t| t.latest_stream_arn)
            .ok_or_else(|| anyhow::anyhow!("{} has no stream", self.table))?;
        let mut shards: HashMap<String, Shard> = HashMap::new();
        loop {
            let described = match self.streams.describe_stream().stream_arn(&arn).send().await {
                Ok(d) => d,
                Err(e) => {
                    eprintln!("cgm-dev: describing the readings stream failed ({}); trying again", error_text(&e));
                    tokio::time::sleep(RETRY_PAUSE).await;
                    continue;
                }
            };
            for shard in described.stream_description.and_then(|d| d.shards).unwrap_or_default() {
                if let Some(id) = shard.shard_id {
                    shards.entry(id).or_insert(Shard { iterator: None, last_seq: None, open: true });
                }
            }
            let mut idle = true;
            for (id, shard) in shards.iter_mut() {
                if !shard.open {
                    continue;
                }
                let current = match &shard.iterator {
                    Some(it) => it.clone(),
                    None => match self.iterator(&arn, id, shard.last_seq.as_deref()).await {
                        Some(it) => {
                            shard.iterator = Some(it.clone());
                            it
                        }
                        None => continue,
                    },
                };
                let out = match self.streams.get_records().shard_iterator(&current).limit(BATCH_SIZE).send().await {
                    Ok(out) => out,
                    Err(e) => {
                        // DynamoDB Local sometimes answers TrimmedDataAccessException for a new
                        // table's first records, and iterators expire: start again after the
                        // last record handed over (redelivery is safe: every step is idempotent).
                        eprintln!(
                            "cgm-dev: reading the readings stream failed ({}); reading on from the last record",
                            error_text(&e)
                        );
                        shard.iterator = None;
                        tokio::time::sleep(RETRY_PAUSE).await;
                        continue;
                    }
                };
                let records = out.records.unwrap_or_default();
                if records.is_empty() {
                    shard.open = out.next_shard_iterator.is_some();
                    shard.iterator = out.next_shard_iterator;
                    continue;
                }
                idle = false;
                let event = event_of(&records);
                let response = self.service.handle(event).await;
                let failed: Vec<&str> =
                    response.batch_item_failures.iter().filter_map(|f| f.item_identifier.as_deref()).collect();
                match failed.iter().min_by_key(|s| s.parse::<u128>().unwrap_or(u128::MAX)) {
                    None => {
                        shard.last_seq = records.last().and_then(|r| r.dynamodb.as_ref()?.sequence_number.clone());
                        shard.open = out.next_shard_iterator.is_some();
                        shard.iterator = out.next_shard_iterator;
                    }
                    Some(seq) => {
                        // As Lambda does: retry from the lowest failed record, after a pause.
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        shard.iterator = self.iterator_at(&arn, id, seq).await;
                    }
                }
            }
            if idle {
                tokio::time::sleep(IDLE_POLL).await;
            }
        }
    }

    /// An iterator after `last_seq`, or from the shard's oldest record without one.
    async fn iterator(&self, arn: &str, shard: &str, last_seq: Option<&str>) -> Option<String> {
        let req = self.streams.get_shard_iterator().stream_arn(arn).shard_id(shard);
        let req = match last_seq {
            Some(seq) => req.shard_iterator_type(ShardIteratorType::AfterSequenceNumber).sequence_number(seq),
            None => req.shard_iterator_type(ShardIteratorType::TrimHorizon),
        };
        match req.send().await {
            Ok(out) => out.shard_iterator,
            Err(e) => {
                eprintln!("cgm-dev: no iterator for a readings stream shard ({}); trying again", error_text(&e));
                None
            }
        }
    }

    async fn iterator_at(&self, arn: &str, shard: &str, seq: &str) -> Option<String> {
        let req = self.streams.get_shard_iterator().stream_arn(arn).shard_id(shard);
        match req.shard_iterator_type(ShardIteratorType::AtSequenceNumber).sequence_number(seq).send().await {
            Ok(out) => out.shard_iterator,
            Err(e) => {
                eprintln!("cgm-dev: no iterator at a failed record ({}); trying again", error_text(&e));
                None
            }
        }
    }
}

/// Where a shard is read from: the iterator to use next (none: get one after `last_seq`).
struct Shard {
    iterator: Option<String>,
    /// The last record handed over and not reported failed.
    last_seq: Option<String>,
    /// A closed shard read to its end is left.
    open: bool,
}

/// An SDK error in one line: the service's code and message, else the SDK's own words.
fn error_text<E, R>(e: &aws_sdk_dynamodbstreams::error::SdkError<E, R>) -> String
where
    E: aws_sdk_dynamodbstreams::error::ProvideErrorMetadata,
{
    use aws_sdk_dynamodbstreams::error::ProvideErrorMetadata as _;
    match (e.code(), e.message()) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        (Some(code), None) => code.to_string(),
        _ => e.to_string(),
    }
}

/// The DynamoDB stream event Lambda would deliver for these records.
pub fn event_of(records: &[aws_sdk_dynamodbstreams::types::Record]) -> Event {
    let mut event = Event::default();
    for r in records {
        let mut rec = EventRecord::default();
        rec.event_name = r.event_name.as_ref().map(|n| n.as_str().to_string()).unwrap_or_default();
        rec.event_id = r.event_id.clone().unwrap_or_default();
        rec.aws_region = "local".into();
        if let Some(s) = &r.dynamodb {
            let mut change = StreamRecord::default();
            change.sequence_number = s.sequence_number.clone();
            change.keys = s.keys.clone().unwrap_or_default().into();
            change.new_image = s.new_image.clone().unwrap_or_default().into();
            change.old_image = s.old_image.clone().unwrap_or_default().into();
            change.size_bytes = s.size_bytes.unwrap_or_default();
            rec.change = change;
        }
        event.records.push(rec);
    }
    event
}
