//! Where the push key goes: from `CGM_SIM_PUSH_KEY` into the `x-api-key` header, or in the
//! URL as before; never into what cgm-sim prints. Against a stand-in push route on loopback.

use cgm_sim::send::{Counters, SendConfig, api_key, send_all};
use cgm_sim::{Plan, generate};
use std::process::Output;
use std::sync::Arc;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const CGM_SIM: &str = env!("CARGO_BIN_EXE_cgm-sim");

/// A push route that acknowledges everything and remembers what it got.
async fn push_route() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/sinocare/cgm"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({"code": 0, "msg": ""})))
        .mount(&server)
        .await;
    server
}

/// (x-api-key header, key= query parameter) of each request the route got.
async fn keys_seen(server: &MockServer) -> Vec<(Option<String>, Option<String>)> {
    let requests = server.received_requests().await.unwrap_or_default();
    requests
        .iter()
        .map(|r| {
            let header = r.headers.get("x-api-key").map(|v| v.to_str().unwrap_or("?").to_string());
            let query = r.url.query_pairs().find(|(k, _)| k == "key").map(|(_, v)| v.into_owned());
            (header, query)
        })
        .collect()
}

async fn cgm_sim(url: String, env_key: Option<&'static str>) -> Output {
    tokio::task::spawn_blocking(move || {
        let mut cmd = std::process::Command::new(CGM_SIM);
        cmd.args(["--url", &url, "--sensors", "1", "--readings-per-sensor", "3", "--duplicate-rate", "0"])
            .args(["--seed", "7", "--max-attempts", "1"])
            .env_remove("CGM_SIM_PUSH_KEY");
        if let Some(k) = env_key {
            cmd.env("CGM_SIM_PUSH_KEY", k);
        }
        cmd.output().expect("cgm-sim runs")
    })
    .await
    .unwrap()
}

fn printed(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configured_key_goes_in_the_header_and_none_means_no_header() {
    let plan = Plan {
        sensors: 1,
        readings_per_sensor: 2,
        duplicate_rate: 0.0,
        backlog: 0,
        seed: 1,
        start: chrono::NaiveDateTime::parse_from_str("2026-03-01 08:00:00", "%Y-%m-%d %H:%M:%S").unwrap(),
        low: None,
        silent: None,
    };
    let work = generate(&plan).unwrap();
    let send = |server: &MockServer, key: Option<&str>| {
        let mut cfg = SendConfig::new(format!("{}/sinocare/cgm", server.uri()));
        cfg.max_attempts = 1;
        cfg.api_key = key.map(|k| api_key(k).unwrap());
        assert!(key.is_none_or(|k| !format!("{cfg:?}").contains(k)), "{cfg:?}");
        let work = work.clone();
        async move { send_all(&work, &cfg, Arc::new(Counters::default())).await.unwrap() }
    };

    let open = push_route().await;
    let report = send(&open, None).await;
    assert!(report.complete(), "{}", report.text());
    assert_eq!(keys_seen(&open).await, vec![(None, None); 2]);

    let keyed = push_route().await;
    let report = send(&keyed, Some("k-header")).await;
    assert!(report.complete(), "{}", report.text());
    assert_eq!(keys_seen(&keyed).await, vec![(Some("k-header".to_string()), None); 2]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cgm_sim_sends_the_environments_key_as_x_api_key_and_never_prints_it() {
    // Given a push route and the key in CGM_SIM_PUSH_KEY only
    let server = push_route().await;
    let o = cgm_sim(format!("{}/sinocare/cgm", server.uri()), Some("canary-env-key-1")).await;

    // Then every reading was sent with it in the header, and no output shows it
    eprintln!("cgm-sim with CGM_SIM_PUSH_KEY:\n{}", printed(&o));
    assert_eq!(o.status.code(), Some(0), "{}", printed(&o));
    assert_eq!(keys_seen(&server).await, vec![(Some("canary-env-key-1".to_string()), None); 3]);
    assert!(!printed(&o).contains("canary-env-key-1"), "{}", printed(&o));
    assert!(printed(&o).contains("with the key from CGM_SIM_PUSH_KEY"), "{}", printed(&o));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_in_the_url_still_works_and_is_printed_hidden() {
    let server = push_route().await;
    let o = cgm_sim(format!("{}/sinocare/cgm?key=canary-url-key-2", server.uri()), None).await;
    eprintln!("cgm-sim with ?key=:\n{}", printed(&o));
    assert_eq!(o.status.code(), Some(0), "{}", printed(&o));
    assert_eq!(keys_seen(&server).await, vec![(None, Some("canary-url-key-2".to_string())); 3]);
    assert!(!printed(&o).contains("canary-url-key-2"), "{}", printed(&o));
    assert!(printed(&o).contains("key=***"), "{}", printed(&o));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_in_both_places_is_a_usage_error_and_sends_nothing() {
    let server = push_route().await;
    let o = cgm_sim(format!("{}/sinocare/cgm?key=canary-url-key-3", server.uri()), Some("canary-env-key-3")).await;
    eprintln!("cgm-sim with both:\n{}", printed(&o));
    assert_eq!(o.status.code(), Some(2), "{}", printed(&o));
    assert!(keys_seen(&server).await.is_empty(), "nothing sent");
    assert!(printed(&o).contains("given twice"), "{}", printed(&o));
    assert!(!printed(&o).contains("canary-"), "{}", printed(&o));
}
