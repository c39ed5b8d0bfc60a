//! Issue 25: every urgent low reaches the ward, whatever order, clock or size the data
//! arrives in. A corpus of hostile pushes goes through the real push handler against
//! DynamoDB Local: ids and names at and just over every key's byte limit (ASCII and
//! Chinese), numbers at and beyond what a DynamoDB number holds, absurd clocks, bodies at
//! and over 64 KiB. Each gets the reply docs/sinocare-integration.md gives it, and none a
//! 503: a 503 for a body storage can never take is a body Sinocare re-sends for ever.

use aws_sdk_dynamodb::types::AttributeValue;
use cgm_domain::push::{MAX_BODY_BYTES, MAX_ID_BYTES, MAX_TEXT_BYTES, Reading, Threshold};
use cgm_domain::store::StoreError;
use cgm_domain::store::push::{Arrival, Conflict, PushStore, PutOutcome, Quarantined, Recorded};
use cgm_domain::time::SourceZone;
use cgm_edge::HttpService;
use cgm_push::{PushService, STORAGE_REFUSED};
use cgm_shared::store::push::dynamodb::DynamoStore;
use cgm_tests::*;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const KEY: &str = "hostile-pushes-key";
const SOURCE: &str = "203.0.113.10";
const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;
/// 39 digits: one more than a DynamoDB number holds.
const DIGITS_39: &str = "123456789012345678901234567890123456789";
/// The seed example's `deviceSn`, which most of the corpus keeps.
const SEED_DEVICE: &str = "23xxdrt33";

async fn keyed(stack: &Stack) -> PushService<DynamoStore> {
    cgm_push::from_config(&stack.config(&[("PUSH_KEY", KEY)])).await.expect("push service")
}

async fn push<S: PushStore>(svc: &PushService<S>, body: &str) -> (u16, Value) {
    reply_of(&svc.handle(push_request(body, &format!("key={KEY}"), SOURCE)).await)
}

fn code0() -> (u16, Value) {
    (200, json!({"code": 0, "msg": ""}))
}

/// Whether `kept` (JSON text from `outOfRange`) is what was sent: a string exactly; a JSON
/// number as the same number to within serde_json's parsing, which without its
/// `float_roundtrip` feature may land a unit in the last place off (1e-131 comes back as
/// 1.0000000000000001e-131).
fn kept_as_sent(kept: &str, sent: &str) -> bool {
    if sent.starts_with('"') {
        return kept == sent;
    }
    match (kept.parse::<f64>(), sent.parse::<f64>()) {
        (Ok(k), Ok(s)) => k == s || ((k - s) / s).abs() < 1e-15,
        _ => false,
    }
}

fn sha256_hex(body: &str) -> String {
    hex::encode(Sha256::digest(body.as_bytes()))
}

/// China Standard Time wall clock, as Sinocare writes `testTime`, `offset_ms` from now.
fn china_time_from_now(offset_ms: i64) -> String {
    let t = chrono::Utc::now() + chrono::Duration::milliseconds(offset_ms) + chrono::Duration::hours(8);
    t.format("%Y-%m-%d %H:%M:%S").to_string()
}

/// The seed example with `data` patched, and `raw` JSON number texts (no `f64` holds 39
/// digits exactly) put in place of string placeholders.
fn seed_raw(patch: Value, raw: &[(&str, &str)]) -> String {
    let mut body = seed_with(patch);
    for (field, text) in raw {
        let placeholder = format!("\"{field}\":\"__raw__\"");
        assert!(body.contains(&placeholder), "{field} is in the patch as \"__raw__\"");
        body = body.replace(&placeholder, &format!("\"{field}\":{text}"));
    }
    body
}

/// What the design gives a push.
#[derive(Debug, Clone)]
enum Want {
    /// Code 0, stored as the reading with this `testId`.
    Stored(String),
    /// Code 0, the whole body in quarantine with this reason.
    Quarantined(&'static str),
    /// 413, a stub in quarantine.
    TooLarge,
}

struct Case {
    what: String,
    body: String,
    want: Want,
}

fn stored(what: impl Into<String>, test_id: impl Into<String>, patch: Value) -> Case {
    let test_id = test_id.into();
    let mut patch = patch;
    patch["testId"] = json!(test_id);
    Case { what: what.into(), body: seed_with(patch), want: Want::Stored(test_id) }
}

fn quarantined(what: impl Into<String>, body: String, reason: &'static str) -> Case {
    Case { what: what.into(), body, want: Want::Quarantined(reason) }
}

/// Over-long ids and names: at each field's limit, one byte over, and in Chinese (three
/// bytes a character) just under, just over, and at 2,048 bytes and beyond.
fn text_cases() -> Vec<Case> {
    let mut cases = Vec::new();
    let fields = [
        ("testId", MAX_ID_BYTES, "testId is too long"),
        ("deviceSn", MAX_ID_BYTES, "deviceSn is too long"),
        ("customerName", MAX_ID_BYTES, "customerName is too long"),
        ("patientId", MAX_ID_BYTES, "patientId is too long"),
        ("visitId", MAX_TEXT_BYTES, "visitId is too long"),
        ("inSerialId", MAX_TEXT_BYTES, "inSerialId is too long"),
        ("idCard", MAX_TEXT_BYTES, "idCard is too long"),
        ("patientName", MAX_TEXT_BYTES, "patientName is too long"),
        ("status", MAX_TEXT_BYTES, "status is too long"),
        ("cgmStatus", MAX_TEXT_BYTES, "cgmStatus is too long"),
    ];
    for (field, max, reason) in fields {
        let at = "7".repeat(max);
        let under = "院".repeat(max / 3);
        // With the testId as the subject its value is the id; otherwise the id names the case.
        let id = |tag: &str, v: &str| if field == "testId" { v.to_string() } else { format!("{field}-{tag}") };
        cases.push(stored(format!("{field} ASCII at {max} bytes"), id("ascii", &at), json!({field: at})));
        cases.push(stored(
            format!("{field} Chinese, {} bytes", under.len()),
            id("chinese", &under),
            json!({field: under}),
        ));
        for (tag, v) in [
            ("ASCII one byte over", "7".repeat(max + 1)),
            ("Chinese one character over", "院".repeat(max / 3 + 1)),
            ("683 Chinese characters, 2,049 bytes: over a partition key's limit", "院".repeat(683)),
            ("2,100 Chinese characters", "院".repeat(2_100)),
        ] {
            let patch = if field == "testId" {
                json!({field: v})
            } else {
                json!({"testId": format!("{field}-over"), field: v})
            };
            cases.push(quarantined(format!("{field} {tag}"), seed_with(patch), reason));
        }
    }
    cases
}

/// Numbers at and beyond what DynamoDB holds, 39-digit values and 1e-300 thresholds. A
/// threshold or count no DynamoDB number (or no spec meaning) holds is kept as sent in
/// `outOfRange`; a `testResult` outside its grammar is quarantined.
fn number_cases() -> Vec<Case> {
    vec![
        stored("low 1e-130 string, the smallest DynamoDB holds", "n-low-min", json!({"low": "1e-130"})),
        stored("low 1e-300 number", "n-low-1e-300", json!({"low": 1e-300})),
        stored("low 1e-131 string", "n-low-1e-131", json!({"low": "1e-131"})),
        stored("high 1e-131 number", "n-high-1e-131", json!({"high": 1e-131})),
        stored("high 1e126", "n-high-1e126", json!({"high": 1e126})),
        stored("high 38 nines", "n-high-38", json!({"high": "99999999999999999999999999999999999999"})),
        stored("low 39 digits", "n-low-39", json!({"low": DIGITS_39})),
        stored("low negative tiny", "n-low-neg", json!({"low": -1e-200})),
        Case {
            what: "high 39 digits as a JSON number".into(),
            body: seed_raw(json!({"testId": "n-high-39-raw", "high": "__raw__"}), &[("high", DIGITS_39)]),
            want: Want::Stored("n-high-39-raw".into()),
        },
        Case {
            what: "serialNo 39 digits as a JSON number".into(),
            body: seed_raw(json!({"testId": "n-serial-39", "serialNo": "__raw__"}), &[("serialNo", DIGITS_39)]),
            want: Want::Stored("n-serial-39".into()),
        },
        stored("serialNo 39 digits as a string", "n-serial-39-s", json!({"serialNo": DIGITS_39})),
        stored("cgmDay 1e300", "n-cgmday-1e300", json!({"cgmDay": 1e300})),
        stored("increMinute negative", "n-incre-neg", json!({"increMinute": -3})),
        stored("serialNo u64::MAX", "n-serial-max", json!({"serialNo": u64::MAX})),
        stored(
            "testResult 1e-30, 32 characters",
            "n-result-tiny",
            json!({"testResult": "0.000000000000000000000000000001"}),
        ),
        quarantined(
            "testResult 39 digits",
            seed_with(json!({"testId": "n-result-39", "testResult": "5.60000000000000000000000000000000000001"})),
            "testResult is not a decimal number",
        ),
        quarantined(
            "testResult 1e-300 as a JSON number",
            seed_with(json!({"testId": "n-result-1e-300", "testResult": 1e-300})),
            "testResult is not a decimal number",
        ),
        quarantined(
            "testResult 1e300",
            seed_with(json!({"testId": "n-result-1e300", "testResult": 1e300})),
            "testResult is not a decimal number",
        ),
    ]
}

/// Absurd, pre-2015 and far-future clocks, and one running a little ahead.
fn time_cases() -> Vec<Case> {
    let after = "testTime is more than a day after arrival";
    let before = "testTime is before 2015";
    let at = |id: &str, t: &str| seed_with(json!({"testId": id, "testTime": t}));
    vec![
        quarantined("the year 262142", at("t-262142", "+262142-12-31 20:00:00"), after),
        quarantined("the year 9999", at("t-9999", "9999-12-31 23:59:59"), after),
        quarantined("two days ahead", at("t-2d", &china_time_from_now(2 * DAY)), after),
        quarantined("a second before 2015", at("t-2014", "2014-12-31 23:59:59"), before),
        quarantined("the epoch", at("t-1970", "1970-01-01 08:00:00"), before),
        quarantined("the year 1", at("t-0001", "0001-01-01 00:00:00"), before),
        stored("2015-01-01T00:00:00Z itself", "t-2015", json!({"testTime": "2015-01-01 08:00:00"})),
        stored("a minute ago", "t-now", json!({"testTime": china_time_from_now(-60_000)})),
        stored("an hour ahead", "t-ahead-1h", json!({"testTime": china_time_from_now(HOUR)})),
        stored("23 hours ahead", "t-ahead-23h", json!({"testTime": china_time_from_now(23 * HOUR)})),
        stored("a backlog a year old", "t-backlog", json!({"testTime": china_time_from_now(-365 * DAY)})),
    ]
}

/// A valid reading padded with an unknown field to exactly `len` bytes.
fn body_of_length(test_id: &str, len: usize) -> String {
    let empty = seed_with(json!({"testId": test_id, "padding": ""}));
    let body = seed_with(json!({"testId": test_id, "padding": "x".repeat(len - empty.len())}));
    assert_eq!(body.len(), len);
    body
}

fn size_cases() -> Vec<Case> {
    vec![
        Case {
            what: "a body of exactly 64 KiB".into(),
            body: body_of_length("size-64k", MAX_BODY_BYTES),
            want: Want::Stored("size-64k".into()),
        },
        Case {
            what: "a body one byte over 64 KiB".into(),
            body: body_of_length("size-over", MAX_BODY_BYTES + 1),
            want: Want::TooLarge,
        },
    ]
}

/// The reply the design gives a push.
fn design_reply(want: &Want) -> (u16, Value) {
    match want {
        Want::TooLarge => (413, json!({"code": 413, "msg": "body over 64 KiB"})),
        Want::Stored(_) | Want::Quarantined(_) => code0(),
    }
}

fn corpus() -> Vec<Case> {
    [text_cases(), number_cases(), time_cases(), size_cases()].into_iter().flatten().collect()
}

#[tokio::test]
async fn the_hostile_corpus_gets_the_replies_the_design_gives() {
    // Given the push route on DynamoDB Local
    let stack = Stack::new().await;
    let svc = keyed(&stack).await;
    let cases = corpus();

    // When each hostile push arrives
    for c in &cases {
        // Then its reply is the design's, never a 503
        assert_eq!(push(&svc, &c.body).await, design_reply(&c.want), "{}", c.what);
    }

    // And each is stored, or quarantined under its hash with its own reason
    let readings = stack.scan("READINGS_TABLE").await;
    let quarantine = stack.scan("QUARANTINE_TABLE").await;
    for c in &cases {
        match &c.want {
            Want::Stored(id) => {
                assert!(readings.iter().any(|r| s(r, "testId") == Some(id.as_str())), "{}: stored", c.what);
            }
            Want::Quarantined(reason) => {
                let q = quarantine.iter().find(|q| s(q, "bodySha256") == Some(sha256_hex(&c.body).as_str()));
                let q = q.unwrap_or_else(|| panic!("{}: quarantined", c.what));
                assert_eq!(s(q, "reason"), Some(*reason), "{}", c.what);
                assert_eq!(q.get("truncated"), Some(&AttributeValue::Bool(false)), "{}: kept whole", c.what);
            }
            Want::TooLarge => {
                let q = quarantine.iter().find(|q| s(q, "bodySha256") == Some(sha256_hex(&c.body).as_str()));
                let q = q.unwrap_or_else(|| panic!("{}: a stub", c.what));
                assert_eq!(s(q, "reason"), Some("body over 64 KiB"));
                assert_eq!(n(q, "bodyLength"), Some(c.body.len().to_string().as_str()));
                assert_eq!(q.get("truncated"), Some(&AttributeValue::Bool(true)));
            }
        }
    }
    let count = |f: fn(&Want) -> bool| cases.iter().filter(|c| f(&c.want)).count();
    assert_eq!(readings.len(), count(|w| matches!(w, Want::Stored(_))), "nothing else stored");
    assert_eq!(quarantine.len(), count(|w| !matches!(w, Want::Stored(_))), "nothing else quarantined");

    // And what was stored holds only what DynamoDB holds: out-of-range numbers as sent
    let by_id = |id: &str| readings.iter().find(|r| s(r, "testId") == Some(id)).expect("stored");
    let kept = |id: &str, field: &str| match by_id(id).get("outOfRange") {
        Some(AttributeValue::M(m)) => m.get(field).and_then(|v| v.as_s().ok()).cloned(),
        _ => None,
    };
    assert!(n(by_id("n-low-min"), "low").is_some(), "1e-130 is a number DynamoDB holds");
    let quoted_39 = format!("\"{DIGITS_39}\"");
    for (id, field, sent) in [
        ("n-low-1e-300", "low", "1e-300"),
        ("n-low-1e-131", "low", "\"1e-131\""),
        ("n-high-1e-131", "high", "1e-131"),
        ("n-high-1e126", "high", "1e126"),
        ("n-low-39", "low", quoted_39.as_str()),
        ("n-serial-39-s", "serialNo", quoted_39.as_str()),
        ("n-cgmday-1e300", "cgmDay", "1e300"),
        ("n-incre-neg", "increMinute", "-3"),
        ("n-serial-max", "serialNo", "18446744073709551615"),
    ] {
        let k = kept(id, field).unwrap_or_else(|| panic!("{id}: {field} in outOfRange"));
        assert!(kept_as_sent(&k, sent), "{id}: {field} kept as {k}, sent {sent}");
        assert!(!by_id(id).contains_key(field), "{id}: no typed {field}");
    }
    assert!(kept("n-high-39-raw", "high").is_some() && kept("n-serial-39", "serialNo").is_some());
    assert_eq!(n(by_id("n-result-tiny"), "glucoseMmol").map(|v| v.parse::<f64>().ok()), Some(Some(1e-30)));

    // And a clock running ahead is flagged, one on time is not
    let flag = |id: &str| by_id(id).get("clockAhead").cloned();
    assert_eq!(flag("t-ahead-1h"), Some(AttributeValue::Bool(true)));
    assert_eq!(flag("t-ahead-23h"), Some(AttributeValue::Bool(true)));
    for id in ["t-now", "t-backlog", "t-2015", "size-64k"] {
        assert_eq!(flag(id), None, "{id}");
    }
}

/// Every byte but the unreserved ones percent-encoded: an id as one path segment or query
/// value.
fn encoded(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => char::from(b).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A device id short enough for an assertion's message.
fn clip(sn: &str) -> String {
    match sn.char_indices().nth(24) {
        Some((at, _)) => format!("{}… ({} bytes)", &sn[..at], sn.len()),
        None => sn.to_string(),
    }
}

/// A body of the corpus as a running sensor sends it: the seed's warm-up status ("1") made
/// "0", the same length, so each stored reading is valid and reaches the alerts, the feeds
/// and the EHR. Bodies that set `status` themselves are left as they are.
fn running_sensor(body: &str) -> String {
    body.replacen("\"status\":\"1\"", "\"status\":\"0\"", 1)
}

#[tokio::test]
async fn after_the_hostile_corpus_every_read_route_the_consumer_and_the_submitter_keep_working() {
    use cgm_domain::session::Session;
    use cgm_tests::fake_ehr::{CLIENT_ID, FakeEhr, KEY_ID, TestKey};
    use std::collections::BTreeSet;
    use std::time::{Duration, Instant};
    const MPI: &str = "https://hospital.example/fhir/sid/mpi";

    // Given every template route served on DynamoDB Local, the readings stream's consumer
    // running as `make dev` runs it, and a stand-in EHR for the submitter
    let stack = Stack::new().await;
    let ehr = FakeEhr::start(TestKey::es384()).await;
    let (ehr_base, fonts) = (ehr.base(), cgm_local::font_dir().display().to_string());
    let cfg = stack.config(&[
        ("PUSH_KEY", KEY),
        ("FHIR_PATIENT_IDENTIFIER_SYSTEM", MPI),
        ("READ_PATIENT_FIELDS", "true"),
        ("FHIR_EHR_BASE_URL", &ehr_base),
        ("FHIR_CLIENT_ID", CLIENT_ID),
        ("FHIR_CLIENT_KEY_ID", KEY_ID),
        ("FHIR_CLIENT_PRIVATE_KEY", ehr.private_pem()),
        ("FHIR_CLIENT_SIGNING_ALG", "ES384"),
        ("FHIR_SUMMARY_PERIOD_DAYS", "1"),
        ("AGP_FONT_DIR", &fonts),
    ]);
    let base = serve_locally(&cfg).await;
    let consumer = cgm_local::stream_consumer(&cfg).await.expect("a stream consumer");
    let events = consumer.service();
    let running = tokio::spawn(consumer.run());
    let http = reqwest::Client::new();

    // When the whole corpus is pushed over HTTP (each reply still the design's)
    let cases = corpus();
    for c in &cases {
        let r = http.post(format!("{base}/sinocare/cgm?key={KEY}")).body(running_sensor(&c.body)).send().await;
        let r = r.unwrap_or_else(|e| panic!("{}: the server is gone: {e}", c.what));
        let status = r.status().as_u16();
        assert_eq!((status, r.json::<Value>().await.expect("a JSON reply")), design_reply(&c.want), "{}", c.what);
    }
    let stored = stack.scan("READINGS_TABLE").await;
    assert_eq!(stored.len(), cases.iter().filter(|c| matches!(c.want, Want::Stored(_))).count());
    let quarantined = stack.scan("QUARANTINE_TABLE").await.len();
    let device_of = |r: &Item| s(r, "deviceSn").expect("a stored reading names its device").to_string();
    let devices: BTreeSet<String> = stored.iter().map(device_of).collect();
    // A device whose every reading has its clock ahead gets no session (such a reading is
    // never a sensor's first or latest); here every device has a reading on time.
    let on_time: BTreeSet<String> = stored.iter().filter(|r| !r.contains_key("clockAhead")).map(device_of).collect();
    assert_eq!(on_time, devices, "the corpus has no device of clock-ahead readings only");

    // Then the consumer takes every record: each day's rollup counts all its readings, every
    // device has its session with nothing left to send, and nothing changes any more
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut last = None;
    let sessions = loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let sessions: Vec<Session> = stack
            .scan("SENSORS_TABLE")
            .await
            .iter()
            .filter_map(cgm_shared::store::sensors::dynamodb::session_of)
            .collect();
        let rollups = stack.scan("ROLLUPS_TABLE").await;
        let rolled: u64 =
            rollups.iter().filter_map(cgm_shared::store::rollups::dynamodb::rollup_of).map(|r| r.readings).sum();
        let kept: BTreeSet<String> = sessions.iter().map(|s| s.device_sn.as_str().to_string()).collect();
        let state = (rolled, sessions.iter().map(|s| s.version).sum::<u64>());
        let done = rolled == stored.len() as u64 && kept == devices && sessions.iter().all(|s| s.outbox.is_empty());
        if done && last == Some(state) {
            break sessions;
        }
        assert!(
            Instant::now() < deadline,
            "the consumer stalled: {rolled} of {} readings rolled up, sessions for {:?} of {:?}",
            stored.len(),
            kept.iter().map(|d| clip(d)).collect::<Vec<_>>(),
            devices.iter().map(|d| clip(d)).collect::<Vec<_>>(),
        );
        last = Some(state);
    };
    running.abort();
    // And every record of the stream, delivered again, is a reading taken: none failed, none
    // written aside as poisoned
    let (_, shards) = stack.stream_records("READINGS_TABLE").await;
    let records: Vec<_> = shards.into_iter().flat_map(|(_, r)| r).collect();
    assert_eq!(records.len(), stored.len(), "one stream record per stored reading");
    for chunk in records.chunks(100) {
        let batch = cgm_events::stream::readings(&cgm_local::stream::event_of(chunk));
        assert_eq!(batch.skipped, 0, "every record is a reading");
        let outcome = events.process(&batch).await;
        assert!(outcome.failed.is_empty() && outcome.poisoned.is_empty(), "{outcome:?}");
    }
    assert_eq!(stack.scan("QUARANTINE_TABLE").await.len(), quarantined, "nothing poisoned");

    // When every read route is called for every stored device, its id percent-encoded
    let today = (chrono::Utc::now() + chrono::Duration::hours(8)).format("%Y-%m-%d").to_string();
    let get = |url: String| {
        let http = http.clone();
        async move {
            let r = http.get(&url).send().await.unwrap_or_else(|e| panic!("GET {url}: the server is gone: {e}"));
            (r.status().as_u16(), r.text().await.unwrap_or_default())
        }
    };
    for sn in &devices {
        let (e, fid) = (encoded(sn), cgm_fhir_profiles::fhir_id(sn));
        let created = http.post(format!("{base}/devices/{e}/follow-tokens")).send().await.expect("a follow token");
        assert_eq!(created.status().as_u16(), 201, "{}", clip(sn));
        let token: Value = created.json().await.expect("the token's JSON");
        let t = format!("token={}", token["token"].as_str().expect("a token"));
        let d = format!("{base}/devices/{e}");
        let mut urls = vec![
            format!("{d}/readings?include_invalid=true&limit=5000"),
            format!("{d}/readings?format=csv&include_invalid=true"),
            format!("{d}/gaps"),
            format!("{d}/gaps?from=2021-11-01T00:00:00Z&to=2021-11-03T00:00:00Z"),
            format!("{d}/summary"),
            format!("{d}/summary?from=2021-11-01T00:00:00Z&to=2021-11-03T00:00:00Z"),
            format!("{d}/chart.svg?date={today}"),
            format!("{d}/chart.svg?date=2021-11-02"),
            format!("{d}/agp.json"),
            format!("{d}/agp.svg"),
            format!("{d}/agp.pdf"),
            format!("{d}/follow-tokens"),
            format!("{base}/sensors/{e}"),
            format!("{base}/api/v1/entries.json?{t}&count=1000"),
            format!("{base}/api/v1/entries/sgv.json?{t}&find%5Bdate%5D%5B%24gte%5D=0"),
            format!("{base}/api/v1/entries/current.json?{t}"),
            format!("{base}/api/v1/status.json?{t}"),
            format!("{base}/api/v2/properties?{t}"),
            format!("{base}/fhir/Observation?device={fid}&_count=200"),
            format!("{base}/fhir/Observation?device=Device/{fid}&include-warm-up=true&date=ge2015-01-01"),
            format!("{base}/fhir/DiagnosticReport?device={fid}"),
        ];
        // Then each answers 200; a FHIR Device read, 404 where the id is too long to stand
        // for its serial (a hashed `h-` id: the search by it finds nothing either)
        let readable = cgm_fhir_profiles::text_of_fhir_id(&fid).is_some();
        urls.push(format!("{base}/fhir/Device/{fid}"));
        for url in &urls {
            let (status, body) = get(url.clone()).await;
            let want = if url.contains("/fhir/Device/") && !readable { 404 } else { 200 };
            let shown: String = body.chars().take(300).collect();
            assert_eq!(status, want, "{} {}: {shown}", clip(sn), url.replacen(&e, "{device_sn}", 1));
        }
        let (_, page) = get(urls[0].clone()).await;
        let page: Value = serde_json::from_str(&page).expect("a readings page");
        let mine = stored.iter().filter(|r| device_of(r) == *sn).count();
        assert_eq!(page["readings"].as_array().map(Vec::len), Some(mine), "{}: each reading read back", clip(sn));
    }
    for path in ["/sensors?active=true", "/alerts", "/patients/12/sensors", "/fhir/metadata"] {
        let (status, body) = get(format!("{base}{path}")).await;
        assert_eq!(status, 200, "{path}: {body}");
    }
    let (status, _) = get(format!("{base}/devices/{}/readings?limit=1", encoded(SEED_DEVICE))).await;
    assert_eq!(status, 200, "the server is still up");

    // When the FHIR submitter runs once over the sensors
    let submitter = cgm_fhir_submit::from_config(&cfg).await.expect("the submitter starts");
    let (logs, guard) = capture_logs("info");
    let now = cgm_domain::time::Timestamp::now();
    let run = submitter.run(now, Instant::now() + Duration::from_secs(120)).await;
    drop(guard);
    let run = run.expect("a run");

    // Then it finishes with a result for each: a device that fails is counted, alone, and
    // every valid reading of each other one reaches the EHR once, but those measured after
    // the run's now (clocks ahead), which wait for a run after them
    assert_eq!(run.devices, sessions.len(), "{run:?}");
    let text = logs.text();
    let failed: BTreeSet<String> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["message"] == "submission left for the next run")
        .filter(|l| l["outcome"] != "later")
        .filter_map(|l| l["device_sn"].as_str().map(str::to_string))
        .collect();
    assert_eq!((run.failed, run.unfinished), (failed.len(), failed.len()), "{run:?}");
    let sent = ehr.stored("Observation");
    let measured = |r: &Item| n(r, "measuredAt").and_then(|t| t.parse::<i64>().ok()).expect("a measured time");
    let valid = |r: &&Item| r.get("valid") == Some(&AttributeValue::Bool(true)) && measured(r) <= now.ms();
    for r in stored.iter().filter(valid).filter(|r| !failed.contains(&device_of(r))) {
        let id = s(r, "testId").expect("a testId");
        let key = format!("urn:cgm-bridge:sinocare:test-id|{id}");
        assert_eq!(sent.get(&key), Some(&1), "{}: {} sent once; run {run:?}", clip(&device_of(r)), clip(id));
    }
    assert_eq!(ehr.violations(), Vec::<String>::new());
}

/// Pushes `body` and returns the quarantine's reason for it, asserting code 0 and that no
/// reading was stored.
async fn quarantine_reason(body: &str) -> Option<String> {
    let stack = Stack::new().await;
    let svc = keyed(&stack).await;
    assert_eq!(push(&svc, body).await, code0());
    assert!(stack.scan("READINGS_TABLE").await.is_empty());
    let q = stack.scan("QUARANTINE_TABLE").await;
    assert_eq!(q.len(), 1);
    s(&q[0], "reason").map(str::to_string)
}

#[tokio::test]
async fn a_2100_character_patient_id_is_quarantined_not_answered_503() {
    // The case: the sensors table indexes patientId, DynamoDB refused the key, and
    // the push route answered 503 for every re-send.
    let canary = format!("CANARY{}", "病".repeat(2_094));
    let (logs, guard) = capture_logs("info");
    let reason = quarantine_reason(&seed_with(json!({"patientId": canary}))).await;
    drop(guard);
    assert_eq!(reason.as_deref(), Some("patientId is too long"));
    assert!(!logs.text().contains("CANARY"), "personal data never in a log line");
}

#[tokio::test]
async fn a_2100_character_customer_name_is_quarantined_not_answered_503() {
    let name = "测试医院".repeat(525);
    assert_eq!(name.chars().count(), 2_100);
    let reason = quarantine_reason(&seed_with(json!({"customerName": name}))).await;
    assert_eq!(reason.as_deref(), Some("customerName is too long"));
}

#[tokio::test]
async fn test_time_in_the_year_262142_is_quarantined() {
    // The case: it was stored, then held the stream consumer for ever.
    let reason = quarantine_reason(&seed_with(json!({"testTime": "+262142-12-31 20:00:00"}))).await;
    assert_eq!(reason.as_deref(), Some("testTime is more than a day after arrival"));
}

/// The reading is stored, its `low` kept as sent in `outOfRange` and not a number
/// attribute, which DynamoDB refused (and the route answered 503 for ever).
async fn assert_low_kept_as_sent(low: Value, sent: &str) {
    let stack = Stack::new().await;
    let svc = keyed(&stack).await;
    assert_eq!(push(&svc, &seed_with(json!({"low": low}))).await, code0());
    let readings = stack.scan("READINGS_TABLE").await;
    assert_eq!(readings.len(), 1);
    assert!(!readings[0].contains_key("low"));
    let Some(AttributeValue::M(kept)) = readings[0].get("outOfRange") else { panic!("outOfRange") };
    let k = kept.get("low").and_then(|v| v.as_s().ok()).expect("low in outOfRange");
    assert!(kept_as_sent(k, sent), "kept as {k}, sent {sent}");
    assert!(stack.scan("QUARANTINE_TABLE").await.is_empty());
}

#[tokio::test]
async fn low_1e_minus_300_is_kept_as_sent_and_the_reading_stored() {
    assert_low_kept_as_sent(json!(1e-300), "1e-300").await;
}

#[tokio::test]
async fn low_1e_minus_131_is_kept_as_sent_and_the_reading_stored() {
    assert_low_kept_as_sent(json!("1e-131"), "\"1e-131\"").await;
    assert_low_kept_as_sent(json!(1e-131), "1e-131").await;
}

/// The DynamoDB store with the parser's guarantee broken: every reading's `low` set to
/// 1e-300 on the way in, as a value the parser missed would be.
struct Unbounded(DynamoStore);

impl PushStore for Unbounded {
    async fn put_reading(&self, reading: &Reading, arrival: &Arrival) -> Result<PutOutcome, StoreError> {
        let broken = Reading { low: Threshold::Mmol(1e-300), ..reading.clone() };
        self.0.put_reading(&broken, arrival).await
    }

    async fn put_conflict(&self, c: &Conflict<'_>, arrival: &Arrival) -> Result<Recorded, StoreError> {
        self.0.put_conflict(c, arrival).await
    }

    async fn put_quarantine(&self, q: &Quarantined<'_>, arrival: &Arrival) -> Result<Recorded, StoreError> {
        self.0.put_quarantine(q, arrival).await
    }
}

#[tokio::test]
async fn a_reading_dynamodb_refuses_is_quarantined_with_code_0_not_503() {
    // Given a value the parser let through and DynamoDB Local refuses (ValidationException)
    let stack = Stack::new().await;
    let cfg = stack.config(&[("PUSH_KEY", KEY)]);
    let store = Unbounded(DynamoStore::new(stack.client.clone(), cfg.tables.clone()));
    let svc = PushService::new(
        store,
        cgm_push::PushAuth::new(&[cgm_domain::sensitive::Sensitive::new(KEY.to_string())], vec![]),
        SourceZone::default(),
        std::time::Duration::from_secs(10),
    );
    // When the push arrives, and again when Sinocare re-sends it
    for _ in 0..2 {
        assert_eq!(push(&svc, SEED_EXAMPLE).await, code0());
    }
    // Then the body is in quarantine once, saying storage refused it; no reading
    assert!(stack.scan("READINGS_TABLE").await.is_empty());
    let q = stack.scan("QUARANTINE_TABLE").await;
    assert_eq!(q.len(), 1);
    assert_eq!(s(&q[0], "reason"), Some(STORAGE_REFUSED));
    assert_eq!(s(&q[0], "bodySha256"), Some(sha256_hex(SEED_EXAMPLE).as_str()));
}
