//! `cgm-replay` against DynamoDB Local: what the push route quarantined is listed and judged
//! by the current parser; a dry run changes nothing; `--apply` stores what now parses, as
//! the push route would, and releases it from quarantine, leaving the rest.

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use cgm_domain::push::Unusable;
use cgm_domain::time::SourceZone;
use cgm_edge::HttpService;
use cgm_replay::{Action, Verdict, replay};
use cgm_shared::store::push::dynamodb::DynamoStore;
use cgm_tests::*;
use serde_json::json;
use sha2::{Digest, Sha256};

fn sha(body: &str) -> String {
    hex::encode(Sha256::digest(body.as_bytes()))
}

/// A quarantine item put by hand, as an older parser would have left it.
async fn quarantine_by_hand(stack: &Stack, body: &str, received_at_ms: i64) {
    stack
        .client
        .put_item()
        .table_name(stack.table("QUARANTINE_TABLE"))
        .item("bodySha256", AttributeValue::S(sha(body)))
        .item("reason", AttributeValue::S("old parser".into()))
        .item("body", AttributeValue::B(Blob::new(body.as_bytes())))
        .item("bodyLength", AttributeValue::N(body.len().to_string()))
        .item("truncated", AttributeValue::Bool(false))
        .item("receivedAt", AttributeValue::N(received_at_ms.to_string()))
        .item("requestId", AttributeValue::S("req-from-the-past".into()))
        .send()
        .await
        .expect("put a quarantine item");
}

async fn snapshot(stack: &Stack) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for t in ["READINGS_TABLE", "QUARANTINE_TABLE", "CONFLICTS_TABLE"] {
        let mut items: Vec<String> = stack.scan(t).await.iter().map(|i| format!("{:?}", sorted(i))).collect();
        items.sort();
        out.push(items);
    }
    out
}

fn sorted(i: &Item) -> std::collections::BTreeMap<&String, &AttributeValue> {
    i.iter().collect()
}

#[tokio::test]
async fn dry_run_changes_nothing_and_apply_moves_only_what_now_parses() {
    // Given: the push route quarantined a "5,6" reading and the stub of an oversized body,
    // and stored the seed example; older parsers left three bodies that parse today: a new
    // reading, a re-send of the stored one, and a different measurement under its testId
    let stack = Stack::new().await;
    let svc = cgm_push::from_config(&stack.config(&[])).await.unwrap();
    let comma = seed_with(json!({"testId": "comma-1", "testResult": "5,6"}));
    let oversized = seed_with(json!({"testId": "big-1", "padding": "x".repeat(70 * 1024)}));
    for body in [&comma, &oversized, &SEED_EXAMPLE.to_string()] {
        svc.handle(push_request(body, "", "203.0.113.10")).await;
    }
    let parses = seed_with(json!({"testId": "replay-1", "testResult": "6.1"}));
    let resend = seed_with(json!({"patientName": "a corrected name"}));
    let conflicting = seed_with(json!({"testResult": "9.9"}));
    quarantine_by_hand(&stack, &parses, 1_700_000_000_000).await;
    quarantine_by_hand(&stack, &resend, 1_700_000_000_001).await;
    quarantine_by_hand(&stack, &conflicting, 1_700_000_000_002).await;
    let store = DynamoStore::new(stack.client.clone(), stack.config(&[]).tables);
    let zone = SourceZone::default();
    let before = snapshot(&stack).await;
    assert_eq!(before[1].len(), 5, "five items in quarantine");

    // When: a dry run
    let lines = replay(&store, &zone, false, None).await.unwrap();

    // Then: each is judged, and nothing changes
    let verdict = |body: &str| lines.iter().find(|l| l.item.body_sha256 == sha(body)).map(|l| l.verdict.clone());
    assert_eq!(verdict(&comma), Some(Verdict::StillUnusable(Unusable::TestResultNotDecimal)));
    assert_eq!(verdict(&oversized), Some(Verdict::Truncated));
    assert_eq!(verdict(&parses), Some(Verdict::Parses { test_id: "replay-1".into() }));
    assert_eq!(verdict(&resend), Some(Verdict::Parses { test_id: "23434335345".into() }));
    assert_eq!(verdict(&conflicting), Some(Verdict::Parses { test_id: "23434335345".into() }));
    assert!(lines.iter().all(|l| l.action.is_none()));
    assert_eq!(snapshot(&stack).await, before, "a dry run changes nothing");
    let listing: String = lines.iter().map(cgm_replay::describe).collect::<Vec<_>>().join("\n");
    assert!(!listing.contains("a corrected name") && !listing.contains("张三"), "bodies are not shown: {listing}");

    // When: applied
    let lines = replay(&store, &zone, true, None).await.unwrap();

    // Then: what parses is stored (or found a duplicate, or recorded as a conflict) and
    // released; the unusable body and the stub stay
    let action = |body: &str| lines.iter().find(|l| l.item.body_sha256 == sha(body)).and_then(|l| l.action.clone());
    assert_eq!(action(&parses), Some(Action::Stored));
    assert_eq!(action(&resend), Some(Action::Duplicate));
    assert_eq!(action(&conflicting), Some(Action::Conflict));
    assert_eq!(action(&comma), Some(Action::Kept));
    assert_eq!(action(&oversized), Some(Action::Kept));
    let mut left: Vec<String> =
        stack.scan("QUARANTINE_TABLE").await.iter().filter_map(|i| s(i, "bodySha256").map(String::from)).collect();
    left.sort();
    let mut want = vec![sha(&comma), sha(&oversized)];
    want.sort();
    assert_eq!(left, want);

    let readings = stack.scan("READINGS_TABLE").await;
    assert_eq!(readings.len(), 2);
    let replayed = readings.iter().find(|r| s(r, "testId") == Some("replay-1")).expect("replay-1 stored");
    assert_eq!(s(replayed, "testResult"), Some("6.1"));
    assert_eq!(n(replayed, "receivedAt"), Some("1700000000000"), "it arrived when the push did");
    assert_eq!(s(replayed, "requestId"), Some("req-from-the-past"));
    let seed = readings.iter().find(|r| s(r, "testId") == Some("23434335345")).unwrap();
    assert_eq!(s(seed, "testResult"), Some("5.6"), "the first measurement is kept");
    let conflicts = stack.scan("CONFLICTS_TABLE").await;
    assert_eq!(conflicts.len(), 1);
    assert_eq!(s(&conflicts[0], "testResult"), Some("9.9"));

    // And a second run has nothing left to do
    let again = snapshot(&stack).await;
    let lines = replay(&store, &zone, true, None).await.unwrap();
    assert!(lines.iter().all(|l| l.action == Some(Action::Kept)));
    assert_eq!(snapshot(&stack).await, again);
}

#[tokio::test]
async fn only_selects_items_by_hash_prefix() {
    let stack = Stack::new().await;
    let a = seed_with(json!({"testId": "only-a"}));
    let b = seed_with(json!({"testId": "only-b"}));
    quarantine_by_hand(&stack, &a, 1).await;
    quarantine_by_hand(&stack, &b, 2).await;
    let store = DynamoStore::new(stack.client.clone(), stack.config(&[]).tables);
    let prefix = &sha(&a)[..12];
    let lines = replay(&store, &SourceZone::default(), true, Some(prefix)).await.unwrap();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0].action, Some(Action::Stored));
    let readings = stack.scan("READINGS_TABLE").await;
    assert_eq!(readings.iter().filter_map(|r| s(r, "testId")).collect::<Vec<_>>(), ["only-a"]);
    assert_eq!(stack.scan("QUARANTINE_TABLE").await.len(), 1);
}

/// Readings stored before the stream consumer existed get their daily rollups from
/// `cgm-replay rollups`, equal to what the consumer would write; a second run writes none.
#[tokio::test]
async fn rollups_are_built_for_readings_stored_before_the_consumer() {
    use cgm_domain::rollup::DayRollup;
    use cgm_shared::store::reads::dynamodb::{DynamoReadStore, reading_of};
    use cgm_shared::store::rollups::dynamodb::{DynamoRollupStore, rollup_of};
    let stack = Stack::new().await;
    let svc = cgm_push::from_config(&stack.config(&[])).await.unwrap();
    for s in 1..=30u64 {
        // Ten readings a day over three local days (China time), 21:00 onwards.
        let local = format!("2024-05-0{} {:02}:{:02}:00", 1 + (s - 1) / 10, 21 + (s - 1) % 10 / 4, ((s - 1) % 4) * 15);
        let body = seed_with(
            json!({"testId": format!("OLD-{s}"), "deviceSn": "SN-OLD", "serialNo": s, "status": "0", "testTime": local}),
        );
        svc.handle(push_request(&body, "", "203.0.113.10")).await;
    }
    let cfg = stack.config(&[]);
    let reads =
        DynamoReadStore::new(stack.client.clone(), cfg.tables.readings.clone(), cfg.tables.follow_tokens.clone());
    let rollups = DynamoRollupStore::new(stack.client.clone(), cfg.tables.rollups.clone());
    let zone = SourceZone::default();
    let mut seen = Vec::new();
    let done = cgm_replay::rollups::backfill(&stack.client, &cfg.tables.readings, &reads, &rollups, &zone, None, |p| {
        seen.push(p.clone())
    })
    .await
    .unwrap();
    assert_eq!((done.days, done.written, done.items), (3, 3, 30));
    assert!(!seen.is_empty(), "progress is reported");
    let stored: Vec<_> = stack.scan("READINGS_TABLE").await.iter().filter_map(reading_of).collect();
    let written: Vec<DayRollup> = stack.scan("ROLLUPS_TABLE").await.iter().filter_map(rollup_of).collect();
    assert_eq!(written.len(), 3);
    for r in &written {
        assert_eq!(r, &DayRollup::of_day(&"SN-OLD".into(), r.day, &zone, &stored));
        assert_eq!(r.readings, 10);
    }
    let again =
        cgm_replay::rollups::backfill(&stack.client, &cfg.tables.readings, &reads, &rollups, &zone, None, |_| {})
            .await
            .unwrap();
    assert_eq!((again.days, again.written), (3, 0), "a second run changes nothing");
}

/// Stream records the consumer gave up on come back from the stream by the failure queue's
/// message (a shard and a sequence range), through the consumer's own steps: the session,
/// its events and the rollups appear; redoing the range again changes and sends nothing.
#[tokio::test]
async fn given_up_stream_records_are_redone_from_the_failure_queues_message() {
    use cgm_events::sink::MemorySink;
    use cgm_replay::stream::{BatchInfo, redo};
    // Given readings pushed while no consumer ran (as if it had given up on them)
    let stack = Stack::new().await;
    let cfg = stack.config(&[]);
    let base = serve_locally(&cfg).await;
    let http = reqwest::Client::new();
    let now = chrono::Utc::now();
    for i in 0..3u64 {
        let local = now - chrono::Duration::minutes(9 - 3 * i as i64) + chrono::Duration::hours(8);
        let body = seed_with(json!({
            "testId": format!("REDO-{i}"), "deviceSn": "SN-REDO", "serialNo": i + 1, "status": "0",
            "testTime": local.format("%Y-%m-%d %H:%M:%S").to_string(), "testResult": "2.5",
        }));
        assert_eq!(http.post(format!("{base}/sinocare/cgm")).body(body).send().await.unwrap().status(), 200);
    }
    // And the failure queue's message for their range
    let sdk = cgm_shared::aws::sdk_config(&cfg).await;
    let streams = stack.streams().await;
    let (arn, shards) = stack.stream_records("READINGS_TABLE").await;
    let (shard_id, records) = shards.into_iter().next().expect("a shard with records");
    let seqs: Vec<String> =
        records.iter().map(|r| r.dynamodb().unwrap().sequence_number().unwrap().to_string()).collect();
    assert_eq!(seqs.len(), 3, "the three records in one shard");
    let message = json!({
        "requestContext": {"condition": "RetryAttemptsExhausted", "approximateInvokeCount": 11},
        "DDBStreamBatchInfo": {"shardId": shard_id, "startSequenceNumber": seqs[0], "endSequenceNumber": seqs[2],
            "batchSize": 3, "streamArn": arn},
    });
    let info = BatchInfo::parse(&message.to_string()).unwrap();

    // When the operator redoes it
    let service = cgm_events::with_sink(&cfg, &sdk, MemorySink::default());
    let done = redo(&streams, &service, &info).await.unwrap();

    // Then every record went through every step
    assert_eq!((done.records, done.failed.len()), (3, 0));
    let types: Vec<String> = service.sink().taken().iter().map(|e| e.detail_type.clone()).collect();
    assert_eq!(types, ["cgm.sensor.started", "cgm.alert.opened"], "urgent low at 2.5");
    assert_eq!(stack.scan("SENSORS_TABLE").await.len(), 1);
    assert_eq!(stack.scan("ROLLUPS_TABLE").await.len(), 1);
    // And a second redo changes nothing and sends nothing
    let again = redo(&streams, &service, &info).await.unwrap();
    assert_eq!((again.records, again.failed.len(), service.sink().taken().len()), (3, 0, 2));
    assert!(BatchInfo::parse("{\"DDBStreamBatchInfo\":{}}").is_err());
}
