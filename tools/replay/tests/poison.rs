//! Poison never blocks, against DynamoDB Local and its own stream: a reading whose testTime
//! is in year +262142, written straight into the readings table beside good ones, is written
//! aside once by the consumer (as `make dev` runs it) and never reported failed, so the
//! shard moves on; `cgm-replay poison` lists it and, once the reading is fixed, redoes it.
//!
//! Needs DynamoDB Local (`make test` starts one): `DYNAMODB_ENDPOINT`.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use cgm_domain::rollup::DayRollup;
use cgm_domain::time::SourceZone;
use cgm_events::sink::MemorySink;
use cgm_replay::poison::{self, Redo};
use cgm_shared::Config;
use cgm_shared::store::poison::dynamodb::poisoned_of;
use cgm_shared::store::rollups::dynamodb::rollup_of;
use chrono::NaiveDate;
use std::collections::HashMap;
use std::time::{Duration, Instant};

type Item = HashMap<String, AttributeValue>;

struct Tables {
    client: Client,
    cfg: Config,
}

impl Tables {
    /// Fresh tables from the template under a prefix of this test's own.
    async fn new() -> Self {
        let endpoint = std::env::var("DYNAMODB_ENDPOINT").ok().filter(|e| !e.is_empty()).unwrap_or_else(|| {
            panic!(
                "this test needs DynamoDB Local: run it with `make test`, or under \
                 `target/debug/with-dynamodb-local cargo nextest run -p cgm-replay`"
            )
        });
        let bare = Config::from_lookup(|k| (k == "DYNAMODB_ENDPOINT").then(|| endpoint.clone())).unwrap();
        let sdk = cgm_shared::aws::sdk_config(&bare).await;
        let client = cgm_shared::aws::dynamodb(&sdk, Some(&endpoint), cgm_shared::aws::CallLimits::PARTNER);
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
        let prefix = format!("p{}x{nanos}-", std::process::id());
        let template = cgm_local::template::Template::load_default().expect("infra/template.yaml");
        let mut env = cgm_local::tables::create_from_template(&client, &template, &prefix)
            .await
            .unwrap_or_else(|e| panic!("creating tables in DynamoDB Local at {endpoint} failed: {e}"));
        env.insert("DYNAMODB_ENDPOINT".into(), endpoint);
        let cfg = Config::from_lookup(|k| env.get(k).cloned()).expect("test configuration");
        Tables { client, cfg }
    }

    async fn scan(&self, table: &str) -> Vec<Item> {
        let scan = self.client.scan().table_name(table).consistent_read(true);
        cgm_shared::store::attr::scan_all(scan).await.expect("scan")
    }

    async fn put_reading(&self, test_id: &str, measured_at: i64) {
        let item: Item = [
            ("testId", AttributeValue::S(test_id.into())),
            ("deviceSn", AttributeValue::S("SN-POISON".into())),
            ("measuredAt", AttributeValue::N(measured_at.to_string())),
            ("glucoseMmol", AttributeValue::N("6.2".into())),
            ("testResult", AttributeValue::S("6.2".into())),
            ("status", AttributeValue::S("0".into())),
            ("valid", AttributeValue::Bool(true)),
            ("increMinute", AttributeValue::N("3".into())),
            ("receivedAt", AttributeValue::N(measured_at.clamp(0, 4_102_444_800_000).to_string())),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        self.client.put_item().table_name(&self.cfg.tables.readings).set_item(Some(item)).send().await.expect("put");
    }

    /// The readings table's stream records so far, from each shard's start.
    async fn stream_records(&self) -> Vec<aws_sdk_dynamodbstreams::types::Record> {
        let sdk = cgm_shared::aws::sdk_config(&self.cfg).await;
        let endpoint = self.cfg.dynamodb_endpoint.clone().unwrap_or_default();
        let streams = aws_sdk_dynamodbstreams::Client::from_conf(
            aws_sdk_dynamodbstreams::config::Builder::from(&sdk).endpoint_url(endpoint).build(),
        );
        let table = self.client.describe_table().table_name(&self.cfg.tables.readings).send().await.unwrap();
        let arn = table.table.and_then(|t| t.latest_stream_arn).expect("the readings table has a stream");
        let described = streams.describe_stream().stream_arn(&arn).send().await.expect("describe stream");
        let mut out = Vec::new();
        for shard in described.stream_description.and_then(|d| d.shards).unwrap_or_default() {
            let it = streams
                .get_shard_iterator()
                .stream_arn(&arn)
                .shard_id(shard.shard_id().unwrap_or_default())
                .shard_iterator_type(aws_sdk_dynamodbstreams::types::ShardIteratorType::TrimHorizon)
                .send()
                .await
                .expect("a shard iterator")
                .shard_iterator;
            let records = streams.get_records().set_shard_iterator(it).send().await.expect("get records");
            out.extend(records.records.unwrap_or_default());
        }
        out
    }
}

fn rollups(items: &[Item]) -> Vec<(NaiveDate, u64)> {
    let mut days: Vec<(NaiveDate, u64)> =
        items.iter().filter_map(rollup_of).map(|r: DayRollup| (r.day, r.readings)).collect();
    days.sort();
    days
}

#[tokio::test]
async fn a_poison_reading_is_written_aside_the_shard_moves_on_and_replay_redoes_it_once_fixed() {
    // Given a reading in year +262142 (the calendar's last day: it has no next midnight)
    // between two good readings of 1 May 2024, written straight into the readings table
    let t = Tables::new().await;
    let zone = SourceZone::default();
    let may1 = NaiveDate::from_ymd_opt(2024, 5, 1).unwrap();
    let start = zone.local_day(may1).unwrap().start().ms();
    let far = NaiveDate::MAX.and_hms_opt(0, 0, 0).unwrap().and_utc().timestamp_millis();
    t.put_reading("GOOD-1", start).await;
    t.put_reading("POISON-1", far).await;
    t.put_reading("GOOD-2", start + 180_000).await;

    // When the local consumer reads the stream
    let consumer = cgm_local::stream_consumer(&t.cfg).await.expect("a stream consumer");
    let running = tokio::spawn(consumer.run());

    // Then the good day is rolled up and the poison reading written aside
    let deadline = Instant::now() + Duration::from_secs(60);
    let kept = loop {
        let kept: Vec<_> = t.scan(&t.cfg.tables.quarantine).await.iter().filter_map(poisoned_of).collect();
        if rollups(&t.scan(&t.cfg.tables.rollups).await) == [(may1, 2)] && !kept.is_empty() {
            break kept;
        }
        assert!(Instant::now() < deadline, "the stream was not drained in 60 s: {kept:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    // And a reading pushed after it is taken too: the shard is not held at the poison one
    t.put_reading("GOOD-3", start + 360_000).await;
    while rollups(&t.scan(&t.cfg.tables.rollups).await) != [(may1, 3)] {
        assert!(Instant::now() < deadline, "the reading after the poison one was not rolled up");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    running.abort();
    assert_eq!(kept.len(), 1, "{kept:?}");
    let p = &kept[0];
    assert_eq!((p.test_id.as_str(), p.device_sn.as_str()), ("POISON-1", "SN-POISON"));
    assert!(p.reason.contains("the day has no instants"), "{}", p.reason);
    assert!(!p.sequence_number.is_empty());

    // And Lambda's reply for the stream's records (a redelivery) names none to retry,
    // and writes nothing new
    let sdk = cgm_shared::aws::sdk_config(&t.cfg).await;
    let service = cgm_events::with_sink(&t.cfg, &sdk, MemorySink::default());
    let records = t.stream_records().await;
    assert_eq!(records.len(), 4);
    let reply = service.handle(cgm_local::stream::event_of(&records)).await;
    assert!(reply.batch_item_failures.is_empty(), "{:?}", reply.batch_item_failures);
    let quarantine = t.scan(&t.cfg.tables.quarantine).await;
    assert_eq!(quarantine.len(), 1, "written aside once");
    assert_eq!(quarantine[0].get("source"), Some(&AttributeValue::S("stream".into())));
    assert!(quarantine[0].contains_key("expiresAt") && !quarantine[0].contains_key("body"));

    // When the operator lists them, nothing changes
    let client = &t.client;
    let readings = &t.cfg.tables.readings;
    let dry = poison::run(client, readings, &service, false, None).await.unwrap();
    assert_eq!(dry.len(), 1);
    assert!(poison::describe(&dry[0]).contains("testId POISON-1  deviceSn SN-POISON"), "{}", poison::describe(&dry[0]));
    // And the quarantine listing shows it as a stream record, never a body to parse
    let store = cgm_shared::store::push::dynamodb::DynamoStore::new(client.clone(), t.cfg.tables.clone());
    let listed = cgm_replay::replay(&store, &zone, true, None).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].verdict, cgm_replay::Verdict::StreamRecord { test_id: "POISON-1".into() });
    assert_eq!(listed[0].action, Some(cgm_replay::Action::Kept));
    // And redoing it before the cause is fixed keeps it
    let still = poison::run(client, readings, &service, true, None).await.unwrap();
    assert!(matches!(still[0].redo, Some(Redo::StillPoisoned(_))), "{still:?}");
    assert!(!poison::all_done(&still));
    assert_eq!(t.scan(&t.cfg.tables.quarantine).await.len(), 1);

    // When the reading is fixed (its time corrected to 2 May) and the record redone
    t.put_reading("POISON-1", start + 86_400_000).await;
    let done = poison::run(client, readings, &service, true, Some("POISON-1")).await.unwrap();

    // Then it went through the steps and is released; a second run finds nothing
    assert_eq!(done.iter().map(|l| l.redo.clone()).collect::<Vec<_>>(), [Some(Redo::Redone)]);
    let may2 = may1.succ_opt().unwrap();
    assert_eq!(rollups(&t.scan(&t.cfg.tables.rollups).await), [(may1, 3), (may2, 1)]);
    assert!(t.scan(&t.cfg.tables.quarantine).await.is_empty());
    assert!(poison::run(client, readings, &service, true, None).await.unwrap().is_empty());
}
