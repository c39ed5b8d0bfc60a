//! The push route against DynamoDB Local: every row of the push reply table (docs/sinocare-integration.md), with what
//! is (and is not) stored.

use aws_sdk_dynamodb::types::AttributeValue;
use cgm_edge::HttpService;
use cgm_push::PushService;
use cgm_shared::store::attr::DEVICE_TIME_INDEX;
use cgm_shared::store::push::dynamodb::DynamoStore;
use cgm_tests::*;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const KEY: &str = "test-key";
const SOURCE: &str = "203.0.113.10";

async fn service(stack: &Stack, extra: &[(&str, &str)]) -> PushService<DynamoStore> {
    cgm_push::from_config(&stack.config(extra)).await.expect("push service")
}

async fn keyed(stack: &Stack) -> PushService<DynamoStore> {
    service(stack, &[("PUSH_KEY", KEY)]).await
}

async fn push(svc: &PushService<DynamoStore>, body: &str) -> (u16, Value) {
    reply_of(&svc.handle(push_request(body, &format!("key={KEY}"), SOURCE)).await)
}

fn code0() -> (u16, Value) {
    (200, json!({"code": 0, "msg": ""}))
}

#[tokio::test]
async fn seed_example_is_stored_with_every_field_as_specified() {
    let stack = Stack::new().await;
    let svc = keyed(&stack).await;

    assert_eq!(push(&svc, SEED_EXAMPLE).await, code0());

    let items = stack.scan("READINGS_TABLE").await;
    assert_eq!(items.len(), 1);
    let it = &items[0];
    assert_eq!(s(it, "testId"), Some("23434335345"));
    assert_eq!(s(it, "deviceSn"), Some("23xxdrt33"));
    assert_eq!(s(it, "testResult"), Some("5.6"));
    assert_eq!(n(it, "glucoseMmol"), Some("5.6"));
    assert_eq!(n(it, "serialNo"), Some("1"));
    assert_eq!(s(it, "testTime"), Some("2021-11-02 12:33:33"));
    assert_eq!(n(it, "measuredAt"), Some("1635827613000"));
    assert_eq!(s(it, "measuredAtUtc"), Some("2021-11-02T04:33:33.000Z"));
    assert_eq!(s(it, "status"), Some("1"));
    assert_eq!(it.get("valid"), Some(&AttributeValue::Bool(false)), "status 1 is stored as invalid");
    assert_eq!(it.get("low"), Some(&AttributeValue::Null(true)));
    assert_eq!(it.get("high"), Some(&AttributeValue::Null(true)));
    assert_eq!(s(it, "cgmStatus"), Some("2"));
    assert_eq!((n(it, "cgmDay"), n(it, "increMinute")), (Some("8"), Some("3")));
    assert_eq!(s(it, "customerName"), Some("测试医院"));
    assert_eq!(s(it, "patientName"), Some("张三"));
    assert_eq!(s(it, "idCard"), Some("430424"));
    assert_eq!(s(it, "visitId"), Some("1234321"));
    assert_eq!(s(it, "patientId"), Some("12"));
    assert_eq!(s(it, "inSerialId"), Some("12343211"));
    assert_eq!(s(it, "reservedCode"), Some("01"));

    // The device/time index finds it.
    let q = stack
        .client
        .query()
        .table_name(stack.table("READINGS_TABLE"))
        .index_name(DEVICE_TIME_INDEX)
        .key_condition_expression("deviceSn = :d AND measuredAt BETWEEN :a AND :b")
        .expression_attribute_values(":d", AttributeValue::S("23xxdrt33".into()))
        .expression_attribute_values(":a", AttributeValue::N("1635827612000".into()))
        .expression_attribute_values(":b", AttributeValue::N("1635827614000".into()))
        .send()
        .await
        .unwrap();
    assert_eq!(q.count, 1);
}

#[tokio::test]
async fn redeliveries_are_duplicates_and_a_changed_measurement_is_a_conflict() {
    let stack = Stack::new().await;
    let svc = keyed(&stack).await;

    // Given the reading was stored
    assert_eq!(push(&svc, SEED_EXAMPLE).await, code0());
    // When it is sent again, and again with only cgmStatus and a patient field changed
    assert_eq!(push(&svc, SEED_EXAMPLE).await, code0());
    assert_eq!(push(&svc, &seed_with(json!({"cgmStatus": "4", "patientName": "李四"}))).await, code0());
    // Then there is one item, the first, and no conflict
    let items = stack.scan("READINGS_TABLE").await;
    assert_eq!(items.len(), 1);
    assert_eq!(s(&items[0], "cgmStatus"), Some("2"));
    assert!(stack.scan("CONFLICTS_TABLE").await.is_empty());

    // When another testResult arrives under the same testId, twice
    let other = seed_with(json!({"testResult": "7.2"}));
    assert_eq!(push(&svc, &other).await, code0());
    assert_eq!(push(&svc, &other).await, code0());
    // Then the first is kept and the conflict is recorded once, with its raw body
    let items = stack.scan("READINGS_TABLE").await;
    assert_eq!((items.len(), s(&items[0], "testResult")), (1, Some("5.6")));
    let conflicts = stack.scan("CONFLICTS_TABLE").await;
    assert_eq!(conflicts.len(), 1);
    assert_eq!(s(&conflicts[0], "testId"), Some("23434335345"));
    assert_eq!(s(&conflicts[0], "testResult"), Some("7.2"));
    assert_eq!(s(&conflicts[0], "body"), Some(other.as_str()));
    assert_eq!(s(&conflicts[0], "measurementHash").map(str::len), Some(64));
}

#[tokio::test]
async fn a_resend_with_blank_status_fields_is_a_duplicate_not_a_conflict() {
    // Found by the push_body fuzz target: the item leaves blank strings out, so the parser
    // must not keep them either, or the stored measurement never equals a re-send's.
    let stack = Stack::new().await;
    let svc = keyed(&stack).await;
    let body = seed_with(json!({"status": " ", "cgmStatus": ""}));
    for _ in 0..2 {
        assert_eq!(push(&svc, &body).await, code0());
    }
    assert_eq!(stack.scan("READINGS_TABLE").await.len(), 1);
    assert!(stack.scan("CONFLICTS_TABLE").await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_identical_deliveries_store_one_item() {
    let stack = Stack::new().await;
    let svc = std::sync::Arc::new(keyed(&stack).await);

    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let svc = svc.clone();
            tokio::spawn(async move { push(&svc, SEED_EXAMPLE).await })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap(), code0());
    }
    assert_eq!(stack.scan("READINGS_TABLE").await.len(), 1);
    assert!(stack.scan("CONFLICTS_TABLE").await.is_empty());
}

/// Where a body ends up.
#[derive(Debug, PartialEq)]
enum Lands {
    Reading,
    Quarantine,
}

#[tokio::test]
async fn bad_and_odd_inputs_get_the_outcome_design_gives_them() {
    use Lands::*;
    let cases: Vec<(&str, String, Lands)> = vec![
        ("empty body", String::new(), Quarantine),
        ("not JSON", "{not json".into(), Quarantine),
        ("JSON array", "[1,2,3]".into(), Quarantine),
        ("data missing", r#"{"reservedCode":"01"}"#.into(), Quarantine),
        ("data null", r#"{"reservedCode":"01","data":null}"#.into(), Quarantine),
        (
            "unknown reservedCode",
            SEED_EXAMPLE.replace(r#""reservedCode": "01""#, r#""reservedCode": "02""#),
            Quarantine,
        ),
        ("testId missing", seed_without(&["testId"]), Quarantine),
        ("testId empty", seed_with(json!({"testId": ""})), Quarantine),
        ("testResult abc", seed_with(json!({"testId": "r1", "testResult": "abc"})), Quarantine),
        ("testResult empty", seed_with(json!({"testId": "r2", "testResult": ""})), Quarantine),
        ("testResult -1", seed_with(json!({"testId": "r3", "testResult": "-1"})), Quarantine),
        ("testResult 5,6", seed_with(json!({"testId": "r4", "testResult": "5,6"})), Quarantine),
        ("testTime impossible", seed_with(json!({"testId": "t1", "testTime": "2021-13-45 25:61:00"})), Quarantine),
        ("testTime empty", seed_with(json!({"testId": "t2", "testTime": ""})), Quarantine),
        ("testId a number", seed_with(json!({"testId": 987654321012u64})), Reading),
        ("testTime with offset", seed_with(json!({"testId": "t3", "testTime": "2021-11-02T12:33:33+08:00"})), Reading),
        ("serialNo a string", seed_with(json!({"testId": "s1", "serialNo": "12"})), Reading),
        ("low/high numbers", seed_with(json!({"testId": "l1", "low": 3.9, "high": 10})), Reading),
        ("unicode patient", seed_with(json!({"testId": "u1", "patientName": "欧阳娜娜 👩‍⚕️"})), Reading),
        (
            "unknown extra fields",
            seed_with(json!({"testId": "x1", "sensorTemp": 36.6, "firmware": {"v": "2.1"}})),
            Reading,
        ),
    ];

    let stack = Stack::new().await;
    let svc = keyed(&stack).await;
    for (what, body, _) in &cases {
        assert_eq!(push(&svc, body).await, code0(), "{what}");
    }

    let readings = stack.scan("READINGS_TABLE").await;
    let quarantine = stack.scan("QUARANTINE_TABLE").await;
    let want_readings = cases.iter().filter(|c| c.2 == Reading).count();
    let want_quarantined = cases.iter().filter(|c| c.2 == Quarantine).count();
    assert_eq!(readings.len(), want_readings, "readings: {readings:?}");
    assert_eq!(quarantine.len(), want_quarantined);

    let by_id =
        |id: &str| readings.iter().find(|i| s(i, "testId") == Some(id)).unwrap_or_else(|| panic!("{id} stored"));
    assert_eq!(s(by_id("987654321012"), "testId"), Some("987654321012"));
    assert_eq!(n(by_id("t3"), "measuredAt"), Some("1635827613000"));
    assert_eq!(s(by_id("t3"), "testTime"), Some("2021-11-02T12:33:33+08:00"));
    assert_eq!(n(by_id("s1"), "serialNo"), Some("12"));
    assert_eq!((n(by_id("l1"), "low"), n(by_id("l1"), "high")), (Some("3.9"), Some("10")));
    assert_eq!(s(by_id("u1"), "patientName"), Some("欧阳娜娜 👩‍⚕️"));
    let extra: Value = serde_json::from_str(s(by_id("x1"), "extraData").unwrap()).unwrap();
    assert_eq!(extra, json!({"sensorTemp": 36.6, "firmware": {"v": "2.1"}}));

    // Each quarantined body is kept whole, with its reason, under its SHA-256.
    let reasons: Vec<&str> = quarantine.iter().filter_map(|q| s(q, "reason")).collect();
    for want in
        ["body is empty", "body is not JSON", "testResult is not a decimal number", "testTime is not a date-time"]
    {
        assert!(reasons.contains(&want), "{want} in {reasons:?}");
    }
    let not_json = quarantine.iter().find(|q| s(q, "reason") == Some("body is not JSON")).unwrap();
    assert_eq!(not_json.get("body").and_then(|b| b.as_b().ok()).map(|b| b.as_ref()), Some(&b"{not json"[..]));
}

#[tokio::test]
async fn quarantine_collapses_resends_of_one_body() {
    let stack = Stack::new().await;
    let svc = keyed(&stack).await;
    for _ in 0..3 {
        assert_eq!(push(&svc, "{not json").await, code0());
    }
    assert_eq!(stack.scan("QUARANTINE_TABLE").await.len(), 1);
}

#[tokio::test]
async fn a_one_mebibyte_body_is_413_with_a_stub() {
    let stack = Stack::new().await;
    let svc = keyed(&stack).await;
    let big = seed_with(json!({"padding": "x".repeat(1 << 20)}));

    assert_eq!(push(&svc, &big).await, (413, json!({"code": 413, "msg": "body over 64 KiB"})));

    assert!(stack.scan("READINGS_TABLE").await.is_empty());
    let q = stack.scan("QUARANTINE_TABLE").await;
    assert_eq!(q.len(), 1);
    assert_eq!(n(&q[0], "bodyLength"), Some(big.len().to_string().as_str()));
    assert_eq!(q[0].get("truncated"), Some(&AttributeValue::Bool(true)));
    assert_eq!(q[0]["body"].as_b().unwrap().as_ref(), &big.as_bytes()[..4096]);
    let sha = s(&q[0], "bodySha256").unwrap();
    assert_eq!(sha.len(), 64);
}

#[tokio::test]
async fn keys_and_source_addresses_are_enforced() {
    let stack = Stack::new().await;
    let svc = service(&stack, &[("PUSH_KEY", "old-key,new-key"), ("ALLOWED_SOURCE_CIDRS", "203.0.113.0/24")]).await;
    let call = |q: &str, ip: &str| svc.handle(push_request(SEED_EXAMPLE, q, ip));

    assert_eq!(reply_of(&call("key=wrong", SOURCE).await), (401, json!({"code": 401, "msg": "missing or wrong key"})));
    assert_eq!(reply_of(&call("", SOURCE).await).0, 401);
    assert_eq!(
        reply_of(&call("key=old-key", "198.51.100.1").await),
        (403, json!({"code": 403, "msg": "source address not allowed"}))
    );
    assert!(stack.scan("READINGS_TABLE").await.is_empty(), "nothing stored for a rejected push");
    assert!(stack.scan("QUARANTINE_TABLE").await.is_empty());

    assert_eq!(reply_of(&call("key=new-key", SOURCE).await), code0(), "the second rotation key is accepted");
    assert_eq!(reply_of(&call("key=old-key", SOURCE).await), code0(), "and so is the first");
    assert_eq!(stack.scan("READINGS_TABLE").await.len(), 1);
}

#[tokio::test]
async fn inside_lambda_a_missing_key_fails_cold_start() {
    let stack = Stack::new().await;
    let err =
        cgm_push::from_config(&stack.config(&[("AWS_LAMBDA_FUNCTION_NAME", "push")])).await.err().expect("refused");
    assert!(err.to_string().contains("PUSH_KEY_PARAM"), "{err}");
}

#[tokio::test]
async fn inside_lambda_a_plain_or_short_key_fails_cold_start() {
    let stack = Stack::new().await;
    let lambda = ("AWS_LAMBDA_FUNCTION_NAME", "push");
    let long = "k".repeat(40);
    let err = cgm_push::from_config(&stack.config(&[lambda, ("PUSH_KEY", &long)])).await.err().expect("refused");
    assert!(err.to_string().contains("PUSH_KEY") && err.to_string().contains("SSM"), "{err}");
    assert!(!err.to_string().contains(&long), "the message never holds the key: {err}");
    // Outside Lambda (make dev, the tests) a plain key of any length still works.
    assert!(cgm_push::from_config(&stack.config(&[("PUSH_KEY", "short")])).await.is_ok());
}

/// A listener that accepts connections and never answers: a table that hangs.
async fn black_hole() -> String {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((sock, _)) = l.accept().await {
            held.push(sock);
        }
    });
    format!("http://{addr}")
}

#[tokio::test]
async fn unreachable_or_hanging_storage_is_503_well_inside_5_seconds() {
    let stack = Stack::new().await;
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    for endpoint in [closed, black_hole().await] {
        let svc = cgm_push::from_config(&stack.config_at(&endpoint, &[("PUSH_KEY", KEY)])).await.unwrap();
        let started = Instant::now();
        let reply = push(&svc, SEED_EXAMPLE).await;
        let took = started.elapsed();
        assert_eq!(reply, (503, json!({"code": 503, "msg": "storage unavailable, retry later"})), "{endpoint}");
        // Generous against a busy machine: the configured budget is 3 s, Sinocare's 5 s.
        assert!(took < Duration::from_millis(4_500), "{endpoint}: answered after {took:?}");
    }
}

#[tokio::test]
async fn personal_data_and_keys_never_reach_logs_or_replies() {
    const CANARIES: [&str; 6] = [
        "CANARY-IDCARD-4304",
        "CANARY-NAME-张三丰",
        "CANARY-VISIT-77",
        "CANARY-PATIENT-88",
        "CANARY-INSERIAL-99",
        "CANARY-KEY-s3cr3t",
    ];
    let stack = Stack::new().await;
    let svc = service(&stack, &[("PUSH_KEY", CANARIES[5])]).await;
    let body = seed_with(json!({
        "idCard": CANARIES[0], "patientName": CANARIES[1], "visitId": CANARIES[2],
        "patientId": CANARIES[3], "inSerialId": CANARIES[4],
    }));
    let conflicting = seed_with(json!({
        "testResult": "9.9", "idCard": CANARIES[0], "patientName": CANARIES[1], "visitId": CANARIES[2],
        "patientId": CANARIES[3], "inSerialId": CANARIES[4],
    }));
    let unusable = seed_with(json!({"testResult": "LO", "patientName": CANARIES[1], "idCard": CANARIES[0]}));
    let key = format!("key={}", CANARIES[5]);

    let (logs, guard) = capture_logs("trace");
    let mut replies = Vec::new();
    for (b, q) in
        [(&body, &key), (&body, &key), (&conflicting, &key), (&unusable, &key), (&body, &"key=wrong".to_string())]
    {
        replies.push(reply_of(&svc.handle(push_request(b, q, SOURCE)).await));
    }
    let down =
        cgm_push::from_config(&stack.config_at("http://127.0.0.1:9", &[("PUSH_KEY", CANARIES[5])])).await.unwrap();
    replies.push(reply_of(&down.handle(push_request(&body, &key, SOURCE)).await));
    drop(guard);

    let text = logs.text();
    assert!(text.contains(r#""outcome":"stored""#) && text.contains(r#""outcome":"conflict""#), "logs were captured");
    assert!(text.contains(r#""outcome":"quarantined""#) && text.contains(r#""outcome":"unavailable""#));
    let replies = format!("{replies:?}");
    for c in CANARIES {
        assert!(
            !text.contains(c),
            "{c} appeared in the logs: {}",
            text.lines().find(|l| l.contains(c)).unwrap_or_default()
        );
        assert!(!replies.contains(c), "{c} appeared in a reply");
    }
}

#[tokio::test]
async fn one_structured_log_line_per_push() {
    let stack = Stack::new().await;
    let svc = keyed(&stack).await;
    let (logs, guard) = capture_logs("info");
    push(&svc, SEED_EXAMPLE).await;
    push(&svc, SEED_EXAMPLE).await;
    drop(guard);
    let lines: Vec<Value> = logs
        .text()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["message"] == "push")
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["outcome"], "stored");
    assert_eq!(lines[1]["outcome"], "duplicate");
    for l in &lines {
        assert_eq!(l["test_id"], "23434335345");
        assert_eq!(l["device_sn"], "23xxdrt33");
        assert!(l["request_id"].as_str().is_some_and(|r| !r.is_empty()));
        assert!(l["latency_ms"].is_number());
    }
}
