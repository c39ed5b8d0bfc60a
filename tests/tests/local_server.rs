//! The local server behind `make dev`: real HTTP on loopback, the template's routes, the
//! API Gateway event built from the request, and the same push handler.

use cgm_local::server::{self, Router};
use cgm_local::template::Template;
use cgm_tests::*;
use serde_json::{Value, json};
use std::sync::Arc;

async fn start(stack: &Stack, extra: &[(&str, &str)]) -> String {
    let handlers = cgm_local::handlers(&stack.config(extra)).await.unwrap();
    let router =
        Router::new(Template::load_default().unwrap().routes(), &handlers).expect("every template route has a handler");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(server::serve(listener, Arc::new(router)));
    base
}

#[tokio::test]
async fn seed_example_over_http_is_stored() {
    let stack = Stack::new().await;
    let base = start(&stack, &[("PUSH_KEY", "k1")]).await;
    let http = reqwest::Client::new();

    let resp = http
        .post(format!("{base}/sinocare/cgm?key=k1"))
        .header("content-type", "application/json")
        .body(SEED_EXAMPLE)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/json");
    assert_eq!(resp.json::<Value>().await.unwrap(), json!({"code": 0, "msg": ""}));

    let items = stack.scan("READINGS_TABLE").await;
    assert_eq!(items.len(), 1);
    assert_eq!(s(&items[0], "testId"), Some("23434335345"));
    assert!(s(&items[0], "requestId").is_some_and(|r| r.starts_with("local-")), "the request id reaches the handler");

    let wrong = http.post(format!("{base}/sinocare/cgm?key=nope")).body(SEED_EXAMPLE).send().await.unwrap();
    assert_eq!(wrong.status(), 401);
}

#[tokio::test]
async fn the_source_address_is_the_peer() {
    let stack = Stack::new().await;
    let http = reqwest::Client::new();
    let base = start(&stack, &[("ALLOWED_SOURCE_CIDRS", "127.0.0.0/8")]).await;
    let ok = http.post(format!("{base}/sinocare/cgm")).body(SEED_EXAMPLE).send().await.unwrap();
    assert_eq!(ok.status(), 200);
    let base = start(&stack, &[("ALLOWED_SOURCE_CIDRS", "203.0.113.0/24")]).await;
    let denied = http.post(format!("{base}/sinocare/cgm")).body(SEED_EXAMPLE).send().await.unwrap();
    assert_eq!(denied.status(), 403);
}

#[tokio::test]
async fn unknown_routes_and_huge_bodies_get_api_gateways_answers() {
    let stack = Stack::new().await;
    let base = start(&stack, &[]).await;
    let http = reqwest::Client::new();
    assert_eq!(http.get(format!("{base}/nope")).send().await.unwrap().status(), 404);
    assert_eq!(http.get(format!("{base}/sinocare/cgm")).send().await.unwrap().status(), 404, "only POST is routed");
    let big = vec![b'x'; 11 * 1024 * 1024];
    assert_eq!(http.post(format!("{base}/sinocare/cgm")).body(big).send().await.unwrap().status(), 413);
    let binary = http.post(format!("{base}/sinocare/cgm")).body(vec![0xff, 0xfe, 0x00]).send().await.unwrap();
    assert_eq!(binary.status(), 200, "a binary body reaches the handler (base64 in the event) and is quarantined");
    let q = stack.scan("QUARANTINE_TABLE").await;
    assert_eq!(q[0]["body"].as_b().unwrap().as_ref(), &[0xff, 0xfe, 0x00]);
}
