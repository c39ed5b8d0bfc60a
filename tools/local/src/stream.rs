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
use cgm_events::EventsService;
use cgm_shared::store::reads::ReadStore;
use cgm_shared::store::rollups::RollupStore;
use std::collections::HashMap;
use std::time::Duration;

/// Records per batch, as the template's event source mapping (BatchSize).
const BATCH_SIZE: i32 = 100;
const IDLE_POLL: Duration = Duration::from_millis(250);

pub struct StreamConsumer<R, U> {
    streams: aws_sdk_dynamodbstreams::Client,
    dynamodb: aws_sdk_dynamodb::Client,
    table: String,
    service: std::sync::Arc<EventsService<R, U>>,
}

impl<R: ReadStore + 'static, U: RollupStore + 'static> StreamConsumer<R, U> {
    pub fn new(
        sdk: &aws_config::SdkConfig,
        endpoint: &str,
        dynamodb: aws_sdk_dynamodb::Client,
        table: &str,
        service: std::sync::Arc<EventsService<R, U>>,
    ) -> Self {
        let conf = aws_sdk_dynamodbstreams::config::Builder::from(sdk).endpoint_url(endpoint).build();
        StreamConsumer {
            streams: aws_sdk_dynamodbstreams::Client::from_conf(conf),
            dynamodb,
            table: table.to_string(),
            service,
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
        let mut iterators: HashMap<String, Option<String>> = HashMap::new();
        loop {
            let shards = self.streams.describe_stream().stream_arn(&arn).send().await?;
            for shard in shards.stream_description.and_then(|d| d.shards).unwrap_or_default() {
                let Some(id) = shard.shard_id else { continue };
                if !iterators.contains_key(&id) {
                    let it = self
                        .streams
                        .get_shard_iterator()
                        .stream_arn(&arn)
                        .shard_id(&id)
                        .shard_iterator_type(ShardIteratorType::TrimHorizon)
                        .send()
                        .await?
                        .shard_iterator;
                    iterators.insert(id.clone(), it);
                }
            }
            let mut idle = true;
            for (shard, it) in iterators.iter_mut() {
                let Some(current) = it.clone() else { continue };
                let out = self.streams.get_records().shard_iterator(&current).limit(BATCH_SIZE).send().await?;
                let records = out.records.unwrap_or_default();
                if records.is_empty() {
                    *it = out.next_shard_iterator;
                    continue;
                }
                idle = false;
                let event = event_of(&records);
                let response = self.service.handle(event).await;
                let failed: Vec<&str> =
                    response.batch_item_failures.iter().filter_map(|f| f.item_identifier.as_deref()).collect();
                match failed.iter().min_by_key(|s| s.parse::<u128>().unwrap_or(u128::MAX)) {
                    None => *it = out.next_shard_iterator,
                    Some(seq) => {
                        // As Lambda does: retry from the lowest failed record, after a pause.
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        *it = self
                            .streams
                            .get_shard_iterator()
                            .stream_arn(&arn)
                            .shard_id(shard)
                            .shard_iterator_type(ShardIteratorType::AtSequenceNumber)
                            .sequence_number(*seq)
                            .send()
                            .await?
                            .shard_iterator;
                    }
                }
            }
            if idle {
                tokio::time::sleep(IDLE_POLL).await;
            }
        }
    }
}

/// The DynamoDB stream event Lambda would deliver for these records.
fn event_of(records: &[aws_sdk_dynamodbstreams::types::Record]) -> Event {
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
