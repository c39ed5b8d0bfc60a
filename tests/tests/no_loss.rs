//! Nothing pushed is lost (issue 5): the simulator behaves like Sinocare's cloud against the
//! local server (the same handlers the Lambdas run, over real HTTP), with DynamoDB Local
//! behind it healthy, killed and restarted, and slower than the push deadline; then the
//! partner proxy with an upstream that refuses, resets, fails, hangs or talks nonsense.
//!
//! Sized for a 2-core machine: a few minutes in all. Figures go to stderr, which nextest
//! shows for these tests (`.config/nextest.toml`).

use cgm_local::dynamodb_local::{DynamoDbLocal, Storage};
use cgm_sim::send::{Counters, Report, SendConfig, send_all};
use cgm_sim::{Plan, Workload, generate};
use cgm_tests::fake_partner::{FakePartner, T0};
use cgm_tests::net::{DelayProxy, addr_of, hang_up_url, refused_url};
use cgm_tests::*;
use chrono::NaiveDateTime;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

const KEY: &str = "no-loss-key";

fn plan(sensors: usize, readings_per_sensor: usize, duplicate_rate: f64, backlog: usize, seed: u64) -> Plan {
    Plan {
        sensors,
        readings_per_sensor,
        duplicate_rate,
        backlog,
        seed,
        start: NaiveDateTime::parse_from_str("2026-05-01 06:00:00", "%Y-%m-%d %H:%M:%S").unwrap(),
        low: None,
        silent: None,
    }
}

/// Sinocare's behaviour (5 s timeout, backoff with jitter) with short waits, so a test's
/// outage is ridden out in seconds rather than minutes.
fn sinocare(base: &str, concurrency: usize) -> SendConfig {
    let mut cfg = SendConfig::new(format!("{base}/sinocare/cgm?key={KEY}"));
    cfg.concurrency = concurrency;
    cfg.backoff_base = Duration::from_millis(100);
    cfg.backoff_max = Duration::from_millis(1_000);
    cfg.max_attempts = 200;
    cfg.give_up_after = Duration::from_secs(180);
    cfg
}

/// The readings table holds exactly the workload's testIds, each with what was sent.
async fn assert_stored_exactly(stack: &Stack, work: &Workload) {
    let items = stack.scan("READINGS_TABLE").await;
    let by_id: HashMap<&str, &Item> = items.iter().filter_map(|i| Some((s(i, "testId")?, i))).collect();
    assert_eq!(by_id.len(), items.len(), "one item per testId");
    assert_eq!(items.len(), work.readings.len(), "exactly the readings sent, no more, no fewer");
    for r in &work.readings {
        let it = by_id
            .get(r.test_id.as_str())
            .unwrap_or_else(|| panic!("testId {} was acknowledged but is not stored", r.test_id));
        assert_eq!(s(it, "testResult"), Some(r.test_result.as_str()), "{}", r.test_id);
        assert_eq!(s(it, "testTime"), Some(r.test_time.as_str()), "{}", r.test_id);
        assert_eq!(n(it, "serialNo"), Some(r.serial_no.to_string().as_str()), "{}", r.test_id);
        assert_eq!(s(it, "deviceSn"), Some(r.device_sn.as_str()), "{}", r.test_id);
        assert_eq!(s(it, "status"), Some(r.status), "{}", r.test_id);
    }
    assert!(stack.scan("CONFLICTS_TABLE").await.is_empty(), "re-sends of one reading are never conflicts");
    assert!(stack.scan("QUARANTINE_TABLE").await.is_empty(), "every simulated body parses");
}

/// The only failures were 503s, each answered: no timeout, no broken connection.
fn assert_only_fast_503s(report: &Report) {
    let e = &report.errors;
    assert_eq!((e.timeout, e.connect, e.transport, e.bad_reply), (0, 0, 0, 0), "{}", report.text());
    assert!(e.nonzero_code.is_empty(), "{}", report.text());
    assert!(e.http_status.keys().all(|s| *s == 503), "{}", report.text());
    assert!(report.latency_ms.max < 5_000.0, "every answer inside Sinocare's 5 s: {}", report.text());
}

async fn wait_for(what: &str, limit: Duration, cond: impl Fn() -> bool) {
    let started = Instant::now();
    while !cond() {
        assert!(started.elapsed() < limit, "waited {limit:?} for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_thousand_readings_with_duplicates_are_each_stored_once() {
    // Given the local stack and 20 sensors' readings, 10% of them sent twice, 250 in a
    // backlog burst
    let stack = Stack::new().await;
    let base = serve_locally(&stack.config(&[("PUSH_KEY", KEY)])).await;
    let work = generate(&plan(20, 250, 0.10, 250, 1)).unwrap();
    assert_eq!((work.readings.len(), work.duplicates()), (5_000, 500));

    // When Sinocare sends them, 32 at a time
    let report = send_all(&work, &sinocare(&base, 32), Arc::new(Counters::default())).await.unwrap();
    eprintln!("{}", report.text());

    // Then every reading and every duplicate was acknowledged (a busy machine may answer a
    // few 503s first: they are re-sent), and stored exactly once
    assert!(report.complete(), "{}", report.text());
    assert_eq!((report.acknowledged, report.duplicates_sent, report.duplicates_acknowledged), (5_000, 500, 500));
    assert_only_fast_503s(&report);
    assert_stored_exactly(&stack, &work).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storage_outage_mid_run_loses_nothing() {
    // Given a file-backed DynamoDB Local of this test's own behind the local stack
    let dir = TempDir::new("outage");
    let path = dir.path().to_path_buf();
    let ddb = tokio::task::spawn_blocking(move || DynamoDbLocal::start(None, Storage::Dir(path)))
        .await
        .unwrap()
        .expect("a DynamoDB Local of this test's own");
    let port = ddb.port();
    let stack = Stack::new_at(&ddb.endpoint()).await;
    let base = serve_locally(&stack.config(&[("PUSH_KEY", KEY)])).await;
    let work = Arc::new(generate(&plan(10, 100, 0.10, 0, 2)).unwrap());
    let counters = Arc::new(Counters::default());

    // When it is killed a third of the way through a run, and started again on the same
    // port and files 3 s later
    let sim = {
        let (work, counters, cfg) = (work.clone(), counters.clone(), sinocare(&base, 16));
        tokio::spawn(async move { send_all(&work, &cfg, counters).await.unwrap() })
    };
    let acked = |c: &Counters| c.acked.load(Ordering::Relaxed);
    wait_for("a third of the readings acknowledged", Duration::from_secs(120), || acked(&counters) >= 330).await;
    let mut ddb = ddb;
    let down_at = Instant::now();
    let acked_before = acked(&counters);
    ddb.stop();
    drop(ddb);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let unavailable_while_down = counters.unavailable.load(Ordering::Relaxed);
    let path = dir.path().to_path_buf();
    let ddb = tokio::task::spawn_blocking(move || DynamoDbLocal::start(Some(port), Storage::Dir(path)))
        .await
        .unwrap()
        .expect("DynamoDB Local restarted on the same port and files");
    let outage = down_at.elapsed();
    let report = sim.await.unwrap();

    // Then the outage was answered with fast 503s, and re-sends got every reading through
    eprintln!(
        "outage: DynamoDB Local down {:.1} s (killed after {acked_before} acknowledged); {} answers 503 in all \
         ({unavailable_while_down} in the first 3 s); max latency {:.0} ms; {} re-sends",
        outage.as_secs_f64(),
        report.errors.http_status.get(&503).copied().unwrap_or(0),
        report.latency_ms.max,
        report.resends,
    );
    eprintln!("{}", report.text());
    assert!(unavailable_while_down > 0, "the outage was seen as 503s");
    assert_only_fast_503s(&report);
    assert!(report.complete(), "{}", report.text());
    assert_eq!(report.acknowledged, 1_000);
    assert_stored_exactly(&stack, &work).await;
    drop(ddb);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_slower_than_the_deadline_is_503_in_time_and_the_resend_is_stored_once() {
    // Given DynamoDB Local behind a proxy that holds every chunk 1.5 s, and a push deadline
    // of 800 ms
    let stack = Stack::new().await;
    let proxy = DelayProxy::start(addr_of(&stack.endpoint)).await;
    let base = serve_locally(&stack.config_at(&proxy.url(), &[("PUSH_KEY", KEY), ("PUSH_DEADLINE_MS", "800")])).await;
    let one = generate(&plan(1, 1, 0.0, 0, 3)).unwrap();
    let http = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
    let url = format!("{base}/sinocare/cgm?key={KEY}");
    let push = || http.post(&url).header("content-type", "application/json").body(one.readings[0].body.clone()).send();
    proxy.set_delay(Duration::from_millis(1_500));

    // When a reading is pushed, the answer is 503 within the deadline
    let started = Instant::now();
    let resp = push().await.unwrap();
    let took = started.elapsed();
    assert_eq!(resp.status(), 503);
    assert_eq!(resp.json::<Value>().await.unwrap()["code"], 503);
    // Storage would take over 3 s (1.5 s each way); the reply comes at the deadline.
    assert!(took < Duration::from_millis(2_000), "answered after {took:?} with a deadline of 800 ms");

    // And once storage is fast again, the re-send is acknowledged and the reading stored once
    // (the slow first write may land too: the conditional put makes it the same item)
    proxy.set_delay(Duration::ZERO);
    let resp = push().await.unwrap();
    assert_eq!((resp.status().as_u16(), resp.json::<Value>().await.unwrap()["code"].as_i64()), (200, Some(0)));
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_stored_exactly(&stack, &one).await;
    eprintln!("slow storage: a single push answered 503 after {} ms (deadline 800 ms)", took.as_millis());

    // And the same for a batch through the simulator, the delay lifted while it re-sends
    let stack = Stack::new().await;
    let proxy = DelayProxy::start(addr_of(&stack.endpoint)).await;
    let base = serve_locally(&stack.config_at(&proxy.url(), &[("PUSH_KEY", KEY), ("PUSH_DEADLINE_MS", "800")])).await;
    let work = Arc::new(generate(&plan(5, 10, 0.1, 0, 4)).unwrap());
    let counters = Arc::new(Counters::default());
    proxy.set_delay(Duration::from_millis(1_500));
    let sim = {
        let (work, counters, cfg) = (work.clone(), counters.clone(), sinocare(&base, 8));
        tokio::spawn(async move { send_all(&work, &cfg, counters).await.unwrap() })
    };
    wait_for("20 answers 503", Duration::from_secs(60), || counters.unavailable.load(Ordering::Relaxed) >= 20).await;
    proxy.set_delay(Duration::ZERO);
    let report = sim.await.unwrap();
    eprintln!("slow storage, simulator:\n{}", report.text());
    assert_only_fast_503s(&report);
    assert!(report.latency_ms.max < 2_500.0, "503s come at the 800 ms deadline, not at the storage's 3 s");
    assert!(report.complete(), "{}", report.text());
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_stored_exactly(&stack, &work).await;
}

#[tokio::test]
async fn partner_upstream_failures_are_502_or_504_naming_the_problem_without_tokens() {
    // Given a user registered through the stand-in, and proxies whose upstream refuses
    // connections, or accepts and hangs up
    let stack = Stack::new().await;
    let fake = FakePartner::start(86_400_000).await;
    let (logs, guard) = capture_logs("trace");
    let upstream = |url: String| {
        vec![
            ("PARTNER_API_BASE_URL", url),
            ("PARTNER_APP_ID", cgm_tests::fake_partner::APP_ID.to_string()),
            ("PARTNER_APP_SECRET", cgm_tests::fake_partner::APP_SECRET.to_string()),
            ("PARTNER_TIMEOUT_MS", "500".to_string()),
        ]
    };
    let serve = |env: Vec<(&'static str, String)>| {
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let cfg = stack.config(&env);
        async move { serve_locally(&cfg).await }
    };
    let good = serve(upstream(fake.uri())).await;
    let refused = serve(upstream(refused_url())).await;
    let reset = serve(upstream(hang_up_url().await)).await;
    let http = reqwest::Client::new();
    let r = http.post(format!("{good}/partner/users")).body(r#"{"partner_uid":"u-upstream"}"#).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let open_id = r.json::<Value>().await.unwrap()["data"]["open_id"].as_str().unwrap().to_string();
    let glucose =
        |base: &str| format!("{base}/partner/users/{open_id}/glucose?start_time={T0}&end_time={}", T0 + 3_600_000);

    // When each kind of failure happens
    let mut replies = Vec::new();
    let cases: [(&str, &str, u16, &str); 5] = [
        ("refused", &refused, 502, "could not be reached"),
        ("reset", &reset, 502, "could not be reached"),
        ("5xx html", &good, 502, "HTTP 502 without a JSON envelope"),
        ("slow", &good, 504, "did not answer within 500 ms"),
        ("malformed", &good, 502, "not JSON"),
    ];
    for (what, base, status, msg) in cases {
        fake.set(|b| {
            b.html = what == "5xx html";
            b.delay = (what == "slow").then_some(Duration::from_secs(2));
            b.raw_body = (what == "malformed").then(|| r#"{"code":0,"data":{"records":[{"#.to_string());
        });
        let started = Instant::now();
        let resp = http.get(glucose(base)).send().await.unwrap();
        let got = resp.status().as_u16();
        let body: Value = resp.json().await.unwrap();
        // Then each is mapped as specified, with a code and a message naming the problem
        assert_eq!((got, body["code"].as_i64()), (status, Some(status as i64)), "{what}: {body}");
        assert!(body["msg"].as_str().is_some_and(|m| m.contains(msg)), "{what}: {body}");
        assert!(started.elapsed() < Duration::from_secs(3), "{what}: took {:?}", started.elapsed());
        replies.push(body.to_string());
    }
    drop(guard);

    // And no token reaches a log line or an error reply
    let text = logs.text();
    assert!(text.contains(r#""route":"user_glucose""#), "logs were captured");
    let tokens = fake.issued_tokens();
    assert!(!tokens.is_empty());
    for t in &tokens {
        assert!(!text.contains(t.as_str()), "a token reached the logs");
        assert!(replies.iter().all(|r| !r.contains(t.as_str())), "a token reached an error reply");
    }
    assert!(!text.contains(cgm_tests::fake_partner::APP_SECRET));
}
