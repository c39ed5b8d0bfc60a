//! The read side against DynamoDB Local, with data pushed through the push route: readings
//! paged to the end, CSV, gaps, the consensus metrics, the Nightscout feed and its tokens,
//! the daily chart, what never appears in a reply or a log line, and every refusal.

use cgm_edge::HttpService;
use cgm_push::PushService;
use cgm_read::ReadService;
use cgm_shared::store::push::dynamodb::DynamoStore;
use cgm_shared::store::reads::dynamodb::DynamoReadStore;
use cgm_tests::*;
use lambda_http::http::HeaderValue;
use lambda_http::{Body, Request, Response};
use serde_json::{Value, json};
use sha1::{Digest, Sha1};
use sha2::Sha256;
use std::collections::HashSet;
use std::sync::Arc;

const SOURCE: &str = "203.0.113.10";
/// 2021-11-02 00:00:00 in China Standard Time (the default SOURCE_TIMEZONE).
const T0: i64 = 1_635_782_400_000;
const MIN: i64 = 60_000;
const DAY: i64 = 86_400_000;

/// Personal values pushed with every reading; no read reply may hold one.
const CANARIES: [(&str, &str); 5] = [
    ("idCard", "CANARY-IDCARD-4304"),
    ("patientName", "CANARY-NAME-张三丰"),
    ("visitId", "CANARY-VISIT-77"),
    ("patientId", "CANARY-PATIENT-88"),
    ("inSerialId", "CANARY-INSERIAL-99"),
];

struct Env {
    stack: Stack,
    push: Arc<PushService<DynamoStore>>,
    read: ReadService<DynamoReadStore>,
    nightscout: cgm_nightscout::NightscoutService<DynamoReadStore>,
}

impl Env {
    async fn new() -> Self {
        let stack = Stack::new().await;
        let cfg = stack.config(&[]);
        let push = Arc::new(cgm_push::from_config(&cfg).await.expect("push service"));
        let read = cgm_read::from_config(&cfg).await;
        let nightscout = cgm_nightscout::from_config(&cfg).await.expect("nightscout service");
        Env { stack, push, read, nightscout }
    }

    /// Pushes readings through the push route, a few at a time, each answered code 0.
    async fn push_all(&self, bodies: Vec<String>) {
        for chunk in bodies.chunks(16) {
            let mut set = tokio::task::JoinSet::new();
            for body in chunk {
                let (push, body) = (self.push.clone(), body.clone());
                set.spawn(async move { reply_of(&push.handle(push_request(&body, "", SOURCE)).await) });
            }
            while let Some(r) = set.join_next().await {
                assert_eq!(r.unwrap(), (200, json!({"code": 0, "msg": ""})));
            }
        }
    }

    /// The handler's future is boxed: `#[tokio::test]` keeps the test's own future on the
    /// test thread's 2 MiB stack, and debug builds of the SDK's futures are large.
    /// The Nightscout routes (`/api/...`) go to their own function, as in the stack.
    async fn call(&self, req: Request) -> Response<Body> {
        if req.uri().path().starts_with("/api/") {
            return Box::pin(self.nightscout.handle(req)).await;
        }
        Box::pin(self.read.handle(req)).await
    }

    async fn get(&self, route: &str, device: &str, query: &str) -> Response<Body> {
        let path = route.replace("{device_sn}", device);
        self.call(api_request("GET", route, &path, &[("device_sn", device)], query, None)).await
    }

    async fn get_json(&self, route: &str, device: &str, query: &str) -> (u16, Value) {
        reply_of(&self.get(route, device, query).await)
    }

    async fn entries(&self, route: &str, query: &str, api_secret: Option<&str>) -> (u16, Value) {
        let mut req = api_request("GET", route, route, &[], query, None);
        if let Some(s) = api_secret {
            req.headers_mut().insert("api-secret", HeaderValue::from_str(s).unwrap());
        }
        reply_of(&self.call(req).await)
    }

    async fn create_token(&self, device: &str) -> Value {
        let route = "/devices/{device_sn}/follow-tokens";
        let path = route.replace("{device_sn}", device);
        let (status, body) =
            reply_of(&self.call(api_request("POST", route, &path, &[("device_sn", device)], "", None)).await);
        assert_eq!(status, 201, "{body}");
        body
    }

    async fn revoke(&self, device: &str, token_id: &str) -> (u16, Value) {
        let route = "/devices/{device_sn}/follow-tokens/{token_id}";
        let path = format!("/devices/{device}/follow-tokens/{token_id}");
        let params = [("device_sn", device), ("token_id", token_id)];
        reply_of(&self.call(api_request("DELETE", route, &path, &params, "", None)).await)
    }
}

/// A reading of `device` with serial number `serial`, `minutes` after T0 (local time).
fn reading(device: &str, serial: u64, minutes: i64, mmol: &str, valid: bool) -> String {
    let local = chrono::DateTime::from_timestamp_millis(T0 + minutes * MIN).unwrap() + chrono::Duration::hours(8);
    let mut patch = json!({
        "testId": format!("{device}-{serial:06}"),
        "deviceSn": device,
        "serialNo": serial,
        "testTime": local.format("%Y-%m-%d %H:%M:%S").to_string(),
        "testResult": mmol,
        "status": if valid { "0" } else { "1" },
        "increMinute": 3,
        "low": 3.9,
        "high": 10.0,
    });
    for (k, v) in CANARIES {
        patch[k] = json!(v);
    }
    seed_with(patch)
}

/// Serial numbers `serials`, every 3 minutes from T0 (serial 1 at T0), `mmol` each.
fn series(device: &str, serials: impl IntoIterator<Item = u64>, valid: impl Fn(u64) -> bool) -> Vec<String> {
    serials
        .into_iter()
        .map(|s| reading(device, s, (s as i64 - 1) * 3, &format!("{:.1}", 5.0 + (s % 10) as f64 / 10.0), valid(s)))
        .collect()
}

fn body_text(resp: &Response<Body>) -> String {
    String::from_utf8_lossy(resp.body()).into_owned()
}

fn header<'a>(resp: &'a Response<Body>, name: &str) -> Option<&'a str> {
    resp.headers().get(name).and_then(|v| v.to_str().ok())
}

const READINGS: &str = "/devices/{device_sn}/readings";
const GAPS: &str = "/devices/{device_sn}/gaps";
const SUMMARY: &str = "/devices/{device_sn}/summary";
const CHART: &str = "/devices/{device_sn}/chart.svg";
const ENTRIES: &str = "/api/v1/entries.json";
const SGV: &str = "/api/v1/entries/sgv.json";

#[tokio::test]
async fn readings_page_to_the_end_with_each_reading_exactly_once() {
    let env = Env::new().await;
    // Given 130 readings, the first five from the sensor's warm-up, and another device's
    env.push_all(series("SN-A", 1..=130, |s| s > 5)).await;
    env.push_all(series("SN-B", 1..=3, |_| true)).await;

    // When the valid ones are paged 17 at a time
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let q = match &cursor {
            Some(c) => format!("limit=17&cursor={c}"),
            None => "limit=17".to_string(),
        };
        let (status, body) = env.get_json(READINGS, "SN-A", &q).await;
        assert_eq!(status, 200, "{body}");
        pages += 1;
        let page = body["readings"].as_array().unwrap();
        assert!(page.len() <= 17);
        seen.extend(page.iter().cloned());
        match body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    // Then each valid reading comes once, in time order, and the pages are full but the last
    assert_eq!(pages, 8, "125 readings in pages of 17");
    let ids: Vec<&str> = seen.iter().map(|r| r["test_id"].as_str().unwrap()).collect();
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), 125);
    assert_eq!(ids.first(), Some(&"SN-A-000006"));
    assert!(seen.windows(2).all(|w| w[0]["measured_at"].as_i64() < w[1]["measured_at"].as_i64()));
    assert!(seen.iter().all(|r| r["valid"] == true && r["status"] == "0"));

    // And a reading carries its UTC instant, its local time, the value and its ids
    let r6 = &seen[0];
    assert_eq!(r6["measured_at"], T0 + 15 * MIN);
    assert_eq!(r6["measured_at_utc"], "2021-11-01T16:15:00.000Z");
    assert_eq!(r6["local_time"], "2021-11-02T00:15:00+08:00");
    assert_eq!(r6["glucose_mmol"], 5.6);
    assert_eq!(r6["serial_no"], 6);

    // With include_invalid, the warm-up readings are there too; the default limit holds all
    let (_, all) = env.get_json(READINGS, "SN-A", "include_invalid=true").await;
    assert_eq!(all["readings"].as_array().unwrap().len(), 130);
    assert_eq!(all["next_cursor"], Value::Null);
    assert_eq!(all["readings"][0]["valid"], false);
    assert_eq!(all["readings"][0]["status"], "1");

    // A range in ISO 8601 with an offset (escaped +) and in ms, both ends included
    let q = format!("from=2021-11-02T01:00:00%2B08:00&to={}", T0 + 90 * MIN);
    let (_, ranged) = env.get_json(READINGS, "SN-A", &q).await;
    let serials: Vec<i64> =
        ranged["readings"].as_array().unwrap().iter().map(|r| r["serial_no"].as_i64().unwrap()).collect();
    assert_eq!(serials, (21..=31).collect::<Vec<_>>());
}

#[tokio::test]
async fn csv_by_format_or_accept_header_with_the_cursor_in_a_header() {
    let env = Env::new().await;
    env.push_all(series("SN-C", 1..=5, |_| true)).await;

    let resp = env.get(READINGS, "SN-C", "format=csv&limit=2").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "content-type"), Some("text/csv; charset=utf-8"));
    let text = body_text(&resp);
    let lines: Vec<&str> = text.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert_eq!(
        lines[0],
        "device_sn,test_id,serial_no,measured_at,measured_at_utc,local_time,glucose_mmol,status,valid"
    );
    assert_eq!(
        lines[1],
        "SN-C,SN-C-000001,1,1635782400000,2021-11-01T16:00:00.000Z,2021-11-02T00:00:00+08:00,5.1,0,true"
    );
    assert_eq!(lines.len(), 3);
    let next = header(&resp, "x-next-cursor").expect("a cursor while more remain").to_string();
    let rest = env.get(READINGS, "SN-C", &format!("format=csv&limit=2&cursor={next}")).await;
    assert!(body_text(&rest).contains("SN-C-000003"));

    let mut req = api_request("GET", READINGS, "/devices/SN-C/readings", &[("device_sn", "SN-C")], "", None);
    req.headers_mut().insert("accept", HeaderValue::from_static("text/csv"));
    let resp = env.call(req).await;
    assert_eq!(header(&resp, "content-type"), Some("text/csv; charset=utf-8"));
    assert_eq!(body_text(&resp).split("\r\n").filter(|l| !l.is_empty()).count(), 6);
    assert_eq!(header(&resp, "x-next-cursor"), None);
}

#[tokio::test]
async fn gaps_show_the_missing_serial_numbers_and_when_they_were_due() {
    let env = Env::new().await;
    // Serial 1..=20 every 3 minutes, 8, 9 and 10 lost.
    env.push_all(series("SN-G", (1..=20).filter(|s| !(8..=10).contains(s)), |_| true)).await;

    let q = format!("from={T0}&to={}", T0 + 57 * MIN);
    let (status, body) = env.get_json(GAPS, "SN-G", &q).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["expected"].as_u64(), body["received"].as_u64(), body["missing"].as_u64()),
        (Some(20), Some(17), Some(3))
    );
    assert_eq!(body["gaps"].as_array().unwrap().len(), 1);
    let g = &body["gaps"][0];
    assert_eq!(
        (g["first_serial_no"].as_u64(), g["last_serial_no"].as_u64(), g["missing"].as_u64()),
        (Some(8), Some(10), Some(3))
    );
    // Reading 7 was at 00:18 local; 8 was due at 00:21 and 10 at 00:27.
    assert_eq!(g["expected_from"], T0 + 21 * MIN);
    assert_eq!(g["expected_from_local"], "2021-11-02T00:21:00+08:00");
    assert_eq!(g["expected_to_local"], "2021-11-02T00:27:00+08:00");
    assert_eq!(g["incre_minute"], 3);
    assert_eq!((g["after"]["serial_no"].as_u64(), g["before"]["serial_no"].as_u64()), (Some(7), Some(11)));
    assert_eq!(body["next_cursor"], Value::Null);

    // A period starting inside the hole still sees it, anchored on reading 7 outside it.
    let (_, inside) = env.get_json(GAPS, "SN-G", &format!("from={}&to={}", T0 + 24 * MIN, T0 + 57 * MIN)).await;
    assert_eq!((inside["gaps"][0]["first_serial_no"].as_u64(), inside["missing"].as_u64()), (Some(9), Some(2)));
}

#[tokio::test]
async fn gaps_page_with_a_cursor() {
    let env = Env::new().await;
    // Every third serial lost: holes at 3, 6, 9, 12, 15.
    env.push_all(series("SN-H", (1..=16).filter(|s| s % 3 != 0), |_| true)).await;
    let range = format!("from={T0}&to={}", T0 + 60 * MIN);
    let mut firsts = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let q = match &cursor {
            Some(c) => format!("{range}&limit=2&cursor={c}"),
            None => format!("{range}&limit=2"),
        };
        let (status, body) = env.get_json(GAPS, "SN-H", &q).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["missing"], 5, "totals on every page");
        firsts.extend(body["gaps"].as_array().unwrap().iter().map(|g| g["first_serial_no"].as_u64().unwrap()));
        match body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(firsts, vec![3, 6, 9, 12, 15]);
}

#[tokio::test]
async fn summary_matches_the_hand_computed_metrics() {
    let env = Env::new().await;
    // The values of metrics.rs's every_band_and_edge_by_hand, plus two warm-up readings that
    // must not count:
    //   mean 9.0 mmol/L = 162.144 mg/dL → 162.1; GMI 3.31 + 0.02392 × 162.144 = 7.188 → 7.2 %
    //   sample SD 6.264893 → 6.26; CV 69.61 → 69.6 %
    //   bands 10 / 20 / 30 / 20 / 20 %
    //   the local day 2021-11-02 at 3 minutes holds 480 readings: 10 / 480 = 2.083 → 2.1 %
    let values = ["2.9", "3.0", "3.8", "3.9", "10.0", "10.1", "13.9", "14.0", "22.0", "6.4"];
    let mut bodies: Vec<String> =
        values.iter().enumerate().map(|(i, v)| reading("SN-S", i as u64 + 3, (i as i64 + 2) * 3, v, true)).collect();
    bodies.push(reading("SN-S", 1, 0, "1.5", false));
    bodies.push(reading("SN-S", 2, 3, "30.0", false));
    env.push_all(bodies).await;

    let q = format!("from=2021-11-02T00:00:00%2B08:00&to={}", T0 + DAY - 1);
    let (status, s) = env.get_json(SUMMARY, "SN-S", &q).await;
    assert_eq!(status, 200, "{s}");
    assert_eq!(s["readings"], 10);
    assert_eq!(s["invalid_readings_excluded"], 2);
    assert_eq!(s["expected_readings"], 480);
    assert_eq!(s["capture_percent"], 2.1);
    assert_eq!(s["mean_mmol"], 9.0);
    assert_eq!(s["mean_mg_dl"], 162.1);
    assert_eq!(s["gmi_percent"], 7.2);
    assert_eq!(s["sd_mmol"], 6.26);
    assert_eq!(s["cv_percent"], 69.6);
    assert_eq!(
        s["time_in_ranges_percent"],
        json!({
            "very_low_below_3_0": 10.0,
            "low_3_0_to_3_9": 20.0,
            "in_range_3_9_to_10_0": 30.0,
            "high_10_0_to_13_9": 20.0,
            "very_high_above_13_9": 20.0,
        })
    );
    assert_eq!(s["from_local"], "2021-11-02T00:00:00+08:00");

    // A device with nothing in the range: zero readings, no metrics.
    let (status, empty) = env.get_json(SUMMARY, "SN-NONE", &q).await;
    assert_eq!(status, 200);
    assert_eq!((empty["readings"].as_u64(), empty["mean_mmol"].clone()), (Some(0), Value::Null));
}

/// Nightscout's documented entry schema (the fields a follower relies on) as
/// (key, JSON type); `direction` must also be one of Nightscout's names.
const ENTRY_SCHEMA: &str = r#"[
  ["type", "string"], ["date", "number"], ["dateString", "string"],
  ["sgv", "number"], ["direction", "string"], ["device", "string"]
]"#;
const DIRECTIONS: [&str; 8] =
    ["DoubleUp", "SingleUp", "FortyFiveUp", "Flat", "FortyFiveDown", "SingleDown", "DoubleDown", "NONE"];

fn assert_entry_schema(e: &Value) {
    let schema: Vec<(String, String)> = serde_json::from_str(ENTRY_SCHEMA).unwrap();
    for (key, ty) in schema {
        let v = &e[&key];
        let ok = match ty.as_str() {
            "string" => v.is_string(),
            "number" => v.is_number(),
            _ => false,
        };
        assert!(ok, "{key} should be a {ty} in {e}");
    }
    assert_eq!(e["type"], "sgv");
    assert!(DIRECTIONS.contains(&e["direction"].as_str().unwrap()), "{e}");
    assert!(e["sgv"].is_i64(), "sgv is a whole number of mg/dL");
}

fn sha1_hex(s: &str) -> String {
    hex::encode(Sha1::digest(s.as_bytes()))
}

#[tokio::test]
async fn nightscout_feed_with_token_api_secret_count_and_find() {
    let env = Env::new().await;
    // 20 readings 3 minutes apart rising by 0.1 mmol/L (0.6 mg/dL/min: Flat), the last
    // jumping by 0.6 (3.6 mg/dL/min: DoubleUp). The first two are warm-up readings.
    let mut bodies: Vec<String> = (1..=19)
        .map(|s| reading("SN-N", s, (s as i64 - 1) * 3, &format!("{:.1}", 5.0 + s as f64 / 10.0), s > 2))
        .collect();
    bodies.push(reading("SN-N", 20, 57, "7.5", true));
    env.push_all(bodies).await;
    env.push_all(series("SN-OTHER", 1..=3, |_| true)).await;

    let created = env.create_token("SN-N").await;
    assert_eq!(created["device_sn"], "SN-N");
    let token = created["token"].as_str().unwrap().to_string();
    let token_id = created["token_id"].as_str().unwrap().to_string();
    assert_eq!(token.len(), 64);

    // ?token=: the latest 10, newest first, in Nightscout's shape
    let (status, entries) = env.entries(ENTRIES, &format!("token={token}"), None).await;
    assert_eq!(status, 200, "{entries}");
    let list = entries.as_array().unwrap();
    assert_eq!(list.len(), 10);
    list.iter().for_each(assert_entry_schema);
    assert_eq!(list[0]["_id"], "SN-N-000020");
    assert_eq!(list[0]["sgv"], 135, "7.5 × 18.016 = 135.12");
    assert_eq!(list[0]["date"], T0 + 57 * MIN);
    assert_eq!(list[0]["dateString"], "2021-11-01T16:57:00.000Z");
    assert_eq!(list[0]["device"], "iCan SN-N");
    assert_eq!(list[0]["direction"], "DoubleUp");
    assert_eq!(list[1]["direction"], "Flat");
    assert!(list.windows(2).all(|w| w[0]["date"].as_i64() > w[1]["date"].as_i64()));

    // count and find[date][$gte] (as clients send it, percent-encoded)
    let (_, three) = env.entries(SGV, &format!("token={token}&count=3"), None).await;
    assert_eq!(three.as_array().unwrap().len(), 3);
    let since = T0 + 45 * MIN; // reading 16
    let q = format!("token={token}&find%5Bdate%5D%5B%24gte%5D={since}&count=100");
    let (_, recent) = env.entries(ENTRIES, &q, None).await;
    let recent = recent.as_array().unwrap();
    assert_eq!(
        recent.iter().map(|e| e["_id"].as_str().unwrap()).collect::<Vec<_>>(),
        ["SN-N-000020", "SN-N-000019", "SN-N-000018", "SN-N-000017", "SN-N-000016"]
    );
    assert_eq!(recent[4]["direction"], "Flat", "the oldest entry's arrow uses the reading before the period");
    let (_, all) = env.entries(ENTRIES, &format!("token={token}&count=1000"), None).await;
    assert_eq!(all.as_array().unwrap().len(), 18, "warm-up readings are not served");
    assert_eq!(all[17]["direction"], "NONE", "the first valid reading has no valid one before it");

    // api-secret: the SHA-1 hex of the token, as Nightscout clients send it, either case
    let secret = sha1_hex(&token);
    assert_eq!(env.entries(ENTRIES, "count=1", Some(&secret)).await.0, 200);
    let (status, upper) = env.entries(SGV, "count=1", Some(&secret.to_uppercase())).await;
    assert_eq!((status, upper[0]["_id"].as_str()), (200, Some("SN-N-000020")));

    // Wrong, missing, another device's: Nightscout's 401
    let unauthorized = (401, json!({"status": 401, "message": "Unauthorized", "description": "Invalid/Missing"}));
    assert_eq!(env.entries(ENTRIES, &format!("token={}", "0".repeat(64)), None).await, unauthorized);
    assert_eq!(env.entries(ENTRIES, "token=not-a-token", None).await, unauthorized);
    assert_eq!(env.entries(ENTRIES, "", None).await, unauthorized);
    assert_eq!(env.entries(ENTRIES, "", Some(&sha1_hex("guess"))).await, unauthorized);
    assert_eq!(env.revoke("SN-OTHER", &token_id).await.0, 404, "a token is revoked through its own device");

    // Revoked: both ways in are closed at once
    let (status, revoked) = env.revoke("SN-N", &token_id).await;
    assert_eq!((status, revoked["revoked"].as_bool()), (200, Some(true)));
    assert_eq!(env.entries(ENTRIES, &format!("token={token}"), None).await, unauthorized);
    assert_eq!(env.entries(SGV, "", Some(&secret)).await, unauthorized);
    assert_eq!(env.revoke("SN-N", &token_id).await.0, 404);

    // Stored hashed: neither the token nor anything a client sends is in the table
    let stored = env.stack.scan("FOLLOW_TOKENS_TABLE").await;
    assert!(stored.is_empty(), "revoked tokens are deleted");
    let second = env.create_token("SN-N").await;
    let stored = env.stack.scan("FOLLOW_TOKENS_TABLE").await;
    assert_eq!(stored.len(), 1);
    let t2 = second["token"].as_str().unwrap();
    let dump = format!("{stored:?}");
    for sent in [t2.to_string(), sha1_hex(t2), hex::encode(Sha256::digest(t2.as_bytes()))] {
        assert!(!dump.contains(&sent), "the table holds what a client presents (or its plain SHA-256)");
    }
    let sha256_of_sha1 = hex::encode(Sha256::digest(sha1_hex(t2).as_bytes()));
    assert_eq!(s(&stored[0], "tokenHash"), Some(sha256_of_sha1.as_str()));
    assert!(s(&stored[0], "sha1Hash").is_none());
}

#[tokio::test]
async fn the_daily_chart_shows_band_runs_invalid_markers_and_axes() {
    let env = Env::new().await;
    // 06:00–12:00 every 3 minutes (serial 1 at 06:00): warm-up 1..=5, serials 41..=60 lost
    // (an hour), so the line has two runs: 6..=40 and 61..=120. One reading the day before
    // and one the day after are outside the chart.
    let at = |s: u64| 6 * 60 + (s as i64 - 1) * 3;
    let mut bodies: Vec<String> = (1..=120)
        .filter(|s| !(41..=60).contains(s))
        .map(|s| reading("SN-CH", s, at(s), if s % 2 == 0 { "6.2" } else { "7.4" }, s > 5))
        .collect();
    bodies.push(reading("SN-CH", 500, -3, "9.0", true));
    bodies.push(reading("SN-CH", 501, 24 * 60, "9.0", true));
    env.push_all(bodies).await;

    let resp = env.get(CHART, "SN-CH", "date=2021-11-02").await;
    assert_eq!(resp.status(), 200, "{}", body_text(&resp));
    assert_eq!(header(&resp, "content-type"), Some("image/svg+xml"));
    let svg = body_text(&resp);
    let doc = roxmltree::Document::parse(&svg).expect("the chart is well-formed XML");
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    let with_class = |c: &str| doc.descendants().filter(|n| n.attribute("class") == Some(c)).collect::<Vec<_>>();

    // The 3.9–10.0 band: y from 10.0 down to 3.9 on a 0–22 axis 550 px tall, bottom at 620.
    let band = with_class("target-band");
    assert_eq!(band.len(), 1);
    assert_eq!(band[0].tag_name().name(), "rect");
    let num = |n: &roxmltree::Node, a: &str| n.attribute(a).unwrap().parse::<f64>().unwrap();
    assert!((num(&band[0], "y") - (620.0 - 10.0 / 22.0 * 550.0)).abs() < 0.1);
    assert!((num(&band[0], "height") - (10.0 - 3.9) / 22.0 * 550.0).abs() < 0.1);

    // One polyline per continuous run, with every valid reading of the day on it.
    let runs = with_class("glucose-run");
    assert_eq!(runs.len(), 2, "the lost hour breaks the line");
    let points: Vec<usize> = runs.iter().map(|r| r.attribute("points").unwrap().split(' ').count()).collect();
    assert_eq!(points, vec![35, 60]);
    assert_eq!(with_class("invalid-reading").len(), 5);
    assert_eq!((with_class("threshold-low").len(), with_class("threshold-high").len()), (1, 1));

    // Axes: local hours 00:00–24:00 and mmol/L 0–22.
    let texts = |c: &str| with_class(c).iter().filter_map(|n| n.text()).map(str::to_string).collect::<Vec<_>>();
    let x = texts("x-label");
    assert_eq!(x.first().map(String::as_str), Some("00:00"));
    assert_eq!(x.last().map(String::as_str), Some("24:00"));
    assert!(x.contains(&"12:00".to_string()));
    let y = texts("y-label");
    assert_eq!((y.first().map(String::as_str), y.last().map(String::as_str)), (Some("0"), Some("22")));
    let titles = texts("axis-title");
    assert!(titles.iter().any(|t| t == "mmol/L"), "{titles:?}");
    assert!(titles.iter().any(|t| t.contains("Local time (+08:00)")), "{titles:?}");
}

#[tokio::test]
async fn no_personal_field_in_any_read_reply_and_no_token_in_any_log() {
    let env = Env::new().await;
    env.push_all(series("SN-P", (1..=12).filter(|s| *s != 6), |s| s > 1)).await;
    let (logs, guard) = capture_logs("trace");
    let created = env.create_token("SN-P").await;
    let token = created["token"].as_str().unwrap().to_string();
    let range = format!("from={T0}&to={}", T0 + DAY - 1);

    let mut replies: Vec<String> = Vec::new();
    for (route, q) in [
        (READINGS, "include_invalid=true".to_string()),
        (READINGS, "include_invalid=true&format=csv".to_string()),
        (GAPS, range.clone()),
        (SUMMARY, range.clone()),
        (CHART, "date=2021-11-02".to_string()),
        (READINGS, "limit=0".to_string()),
    ] {
        replies.push(body_text(&env.get(route, "SN-P", &q).await));
    }
    for (route, q, secret) in [
        (ENTRIES, format!("token={token}&count=1000"), None),
        (SGV, String::new(), Some(sha1_hex(&token))),
        (ENTRIES, format!("token={}", "f".repeat(64)), None),
    ] {
        replies.push(env.entries(route, &q, secret.as_deref()).await.1.to_string());
    }
    drop(guard);

    assert!(replies[0].contains("SN-P-000012") && replies[6].contains("SN-P-000012"), "the replies hold data");
    for reply in &replies {
        for (field, canary) in CANARIES {
            assert!(!reply.contains(canary), "{field}'s value in a reply: {reply}");
            assert!(!reply.contains(field), "{field} named in a reply: {reply}");
        }
        assert!(!reply.contains("customerName") && !reply.contains("测试医院"));
    }
    let text = logs.text();
    assert!(text.contains(r#""message":"read""#), "logs were captured");
    assert!(text.contains(created["token_id"].as_str().unwrap()), "the token id is logged, for audit");
    for secret in [token.clone(), sha1_hex(&token), hex::encode(sha2::Sha256::digest(token.as_bytes()))] {
        assert!(!text.contains(&secret), "a token or its hash reached the logs");
    }
    for (_, canary) in CANARIES {
        assert!(!text.contains(canary), "personal data reached the logs");
    }
}

#[tokio::test]
async fn bad_input_is_a_400_that_names_the_problem() {
    let env = Env::new().await;
    env.push_all(series("SN-X", 1..=3, |_| true)).await;
    let token = env.create_token("SN-X").await["token"].as_str().unwrap().to_string();
    let (_, first) = env.get_json(READINGS, "SN-X", "limit=1").await;
    let cursor = first["next_cursor"].as_str().unwrap().to_string();

    let cases: Vec<(&str, String, &str)> = vec![
        (READINGS, "from=yesterday".into(), "from is not a time"),
        (READINGS, "from=2021-11-02T00:00:00".into(), "needs an offset"),
        (READINGS, "to=-5".into(), "must not be negative"),
        (READINGS, format!("from={}&to={T0}", T0 + 1), "from is after to"),
        (READINGS, "limit=0".into(), "limit must be"),
        (READINGS, "limit=5001".into(), "limit must be"),
        (READINGS, "limit=ten".into(), "limit must be"),
        (READINGS, "cursor=%21%21%21".into(), "cursor is malformed"),
        (READINGS, "cursor=bm90LWEtY3Vyc29y".into(), "cursor is malformed"),
        (READINGS, format!("cursor={cursor}&include_invalid=true"), "cursor belongs to a different query"),
        (READINGS, "include_invalid=maybe".into(), "include_invalid must be"),
        (READINGS, "format=xml".into(), "format must be"),
        (GAPS, format!("from={T0}&to={}", T0 + 91 * DAY), "longer than 90 days"),
        (GAPS, "cursor=junk".into(), "cursor is malformed"),
        (GAPS, "limit=99999".into(), "limit must be"),
        (SUMMARY, "to=noon".into(), "to is not a time"),
        (SUMMARY, format!("from={}&to={T0}", T0 + 1), "from is after to"),
        (CHART, "date=2021-13-01".into(), "date must be"),
        (CHART, "date=02/11/2021".into(), "date must be"),
    ];
    for (route, q, want) in cases {
        let (status, body) = env.get_json(route, "SN-X", &q).await;
        assert_eq!(status, 400, "{route}?{q}: {body}");
        assert_eq!(body["status"], 400);
        let msg = body["message"].as_str().unwrap();
        assert!(msg.contains(want), "{route}?{q}: {msg}");
    }
    for (q, want) in [
        (format!("token={token}&count=-1"), "count must be"),
        (format!("token={token}&count=many"), "count must be"),
        (format!("token={token}&find%5Bdate%5D%5B%24gte%5D=soon"), "find[dateString]"),
        (format!("token={token}&find%5Bnoise%5D=1"), "not noise"),
        (format!("token={token}&find%5Bdate%5D%5B%24in%5D=1"), "$in"),
        (format!("token={token}&sort=date"), "unknown query parameter"),
    ] {
        let (status, body) = env.entries(ENTRIES, &q, None).await;
        assert_eq!(status, 400, "{q}: {body}");
        let msg = body["message"].as_str().unwrap();
        assert!(msg.contains(want) && !msg.contains(&token), "{msg}");
    }
}

#[tokio::test]
async fn every_read_route_is_served_locally_over_http() {
    use cgm_local::server::{self, Router};
    use cgm_local::template::Template;

    let env = Env::new().await;
    env.push_all(series("SN-L", 1..=4, |_| true)).await;
    let handlers = cgm_local::handlers(&env.stack.config(&[])).await.unwrap();
    let router = Router::new(Template::load_default().unwrap().routes(), &handlers).expect("every route has a handler");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(server::serve(listener, Arc::new(router)));
    let http = reqwest::Client::new();

    let created: Value =
        http.post(format!("{base}/devices/SN-L/follow-tokens")).send().await.unwrap().json().await.unwrap();
    let (token, token_id) = (created["token"].as_str().unwrap(), created["token_id"].as_str().unwrap());
    for (path, status, content_type) in [
        ("/devices/SN-L/readings?limit=2".to_string(), 200, "application/json"),
        ("/devices/SN-L/readings?format=csv".to_string(), 200, "text/csv; charset=utf-8"),
        (format!("/devices/SN-L/gaps?from={T0}&to={}", T0 + DAY), 200, "application/json"),
        (format!("/devices/SN-L/summary?from={T0}&to={}", T0 + DAY), 200, "application/json"),
        ("/devices/SN-L/chart.svg?date=2021-11-02".to_string(), 200, "image/svg+xml"),
        (format!("/api/v1/entries.json?token={token}"), 200, "application/json"),
        (format!("/api/v1/entries/sgv.json?token={token}&find[date][$gte]={T0}"), 200, "application/json"),
        ("/api/v1/entries.json".to_string(), 401, "application/json"),
    ] {
        let resp = http.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(resp.status(), status, "{path}");
        assert_eq!(resp.headers()["content-type"], content_type, "{path}");
        assert!(resp.content_length().is_none_or(|n| n < 5_000_000));
    }
    let sgv = http.get(format!("{base}/api/v1/entries/sgv.json?token={token}&count=2")).send().await.unwrap();
    assert_eq!(sgv.json::<Value>().await.unwrap().as_array().unwrap().len(), 2);
    let del = http.delete(format!("{base}/devices/SN-L/follow-tokens/{token_id}")).send().await.unwrap();
    assert_eq!(del.status(), 200);
}

/// Follower tokens a security officer accepts: labelled, listed, expiring, audited, and
/// those stored before the rehash upgraded in place on first use.
#[tokio::test]
async fn follower_tokens_expire_are_listed_audited_and_legacy_ones_upgrade_in_place() {
    let env = Env::new().await;
    env.push_all(series("SN-T", 1..=3, |_| true)).await;
    let route = "/devices/{device_sn}/follow-tokens";
    let path = "/devices/SN-T/follow-tokens";
    let caller = "arn:aws:sts::123456789012:assumed-role/ehr-integration/session-7";
    let signed =
        |method: &str, body: Option<&str>| api_request(method, route, path, &[("device_sn", "SN-T")], "", body);
    // Given a token created with a label, by a signed caller
    let mut event: Value = serde_json::from_str(PUSH_EVENT).unwrap();
    event["routeKey"] = json!(format!("POST {route}"));
    event["requestContext"]["routeKey"] = json!(format!("POST {route}"));
    event["requestContext"]["http"]["method"] = json!("POST");
    event["rawPath"] = json!(path);
    // The push event's own query (its key) is no parameter of this route.
    event["rawQueryString"] = json!("");
    event["queryStringParameters"] = json!({});
    event["pathParameters"] = json!({"device_sn": "SN-T"});
    event["requestContext"]["authorizer"] = json!({"iam": {"userArn": caller, "accountId": "123456789012"}});
    event["body"] = json!(r#"{"label":"CANARY-LABEL-Grandma's watch","expires_in":3600}"#);
    let (logs, guard) = capture_logs("info");
    let (status, created) = reply_of(&env.call(lambda_http::request::from_str(&event.to_string()).unwrap()).await);
    drop(guard);
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["label"], "CANARY-LABEL-Grandma's watch");
    let token = created["token"].as_str().unwrap().to_string();
    let id = created["token_id"].as_str().unwrap().to_string();
    let audit = logs.text().lines().find(|l| l.contains(r#""action":"follow_token_created""#)).map(str::to_string);
    let audit = audit.expect("an audit line for the creation");
    assert!(audit.contains(caller) && audit.contains(&id), "{audit}");
    assert!(!logs.text().contains("CANARY-LABEL"), "a label is never logged");

    // Then it reads the feed, is listed with its label and last use, and expires
    assert_eq!(env.entries(ENTRIES, &format!("token={token}"), None).await.0, 200);
    assert_eq!(env.entries(ENTRIES, "", Some(&format!("token={token}"))).await.0, 200, "api-secret: token=<token>");
    let (status, list) = reply_of(&env.call(signed("GET", None)).await);
    assert_eq!(status, 200, "{list}");
    let listed = &list["tokens"][0];
    assert_eq!(
        (listed["token_id"].as_str(), listed["label"].as_str()),
        (Some(id.as_str()), Some("CANARY-LABEL-Grandma's watch"))
    );
    assert_eq!(listed["expired"], false);
    assert!(listed["last_used_at"].is_string(), "{listed}");
    assert!(!list.to_string().contains(&token), "the list never shows a secret");
    let table = env.stack.table("FOLLOW_TOKENS_TABLE").to_string();
    let used = |items: &[Item]| {
        items.iter().find(|i| s(i, "tokenId") == Some(id.as_str())).and_then(|i| n(i, "lastUsedAt").map(str::to_string))
    };
    let first_use = used(&env.stack.scan("FOLLOW_TOKENS_TABLE").await);
    env.entries(ENTRIES, &format!("token={token}"), None).await;
    assert_eq!(used(&env.stack.scan("FOLLOW_TOKENS_TABLE").await), first_use, "last use is written at most hourly");
    env.stack
        .client
        .update_item()
        .table_name(&table)
        .key("tokenId", aws_sdk_dynamodb::types::AttributeValue::S(id.clone()))
        .update_expression("SET expiresAt = :past")
        .expression_attribute_values(":past", aws_sdk_dynamodb::types::AttributeValue::N("1000".into()))
        .send()
        .await
        .unwrap();
    assert_eq!(
        env.entries(ENTRIES, &format!("token={token}"), None).await.0,
        401,
        "expired, though TTL has not removed it"
    );
    let (_, list) = reply_of(&env.call(signed("GET", None)).await);
    assert_eq!(list["tokens"][0]["expired"], true);
    let bad = api_request("POST", route, path, &[("device_sn", "SN-T")], "", Some(r#"{"expires_in":5}"#));
    assert_eq!(reply_of(&env.call(bad).await).0, 400);
    let bad = api_request("POST", route, path, &[("device_sn", "SN-T")], "", Some(r#"{"colour":"red"}"#));
    assert_eq!(reply_of(&env.call(bad).await).0, 400, "an unknown field is refused, not ignored");

    // Given a token stored the old way (SHA-256 of the token and its SHA-1 hex)
    let legacy = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    let item: Item = [
        ("tokenId", aws_sdk_dynamodb::types::AttributeValue::S("legacy-id".into())),
        ("deviceSn", aws_sdk_dynamodb::types::AttributeValue::S("SN-T".into())),
        ("tokenHash", aws_sdk_dynamodb::types::AttributeValue::S(hex::encode(Sha256::digest(legacy.as_bytes())))),
        ("sha1Hash", aws_sdk_dynamodb::types::AttributeValue::S(sha1_hex(legacy))),
        ("createdAt", aws_sdk_dynamodb::types::AttributeValue::N("1700000000000".into())),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    env.stack.client.put_item().table_name(&table).set_item(Some(item)).send().await.unwrap();
    // Then today's follower keeps working, and the row no longer holds what it sends
    assert_eq!(env.entries(ENTRIES, "", Some(&sha1_hex(legacy))).await.0, 200, "a legacy api-secret follower");
    assert_eq!(env.entries(ENTRIES, &format!("token={legacy}"), None).await.0, 200, "and its ?token= form");
    let rows = env.stack.scan("FOLLOW_TOKENS_TABLE").await;
    let row = rows.iter().find(|i| s(i, "tokenId") == Some("legacy-id")).expect("the legacy row");
    assert!(s(row, "sha1Hash").is_none(), "{row:?}");
    let rehashed = hex::encode(Sha256::digest(sha1_hex(legacy).as_bytes()));
    assert_eq!(s(row, "tokenHash"), Some(rehashed.as_str()));
    assert!(n(row, "expiresAt").is_some(), "an upgraded token gets its 90 days");
}

/// 14 local days pushed through the push route (readings every 15 minutes, the first two
/// warm-up): `agp.json` counts them, its profile's percentiles are those of the readings,
/// and once `cgm-replay rollups` has rolled the days up (as the stream consumer does), the
/// page read from the rollups is the same to the last digit.
#[tokio::test]
async fn agp_json_over_fourteen_pushed_days_from_readings_then_from_rollups() {
    let env = Env::new().await;
    let value = |s: u64| 4.0 + ((s * 13) % 97) as f64 / 10.0;
    let bodies: Vec<String> = (1..=14 * 96u64)
        .map(|s| {
            let local = chrono::DateTime::from_timestamp_millis(T0 + (s as i64 - 1) * 15 * MIN).unwrap()
                + chrono::Duration::hours(8);
            seed_with(json!({
                "testId": format!("AGP-{s:05}"), "deviceSn": "SN-AGP", "serialNo": s,
                "testTime": local.format("%Y-%m-%d %H:%M:%S").to_string(),
                "testResult": format!("{:.1}", value(s)), "status": if s > 2 { "0" } else { "1" }, "increMinute": 15,
            }))
        })
        .collect();
    env.push_all(bodies).await;
    let agp = "/devices/{device_sn}/agp.json";
    let q = "from=2021-11-02&to=2021-11-15";
    let (status, body) = env.get_json(agp, "SN-AGP", q).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!((body["readings"].as_u64(), body["invalid_readings_excluded"].as_u64()), (Some(14 * 96 - 2), Some(2)));
    assert_eq!((body["days"].as_f64(), body["interval_minutes"].as_u64()), (Some(14.0), Some(15)));
    assert_eq!(body["sufficient"], true, "{}", body["notice"]);
    let daily = body["daily"].as_array().unwrap();
    assert_eq!(daily.len(), 14);
    assert_eq!(daily[0]["points"].as_array().unwrap().len(), 94, "the warm-up readings are left out");
    assert!(daily[1..].iter().all(|d| d["points"].as_array().unwrap().len() == 96 && d["hours"] == 24.0));
    // 12:00-12:15: the reading at 12:00 of each day, by hand (14 values, p50 between ranks 6 and 7).
    let mut noon: Vec<f64> = (0..14u64).map(|d| value(d * 96 + 48 + 1)).collect();
    noon.sort_by(f64::total_cmp);
    let bin = &body["profile"][48];
    assert_eq!((bin["start"].as_str(), bin["readings"].as_u64()), (Some("12:00"), Some(14)));
    assert_eq!(
        bin["raw_percentiles_mmol"]["p50"].as_f64(),
        Some(cgm_domain::metrics::round_to((noon[6] + noon[7]) / 2.0, 2))
    );
    assert_eq!(
        bin["raw_percentiles_mmol"]["p5"].as_f64(),
        Some(cgm_domain::metrics::round_to(noon[0] + 0.65 * (noon[1] - noon[0]), 2))
    );

    let cfg = env.stack.config(&[]);
    let reads =
        DynamoReadStore::new(env.stack.client.clone(), cfg.tables.readings.clone(), cfg.tables.follow_tokens.clone());
    let rollups = cgm_shared::store::rollups::dynamodb::DynamoRollupStore::new(
        env.stack.client.clone(),
        cfg.tables.rollups.clone(),
    );
    let zone = cgm_domain::time::SourceZone::default();
    let done =
        cgm_replay::rollups::backfill(&env.stack.client, &cfg.tables.readings, &reads, &rollups, &zone, None, |_| {})
            .await
            .unwrap();
    assert_eq!(done.written, 14);
    let (_, from_rollups) = env.get_json(agp, "SN-AGP", q).await;
    assert_eq!(from_rollups, body, "the rollups give the readings' page");
    let resp = env.get("/devices/{device_sn}/agp.svg", "SN-AGP", q).await;
    assert_eq!((resp.status().as_u16(), header(&resp, "content-type")), (200, Some("image/svg+xml")));
    let svg = body_text(&resp);
    let doc = roxmltree::Document::parse(&svg).expect("well-formed SVG");
    let class = |c: &str| doc.descendants().filter(|n| n.attribute("class") == Some(c)).count();
    assert_eq!(
        (class("day-panel"), class("median"), class("data-notice")),
        (14, 1, 0),
        "one unbroken profile, no notice"
    );
}

#[tokio::test]
async fn agp_pdf_over_fourteen_pushed_days_is_one_a4_page_a_pdf_reader_opens_with_the_patient_only_when_allowed() {
    let env = Env::new().await;
    let bodies: Vec<String> = (1..=14 * 96u64)
        .map(|s| {
            let local = chrono::DateTime::from_timestamp_millis(T0 + (s as i64 - 1) * 15 * MIN).unwrap()
                + chrono::Duration::hours(8);
            seed_with(json!({
                "testId": format!("PDF-{s:05}"), "deviceSn": "SN-PDF", "serialNo": s,
                "testTime": local.format("%Y-%m-%d %H:%M:%S").to_string(),
                "testResult": format!("{:.1}", 4.0 + ((s * 7) % 90) as f64 / 10.0), "status": "0", "increMinute": 15,
                "patientName": "张三丰", "patientId": "MPI-4711",
            }))
        })
        .collect();
    env.push_all(bodies).await;
    let fonts = cgm_local::font_dir().display().to_string();
    let route = "/devices/{device_sn}/agp.pdf";
    let req = || {
        api_request(
            "GET",
            route,
            "/devices/SN-PDF/agp.pdf",
            &[("device_sn", "SN-PDF")],
            "from=2021-11-02&to=2021-11-15",
            None,
        )
    };
    let dir = std::env::temp_dir().join(format!("cgm-agp-pdf-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for patient_fields in ["false", "true"] {
        let cfg = env.stack.config(&[("AGP_FONT_DIR", &fonts), ("AGP_PATIENT_FIELDS", patient_fields)]);
        let report = cgm_report::from_config(&cfg).await.expect("report service (tools/install.sh fonts)");
        let resp = Box::pin(report.handle(req())).await;
        assert_eq!((resp.status().as_u16(), header(&resp, "content-type")), (200, Some("application/pdf")));
        assert_eq!(
            header(&resp, "content-disposition"),
            Some("inline; filename=\"agp-SN-PDF-2021-11-02-2021-11-15.pdf\"")
        );
        let path = dir.join(format!("agp-{patient_fields}.pdf"));
        std::fs::write(&path, resp.body().as_ref()).unwrap();
        let info = poppler("pdfinfo", &[], &path, &[]);
        assert!(info.lines().any(|l| l.starts_with("Pages:") && l.ends_with(" 1")), "{info}");
        let size = info.lines().find_map(|l| l.strip_prefix("Page size:")).expect("pdfinfo names the page size");
        let wh: Vec<f64> = size.split_whitespace().filter_map(|w| w.parse().ok()).collect();
        assert!((wh[0] - 595.28).abs() < 0.5 && (wh[1] - 841.89).abs() < 0.5 && size.ends_with("(A4)"), "{info}");
        let text = poppler("pdftotext", &["-layout"], &path, &["-"]);
        for part in [
            "Ambulatory glucose profile",
            "SN-PDF",
            "2021-11-02 – 2021-11-15 (14 days)",
            "Glucose statistics and targets",
            "Time in ranges",
            "Daily glucose profiles",
        ] {
            assert!(text.contains(part), "{part:?} is not text of the PDF:\n{text}");
        }
        let shows = text.contains("张三丰") && text.contains("MPI-4711");
        assert_eq!(
            shows,
            patient_fields == "true",
            "the patient is named exactly when AGP_PATIENT_FIELDS=true:\n{text}"
        );
        // The page as an image: poppler draws it (the glyphs are embedded, not just named).
        let png = dir.join(format!("agp-{patient_fields}"));
        let out = std::process::Command::new("pdftoppm")
            .args(["-png", "-r", "50", "-singlefile"])
            .arg(&path)
            .arg(&png)
            .output()
            .expect("pdftoppm (poppler-utils)");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert!(std::fs::metadata(png.with_extension("png")).unwrap().len() > 10_000);
    }
    let fonts_info = poppler("pdffonts", &[], &dir.join("agp-true.pdf"), &[]);
    assert!(fonts_info.contains("NotoSansCJK"), "the fonts are embedded:\n{fonts_info}");
    if std::env::var_os("KEEP_AGP_PDF").is_none() {
        std::fs::remove_dir_all(&dir).ok();
    }
}
