//! The template's metric filters over the log lines the push function really writes: each
//! alarm's metric counts exactly the pushes it is named for, so renaming a log field (or
//! the frame's message) can never silence an alarm unnoticed. No DynamoDB needed: the push
//! service runs on its in-memory store, through the same edge frame as in Lambda.

use cgm_edge::HttpService;
use cgm_local::template::Template;
use cgm_push::{PushAuth, PushService};
use cgm_shared::sensitive::Sensitive;
use cgm_shared::store::push::memory::MemoryStore;
use cgm_shared::time::SourceZone;
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
