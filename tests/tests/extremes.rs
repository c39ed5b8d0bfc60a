//! No stored number can crash or mislead a route. Extreme values are planted directly in
//! the readings table (data stored before the push route bounded them) and pushed through
//! the push route (which now stores the reading and keeps the out-of-range field as sent),
//! then every read route is called over real HTTP: each answers below 500, and the server
//! is still up at the end.

use aws_sdk_dynamodb::types::AttributeValue;
use cgm_tests::{Item, SEED_EXAMPLE, Stack, seed_with, serve_locally};
use serde_json::{Value, json};

const DEVICE: &str = "SN-EXTREME";
/// 2024-05-01T00:00:00+08:00.
const DAY0: i64 = 1_714_492_800_000;

fn n(v: &str) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_string())
}

/// A stored reading as the push route writes one, with `patch` laid over it.
fn item(test_id: &str, at_ms: i64, patch: &[(&str, AttributeValue)]) -> Item {
    let mut it: Item = [
        ("testId", s(test_id)),
        ("deviceSn", s(DEVICE)),
        ("measuredAt", n(&at_ms.to_string())),
        ("glucoseMmol", n("5.6")),
        ("testResult", s("5.6")),
        ("serialNo", n("7")),
        ("status", s("0")),
        ("valid", AttributeValue::Bool(true)),
        ("increMinute", n("3")),
        ("cgmDay", n("14")),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    for (k, v) in patch {
        it.insert(k.to_string(), v.clone());
    }
    it
}

/// Every extreme a number attribute can hold that DynamoDB accepts.
fn planted() -> Vec<Item> {
    let big = "99999999999999999999999999999999999999"; // 38 digits, DynamoDB's most
    let mut items = vec![
        item("x-incre-2-59", DAY0 + 60_000, &[("increMinute", n("576460752303423488"))]),
        item("x-incre-max", DAY0 + 120_000, &[("increMinute", n(big))]),
        item("x-incre-zero", DAY0 + 180_000, &[("increMinute", n("0"))]),
        item("x-incre-negative", DAY0 + 240_000, &[("increMinute", n("-3"))]),
        item("x-serial-max", DAY0 + 300_000, &[("serialNo", n("18446744073709551615"))]),
        item("x-serial-2-63", DAY0 + 360_000, &[("serialNo", n("9223372036854775808"))]),
        item("x-serial-zero", DAY0 + 420_000, &[("serialNo", n("0"))]),
        item("x-serial-fraction", DAY0 + 480_000, &[("serialNo", n("7.5"))]),
        item("x-glucose-huge", DAY0 + 540_000, &[("glucoseMmol", n("1E+125"))]),
        item("x-glucose-negative", DAY0 + 600_000, &[("glucoseMmol", n("-5"))]),
        item("x-glucose-zero", DAY0 + 660_000, &[("glucoseMmol", n("0"))]),
        item("x-glucose-tiny", DAY0 + 720_000, &[("glucoseMmol", n("1E-130"))]),
        item("x-low-huge", DAY0 + 780_000, &[("low", n("1E+125")), ("high", n("-1E+125"))]),
        item("x-cgmday-huge", DAY0 + 840_000, &[("cgmDay", n(big))]),
        item("x-time-min", i64::MIN, &[]),
        item("x-time-max", i64::MAX, &[]),
        item("x-time-minus-1", -1, &[]),
    ];
    // A run that makes the gap maths stretch: serials far apart, times far apart.
    items.push(item("x-gap-a", DAY0 + 900_000, &[("serialNo", n("1")), ("increMinute", n("60"))]));
    items.push(item("x-gap-b", DAY0 + 960_000, &[("serialNo", n("18446744073709551614")), ("increMinute", n("1"))]));
    items
}

async fn get(http: &reqwest::Client, url: &str) -> (u16, String) {
    let r = http.get(url).send().await.unwrap_or_else(|e| panic!("GET {url}: the server is gone: {e}"));
    (r.status().as_u16(), r.text().await.unwrap_or_default())
}

#[tokio::test]
async fn every_read_route_answers_extreme_stored_numbers_below_500() {
    // Given extremes planted in the table and pushed through the push route
    let stack = Stack::new().await;
    let table = stack.table("READINGS_TABLE").to_string();
    for it in planted() {
        stack.client.put_item().table_name(&table).set_item(Some(it)).send().await.expect("planting an item");
    }
    let base = serve_locally(&stack.config(&[])).await;
    let http = reqwest::Client::new();
    let local = |minute: u32| format!("2024-05-01 00:{minute:02}:00");
    let pushes = [
        json!({"testId": "p-incre", "deviceSn": DEVICE, "testTime": local(17), "increMinute": 576_460_752_303_423_488u64}),
        json!({"testId": "p-serial", "deviceSn": DEVICE, "testTime": local(18), "serialNo": u64::MAX}),
        json!({"testId": "p-cgmday", "deviceSn": DEVICE, "testTime": local(19), "cgmDay": 1_000_000}),
        json!({"testId": "p-incre-zero", "deviceSn": DEVICE, "testTime": local(20), "increMinute": 0, "status": "0"}),
    ];
    for p in &pushes {
        let r = http.post(format!("{base}/sinocare/cgm")).body(seed_with(p.clone())).send().await.expect("push");
        assert_eq!(r.status().as_u16(), 200);
        assert_eq!(r.json::<Value>().await.unwrap(), json!({"code": 0, "msg": ""}));
    }
    let stored = stack.scan("READINGS_TABLE").await;
    for p in &pushes {
        let id = p["testId"].as_str().unwrap();
        let it = stored.iter().find(|i| i.get("testId").and_then(|v| v.as_s().ok()).map(String::as_str) == Some(id));
        let it = it.unwrap_or_else(|| panic!("{id}: a reading whose glucose and time are valid is stored"));
        assert!(it.contains_key("outOfRange"), "{id}: the out-of-range field is kept as sent: {it:?}");
    }
    let created: Value = http
        .post(format!("{base}/devices/{DEVICE}/follow-tokens"))
        .send()
        .await
        .expect("token")
        .json()
        .await
        .expect("token JSON");
    let token = created["token"].as_str().expect("a token").to_string();

    // When every read route is called, over the day and over everything
    let d = format!("{base}/devices/{DEVICE}");
    let urls = [
        format!("{d}/readings"),
        format!("{d}/readings?include_invalid=true&limit=5000"),
        format!("{d}/readings?format=csv&include_invalid=true"),
        format!("{d}/readings?from=0&to=9223372036854775807"),
        format!("{d}/gaps?from=2024-04-30T00:00:00Z&to=2024-05-02T00:00:00Z"),
        format!("{d}/gaps?from=1714400000000&to=1714500000000&limit=1"),
        format!("{d}/summary?from=2024-04-30T00:00:00Z&to=2024-05-02T00:00:00Z"),
        format!("{d}/summary"),
        format!("{d}/chart.svg?date=2024-05-01"),
        format!("{d}/chart.svg?date=1970-01-01"),
        format!("{d}/chart.svg?date=9999-12-31"),
        format!("{base}/api/v1/entries.json?token={token}&count=1000"),
        format!("{base}/api/v1/entries/sgv.json?token={token}&find%5Bdate%5D%5B%24gte%5D=0"),
    ];
    // Then each answers below 500, and the server is still there
    for url in &urls {
        let (status, body) = get(&http, url).await;
        assert!(status < 500, "{url} answered {status}: {body}");
    }
    let (status, _) = get(&http, &format!("{d}/readings?limit=1")).await;
    assert_eq!(status, 200, "the server is still up");
    let _ = SEED_EXAMPLE;
}
