//! The template's metric filters over the log lines the push function really writes: each
//! alarm's metric counts exactly the pushes it is named for, so renaming a log field (or
//! the frame's message) can never silence an alarm unnoticed. No DynamoDB needed: the push
//! service runs on its in-memory store, through the same edge frame as in Lambda.

use cgm_domain::sensitive::Sensitive;
use cgm_domain::store::push::memory::MemoryStore;
use cgm_domain::time::SourceZone;
use cgm_edge::HttpService;
use cgm_local::template::Template;
use cgm_push::{PushAuth, PushService};
use cgm_tests::filter_pattern::FilterPattern;
use cgm_tests::{SEED_EXAMPLE, capture_logs, push_request, seed_with};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

const KEY: &str = "metric-filter-test-key-0123456789abcdef";

#[tokio::test]
async fn each_push_metric_counts_exactly_its_own_outcomes() {
    let svc = PushService::new(
        MemoryStore::default(),
        PushAuth::new(&[Sensitive::new(KEY.to_string())], vec![]),
        SourceZone::default(),
        Duration::from_secs(3),
    );
    let key = format!("key={KEY}");
    let (logs, guard) = capture_logs("info");
    // One push of each kind, in this order: what each line is, for the assertions below.
    let kinds = [
        "stored",
        "duplicate",
        "conflict",
        "quarantined",
        "unauthorized",
        "out of range",
        "source denied",
        "unavailable",
    ];
    svc.handle(push_request(SEED_EXAMPLE, &key, "203.0.113.10")).await;
    svc.handle(push_request(SEED_EXAMPLE, &key, "203.0.113.10")).await;
    svc.handle(push_request(&seed_with(json!({"testResult": "7.1"})), &key, "203.0.113.10")).await;
    svc.handle(push_request("not json", &key, "203.0.113.10")).await;
    svc.handle(push_request(SEED_EXAMPLE, "key=wrong", "203.0.113.10")).await;
    let odd = seed_with(json!({"testId": "odd", "increMinute": 576_460_752_303_423_488u64}));
    svc.handle(push_request(&odd, &key, "203.0.113.10")).await;
    let walled = PushService::new(
        MemoryStore::default(),
        PushAuth::new(&[Sensitive::new(KEY.to_string())], vec!["198.51.100.0/24".parse().unwrap()]),
        SourceZone::default(),
        Duration::from_secs(3),
    );
    walled.handle(push_request(SEED_EXAMPLE, &key, "203.0.113.10")).await;
    svc.store().fail.store(true, Ordering::SeqCst);
    svc.handle(push_request(&seed_with(json!({"testId": "another"})), &key, "203.0.113.10")).await;
    drop(guard);

    let lines: Vec<Value> = logs.text().lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    let push_lines: Vec<&Value> = lines.iter().filter(|l| l["message"] == "push").collect();
    assert_eq!(push_lines.len(), kinds.len(), "one line per push: {lines:#?}");

    let want: BTreeMap<&str, Vec<&str>> = BTreeMap::from([
        ("PushesAcknowledged", vec!["stored", "duplicate", "out of range"]),
        ("PushFieldsOutOfRange", vec!["out of range"]),
        ("PushesSourceDenied", vec!["source denied"]),
        ("PushConflicts", vec!["conflict"]),
        ("PushesQuarantined", vec!["quarantined"]),
        ("PushesUnauthorized", vec!["unauthorized"]),
        ("PushesUnavailable", vec!["unavailable"]),
    ]);
    let filters: Vec<_> = Template::load_default()
        .expect("infra/template.yaml")
        .metric_filters()
        .into_iter()
        .filter(|f| f.log_group.as_deref() == Some("PushFunctionLogGroup"))
        .collect();
    let mut seen = Vec::new();
    for f in &filters {
        let pattern = FilterPattern::parse(&f.pattern).unwrap_or_else(|e| panic!("{}: {e}", f.logical_id));
        let matched: Vec<&str> =
            push_lines.iter().zip(kinds).filter(|(l, _)| pattern.matches(l)).map(|(_, k)| k).collect();
        let expected = want.get(f.metric.as_str()).unwrap_or_else(|| panic!("no expectation for metric {}", f.metric));
        assert_eq!(&matched, expected, "{} ({}) over the push log lines", f.logical_id, f.pattern);
        seen.push(f.metric.as_str());
    }
    seen.sort();
    assert_eq!(seen, want.keys().copied().collect::<Vec<_>>(), "every push metric filter was checked");
}

/// A stored reading's stream image: device `SN-FILTER`, 5.5 mmol/L at `at_ms`.
fn stream_item(test_id: &str, at_ms: i64) -> cgm_shared::store::attr::Item {
    use aws_sdk_dynamodb::types::AttributeValue::{N, S};
    use cgm_shared::store::attr;
    cgm_shared::store::attr::Item::from([
        (attr::TEST_ID.to_string(), S(test_id.to_string())),
        (attr::DEVICE_SN.to_string(), S("SN-FILTER".to_string())),
        (attr::MEASURED_AT.to_string(), N(at_ms.to_string())),
        (attr::GLUCOSE_MMOL.to_string(), N("5.5".to_string())),
        (attr::STATUS.to_string(), S("0".to_string())),
    ])
}

#[tokio::test]
async fn each_stream_metric_counts_exactly_its_own_batches() {
    use cgm_domain::store::poison::memory::MemoryPoisonStore;
    use cgm_domain::store::reads::memory::MemoryReadStore;
    use cgm_domain::store::rollups::memory::MemoryRollupStore;
    use cgm_domain::store::sensors::memory::MemorySensorStore;
    use cgm_events::EventsService;
    use cgm_events::sink::MemorySink;
    use cgm_events::stream::event_of_items;

    // Given the events function on memory stores, as its cold start builds it
    let cfg = cgm_shared::config::Config::from_lookup(|_| None).expect("the default configuration");
    let svc = EventsService::new(
        MemoryReadStore::default(),
        MemoryRollupStore::default(),
        MemorySensorStore::default(),
        MemorySink::default(),
        MemoryPoisonStore::default(),
        &cfg,
    );
    let may = 1_714_492_800_000; // 2024-05-01T00:00:00+08:00
    // The calendar's last day: a reading there has a day with no next midnight, which no
    // retry can roll up.
    let last_day = chrono::NaiveDate::from_ymd_opt(262_142, 12, 31).unwrap().and_hms_opt(0, 0, 0).unwrap();
    let far = last_day.and_utc().timestamp_millis();
    let (logs, guard) = capture_logs("info");

    // When a clean batch, then a batch with two poisoned records among good ones, is handled
    let kinds = ["clean", "poisoned"];
    svc.handle(event_of_items(&[
        ("1".into(), stream_item("F-1", may)),
        ("2".into(), stream_item("F-2", may + 180_000)),
    ]))
    .await;
    let answer = svc
        .handle(event_of_items(&[
            ("3".into(), stream_item("F-3", may + 360_000)),
            ("4".into(), stream_item("F-FAR-1", far)),
            ("5".into(), stream_item("F-FAR-2", far + 60_000)),
        ]))
        .await;
    drop(guard);
    assert!(answer.batch_item_failures.is_empty(), "the poisoned records are not retried: {answer:?}");

    // Then each of the events function's metric filters counts exactly its own batches,
    // with the value the alarm sums
    let lines: Vec<Value> = logs.text().lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    let batch_lines: Vec<&Value> = lines.iter().filter(|l| l["message"] == "stream batch").collect();
    assert_eq!(batch_lines.len(), kinds.len(), "one line per batch: {lines:#?}");
    let want: BTreeMap<&str, (Vec<&str>, Vec<f64>)> = BTreeMap::from([
        ("StreamBatchesRetried", (vec![], vec![])),
        ("StreamRecordsPoisoned", (vec!["poisoned"], vec![2.0])),
    ]);
    let filters: Vec<_> = Template::load_default()
        .expect("infra/template.yaml")
        .metric_filters()
        .into_iter()
        .filter(|f| f.log_group.as_deref() == Some("EventsFunctionLogGroup"))
        .collect();
    let mut seen = Vec::new();
    for f in &filters {
        let pattern = FilterPattern::parse(&f.pattern).unwrap_or_else(|e| panic!("{}: {e}", f.logical_id));
        let matched: Vec<(&str, &Value)> =
            batch_lines.iter().zip(kinds).filter(|(l, _)| pattern.matches(l)).map(|(l, k)| (k, *l)).collect();
        let (kinds_want, values_want) =
            want.get(f.metric.as_str()).unwrap_or_else(|| panic!("no expectation for metric {}", f.metric));
        assert_eq!(
            &matched.iter().map(|(k, _)| *k).collect::<Vec<_>>(),
            kinds_want,
            "{} ({})",
            f.logical_id,
            f.pattern
        );
        let values: Vec<f64> = matched.iter().map(|(_, l)| f.value_of(l).expect("a metric value")).collect();
        assert_eq!(&values, values_want, "{}: the metric's value", f.logical_id);
        seen.push(f.metric.as_str());
    }
    seen.sort();
    assert_eq!(seen, want.keys().copied().collect::<Vec<_>>(), "every events metric filter was checked");
}
