//! Sensor sessions and alerts end to end against DynamoDB Local's own stream: readings
//! pushed through the push route, the consumer as `make dev` runs it, its events in the
//! local sink (there is no local EventBridge), the scheduled check run at chosen instants.

use cgm_domain::session::Session;
use cgm_domain::time::Timestamp;
use cgm_shared::store::sensors::dynamodb::session_of;
use cgm_tests::{Stack, seed_with, serve_locally};
use serde_json::{Value, json};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

const MIN: i64 = 60_000;

/// The seed's personal values: none may reach an event.
const PERSONAL: [&str; 5] = ["430424", "1234321", "张三", "12343211", "\"12\""];

struct Env {
    stack: Stack,
    base: String,
    consumer: std::sync::Arc<cgm_events::Service<cgm_events::sink::MemorySink>>,
    running: tokio::task::JoinHandle<anyhow::Result<()>>,
    http: reqwest::Client,
}

impl Env {
    async fn new() -> Self {
        let stack = Stack::new().await;
        let cfg = stack.config(&[]);
        let base = serve_locally(&cfg).await;
        let consumer = cgm_local::stream_consumer(&cfg).await.expect("a stream consumer");
        let service = consumer.service();
        let running = tokio::spawn(consumer.run());
        Env { stack, base, consumer: service, running, http: reqwest::Client::new() }
    }

    /// Pushes one reading of `sn` measured at `at` (UTC ms), its serial number `serial`.
    async fn push(&self, sn: &str, serial: u64, at: i64, mmol: f64) {
        let local = chrono::DateTime::from_timestamp_millis(at).unwrap() + chrono::Duration::hours(8);
        let body = seed_with(json!({
            "testId": format!("{sn}-{serial}"), "deviceSn": sn, "serialNo": serial, "status": "0",
            "testTime": local.format("%Y-%m-%d %H:%M:%S").to_string(), "testResult": format!("{mmol:.1}"),
            "increMinute": 3, "cgmDay": 14,
        }));
        let r = self.http.post(format!("{}/sinocare/cgm", self.base)).body(body).send().await.expect("push");
        assert_eq!(r.status().as_u16(), 200);
    }

    /// The events taken so far, as (detail-type, detail).
    fn events(&self) -> Vec<(String, Value)> {
        self.consumer
            .sink()
            .taken()
            .into_iter()
            .map(|e| (e.detail_type, serde_json::from_str(&e.detail).unwrap()))
            .collect()
    }

    /// Waits until `sn`'s last serial is `last` and its outbox is sent.
    async fn drained(&self, sn: &str, last: u64) -> Session {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let sessions: Vec<Session> = self.stack.scan("SENSORS_TABLE").await.iter().filter_map(session_of).collect();
            if let Some(s) = sessions
                .into_iter()
                .find(|s| s.device_sn.as_str() == sn && s.last.serial_no == Some(last) && s.outbox.is_empty())
            {
                return s;
            }
            assert!(Instant::now() < deadline, "{sn}: the stream was not drained in 60 s: {:#?}", self.events());
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

fn kinds(events: &[(String, Value)], sn: &str) -> Vec<String> {
    events
        .iter()
        .filter(|(_, d)| d["device_sn"] == sn)
        .map(|(t, d)| match d["kind"].as_str() {
            Some(k) => format!("{t}:{k}"),
            None => t.clone(),
        })
        .collect()
}

#[tokio::test]
async fn a_low_pushed_through_the_route_opens_and_resolves_an_alert_and_a_replayed_stream_raises_nothing() {
    // Given a live sensor: three readings a few minutes old, the middle one 2.6 mmol/L
    let env = Env::new().await;
    let now = Timestamp::now().ms() / 1000 * 1000;
    for (i, v) in [6.0, 2.6, 6.2].into_iter().enumerate() {
        env.push("SN-LOW", i as u64 + 1, now - (6 - 3 * i as i64) * MIN, v).await;
    }

    // When the stream has been drained
    let session = env.drained("SN-LOW", 3).await;

    // Then the sensor started, urgent low opened at once and resolved with the next reading
    let events = env.events();
    assert_eq!(
        kinds(&events, "SN-LOW"),
        ["cgm.sensor.started", "cgm.alert.opened:urgent_low", "cgm.alert.resolved:urgent_low"],
        "{events:#?}"
    );
    let opened = &events[1].1;
    assert_eq!((opened["level"].as_u64(), opened["value_mmol"].as_f64()), (Some(2), Some(2.6)));
    assert_eq!(opened["customer_name"], "测试医院");
    assert_eq!(opened["at"].as_i64(), Some(now - 3 * MIN));
    assert_eq!(events[2].1["alert_id"], opened["alert_id"], "one episode");
    let text = format!("{events:?}");
    for p in PERSONAL {
        assert!(!text.contains(p), "a personal value reached an event: {p}");
    }
    assert_eq!((session.first.serial_no, session.cgm_day, session.active()), (Some(1), Some(14), true));
    assert!(session.alerts.is_empty(), "nothing open: {:?}", session.alerts);

    // And the whole stream read again by a new consumer (as after a redelivery) sends nothing
    env.running.abort();
    let again = cgm_local::stream_consumer(&env.stack.config(&[])).await.expect("a consumer");
    let service = again.service();
    let replay = tokio::spawn(again.run());
    tokio::time::sleep(Duration::from_secs(3)).await;
    replay.abort();
    assert!(service.sink().taken().is_empty(), "{:?}", service.sink().taken());
    let after: Vec<Session> = env.stack.scan("SENSORS_TABLE").await.iter().filter_map(session_of).collect();
    assert_eq!(after, vec![session], "the session did not move");
}

#[tokio::test]
async fn a_backlog_burst_updates_the_session_but_raises_no_alert() {
    // Given a sensor that re-sends two hours of low readings after a reconnect
    let env = Env::new().await;
    let now = Timestamp::now().ms() / 1000 * 1000;
    for i in 0..40u64 {
        env.push("SN-BACKLOG", i + 1, now - 3 * 3_600_000 + i as i64 * 3 * MIN, 2.5).await;
    }

    // When the stream has been drained
    let session = env.drained("SN-BACKLOG", 40).await;

    // Then the session holds them all, and the only event is the sensor's start
    assert_eq!(kinds(&env.events(), "SN-BACKLOG"), ["cgm.sensor.started"]);
    assert!(session.alerts.values().all(|a| a.open.is_none()), "{:?}", session.alerts);
    assert_eq!(session.last.serial_no, Some(40));
    env.running.abort();
}

#[tokio::test]
async fn a_silent_sensor_raises_signal_lost_once_and_it_resolves_when_readings_come_back() {
    // Given a sensor whose last reading is a minute old
    let env = Env::new().await;
    let now = Timestamp::now().ms() / 1000 * 1000;
    env.push("SN-SILENT", 1, now - MIN, 6.0).await;
    env.drained("SN-SILENT", 1).await;

    // When the scheduled check runs 25 and 26 minutes later
    let first = env.consumer.check(Timestamp::from_ms(now + 24 * MIN)).await.expect("a check");
    let second = env.consumer.check(Timestamp::from_ms(now + 25 * MIN)).await.expect("a check");

    // Then signal lost opens once
    assert_eq!((first.active, first.events, second.events), (1, 1, 0));
    assert_eq!(kinds(&env.events(), "SN-SILENT"), ["cgm.sensor.started", "cgm.alert.opened:signal_lost"]);
    let opened = env.events()[1].1.clone();
    assert_eq!(opened["opened_at"].as_i64(), Some(now - MIN + 20 * MIN), "lost 20 minutes after the last reading");

    // And the next reading resolves it
    env.push("SN-SILENT", 2, now + 2 * MIN, 6.1).await;
    env.drained("SN-SILENT", 2).await;
    let events = env.events();
    assert_eq!(
        kinds(&events, "SN-SILENT"),
        ["cgm.sensor.started", "cgm.alert.opened:signal_lost", "cgm.alert.resolved:signal_lost"]
    );
    assert_eq!(events[2].1["alert_id"], opened["alert_id"]);
    env.running.abort();
}

#[tokio::test]
async fn events_the_bus_refuses_fail_their_records_and_come_again_with_the_same_ids() {
    // Given a bus that refuses the first three entries it is sent (as PutEvents reports
    // failed entries inside a 200)
    let (logs, guard) = cgm_tests::capture_logs("info");
    let env = Env::new().await;
    env.consumer.sink().refuse.store(3, Ordering::SeqCst);
    let now = Timestamp::now().ms() / 1000 * 1000;

    // When an urgent low is pushed
    env.push("SN-RETRY", 1, now - 2 * MIN, 2.4).await;
    env.drained("SN-RETRY", 1).await;

    // Then the records were retried from the stream until every event was taken: each
    // exactly once (the outbox keeps what the bus did not take; a retry sends only that)
    let events = env.events();
    let mut seen = std::collections::BTreeSet::new();
    let unique: Vec<(String, Value)> =
        events.iter().filter(|(_, d)| seen.insert(d["id"].to_string())).cloned().collect();
    let mut kinds_once = kinds(&unique, "SN-RETRY");
    kinds_once.sort();
    assert_eq!(kinds_once, ["cgm.alert.opened:urgent_low", "cgm.sensor.started"], "{events:#?}");
    assert_eq!(events.len(), unique.len(), "nothing sent twice: {events:#?}");
    assert_eq!(env.consumer.sink().refuse.load(Ordering::SeqCst), 0, "the refusals were used up");
    let rollups = env.stack.scan("ROLLUPS_TABLE").await;
    assert_eq!(rollups.len(), 1, "the rollup step was not held up");
    env.running.abort();
    drop(guard);

    // And the template's alerts-delayed metric counts the batches that failed records, and
    // only those, from the consumer's own log lines
    let lines: Vec<Value> = logs.text().lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    let batches: Vec<&Value> = lines.iter().filter(|l| l["message"] == "stream batch").collect();
    let failing: Vec<bool> = batches.iter().map(|l| l["failed_records"].as_u64().unwrap_or(0) > 0).collect();
    assert!(
        failing.contains(&true) && failing.contains(&false),
        "batches that failed and one that did not: {batches:#?}"
    );
    let filters: Vec<_> = cgm_local::template::Template::load_default()
        .expect("infra/template.yaml")
        .metric_filters()
        .into_iter()
        .filter(|f| f.log_group.as_deref() == Some("EventsFunctionLogGroup") && f.metric == "StreamBatchesRetried")
        .collect();
    assert_eq!(filters.len(), 1, "the alerts-delayed alarm's filter: {filters:?}");
    let pattern = cgm_tests::filter_pattern::FilterPattern::parse(&filters[0].pattern).unwrap();
    let matched: Vec<bool> = batches.iter().map(|l| pattern.matches(l)).collect();
    assert_eq!(matched, failing, "{} over the stream batch lines", filters[0].pattern);
    for l in batches.iter().filter(|l| l["failed_records"].as_u64().unwrap_or(0) > 0) {
        assert_eq!(l["level"], "WARN", "a failing batch is a warning: {l}");
    }
}
