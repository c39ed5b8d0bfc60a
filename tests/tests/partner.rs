//! The partner proxy against a stand-in Partner API on loopback that checks the signature
//! and bearer of every request, with tokens kept in DynamoDB Local.

use cgm_edge::HttpService;
use cgm_partner::PartnerService;
use cgm_partner::tokens::dynamodb::DynamoTokenStore;
use cgm_tests::fake_partner::{FakePartner, MINUTE, T0};
use cgm_tests::*;
use serde_json::{Value, json};
use std::collections::HashSet;
use std::time::{Duration, Instant};

const DAY: i64 = 86_400_000;

struct Proxy {
    stack: Stack,
    fake: FakePartner,
    svc: PartnerService<DynamoTokenStore>,
}

impl Proxy {
    async fn new(span_ms: i64, extra: &[(&str, &str)]) -> Self {
        let stack = Stack::new().await;
        let fake = FakePartner::start(span_ms).await;
        let svc = Self::service(&stack, &fake, extra).await;
        Proxy { stack, fake, svc }
    }

    async fn service(stack: &Stack, fake: &FakePartner, extra: &[(&str, &str)]) -> PartnerService<DynamoTokenStore> {
        let env = fake.env();
        let mut all: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        all.extend_from_slice(extra);
        cgm_partner::from_config(&stack.config(&all)).await.expect("partner service")
    }

    async fn call(
        &self,
        method: &str,
        route: &str,
        path: &str,
        params: &[(&str, &str)],
        query: &str,
        body: Option<&str>,
    ) -> (u16, Value) {
        reply_of(&self.svc.handle(api_request(method, route, path, params, query, body)).await)
    }

    async fn register(&self, uid: &str) -> String {
        let (status, r) = self
            .call(
                "POST",
                "/partner/users",
                "/partner/users",
                &[],
                "",
                Some(&json!({"partner_uid": uid, "region": "CN"}).to_string()),
            )
            .await;
        assert_eq!(status, 200, "{r}");
        r["data"]["open_id"].as_str().unwrap().to_string()
    }

    async fn user_glucose(&self, open_id: &str, query: &str) -> (u16, Value) {
        let path = format!("/partner/users/{open_id}/glucose");
        self.call("GET", "/partner/users/{open_id}/glucose", &path, &[("open_id", open_id)], query, None).await
    }

    async fn all_pages(&self, open_id: &str, range: &str, limit: usize) -> (Vec<Value>, usize) {
        let mut records = Vec::new();
        let mut cursor: Option<String> = None;
        let mut pages = 0;
        loop {
            let q = match &cursor {
                Some(c) => format!("{range}&limit={limit}&cursor={c}"),
                None => format!("{range}&limit={limit}"),
            };
            let (status, r) = self.user_glucose(open_id, &q).await;
            assert_eq!(status, 200, "{r}");
            assert!(r.to_string().len() < 6_000_000, "a page stays under Lambda's 6 MB");
            let page = r["data"]["records"].as_array().unwrap();
            assert!(page.len() <= limit);
            records.extend(page.iter().cloned());
            pages += 1;
            match r["data"]["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => return (records, pages),
            }
        }
    }

    fn assert_clean(&self) {
        assert_eq!(
            self.fake.violations(),
            Vec::<String>::new(),
            "every upstream request was signed and carried the right bearer"
        );
    }
}

fn range(start: i64, end: i64) -> String {
    format!("start_time={start}&end_time={end}")
}

#[tokio::test]
async fn register_then_query() {
    let p = Proxy::new(DAY, &[]).await;
    let (status, r) =
        p.call("POST", "/partner/users", "/partner/users", &[], "", Some(r#"{"partner_uid":"u-1"}"#)).await;
    assert_eq!(status, 200);
    assert_eq!(r["code"], 0);
    let open_id = r["data"]["open_id"].as_str().unwrap();
    assert!(
        r["data"]["access_token"].as_str().is_some_and(|t| t.starts_with("tok-")),
        "the company's app gets the token"
    );
    assert!(r["data"]["expire_in"].as_i64().is_some_and(|e| (7190..=7200).contains(&e)));

    let (status, r) = p.user_glucose(open_id, &range(T0, T0 + 3 * 60 * MINUTE - 1)).await;
    assert_eq!(status, 200, "{r}");
    let records = r["data"]["records"].as_array().unwrap();
    assert_eq!(records.len(), 60);
    assert_eq!(records[0]["vendor_extra"], json!({"k": 0}), "records pass through unchanged");
    assert!(r["data"]["next_cursor"].is_null());
    assert_eq!(p.fake.calls("/partner/v1/user/token"), 0);
    p.assert_clean();
}

#[tokio::test]
async fn a_token_expiring_between_calls_is_refreshed_first() {
    let p = Proxy::new(DAY, &[]).await;
    p.fake.set(|b| b.expire_in = 30); // inside the 60 s refresh margin from the start
    let open_id = p.register("u-exp").await;
    p.fake.set(|b| b.expire_in = 7200);

    let (status, _) = p.user_glucose(&open_id, &range(T0, T0 + DAY - 1)).await;
    assert_eq!(status, 200);
    assert_eq!(p.fake.calls("/partner/v1/user/token"), 1, "refreshed through get-token with the held bearer");
    let (status, _) = p.user_glucose(&open_id, &range(T0, T0 + DAY - 1)).await;
    assert_eq!(status, 200);
    assert_eq!(p.fake.calls("/partner/v1/user/token"), 1, "the new token is used, not refreshed again");
    p.assert_clean();
}

#[tokio::test]
async fn unauthorized_then_success_after_one_refresh() {
    let p = Proxy::new(DAY, &[]).await;
    let open_id = p.register("u-1001").await;
    p.fake.revoke_all();

    let (status, r) = p.user_glucose(&open_id, &range(T0, T0 + DAY - 1)).await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(p.fake.calls("/partner/v1/user/token"), 1);
    assert_eq!(p.fake.calls("/partner/v1/user/glucose"), 2, "one call refused, one retry");
    p.assert_clean();
}

#[tokio::test]
async fn get_token_refused_means_registering_again() {
    let p = Proxy::new(DAY, &[]).await;
    let open_id = p.register("u-rereg").await;
    p.fake.revoke_all();
    p.fake.set(|b| {
        b.refuse_refresh = true;
        b.new_open_id_on_register = true;
    });

    let (status, r) = p.user_glucose(&open_id, &range(T0, T0 + DAY - 1)).await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(p.fake.calls("/partner/v1/user/register"), 2, "registered again with the stored partner_uid");
    assert_eq!(r["data"]["records"].as_array().unwrap().len(), 480);

    // The new open_id is recorded, and the old one keeps working through it.
    let tokens = p.stack.scan("TOKENS_TABLE").await;
    let new_id =
        tokens.iter().find_map(|t| s(t, "currentOpenId").filter(|c| *c != open_id)).expect("new open_id recorded");
    assert!(tokens.iter().any(|t| s(t, "openId") == Some(new_id)), "{tokens:?}");
    let (status, _) = p.user_glucose(&open_id, &range(T0, T0 + DAY - 1)).await;
    assert_eq!(status, 200);
    p.assert_clean();
}

#[tokio::test]
async fn permission_denied_is_403_without_retry() {
    let p = Proxy::new(DAY, &[]).await;
    let open_id = p.register("u-1002").await;
    let denied = open_id.clone();
    p.fake.set(|b| b.denied = vec![denied]);

    let (status, r) = p.user_glucose(&open_id, &range(T0, T0 + DAY - 1)).await;
    assert_eq!(status, 403);
    assert_eq!((r["code"].as_i64(), r["msg"].as_str()), (Some(1002), Some("permission denied")));
    assert_eq!(p.fake.calls("/partner/v1/user/glucose"), 1);
    assert_eq!(p.fake.calls("/partner/v1/user/token"), 0);
}

#[tokio::test]
async fn seventy_five_days_are_three_windows_and_an_edge_duplicate_appears_once() {
    let p = Proxy::new(80 * DAY, &[]).await;
    let open_id = p.register("u-75").await;
    // The vendor returns, with each window, the reading just before its start too.
    p.fake.set(|b| b.overlap_minutes = 3);

    let (records, _) = p.all_pages(&open_id, &range(T0, T0 + 75 * DAY - 1), 5_000).await;

    let mut windows = p.fake.glucose_windows();
    windows.sort();
    windows.dedup();
    assert_eq!(windows.len(), 3, "{windows:?}");
    assert!(windows.iter().all(|(s, e)| e - s <= 30 * DAY));
    assert_eq!((windows[0].0, windows[2].1), (T0, T0 + 75 * DAY - 1), "the windows cover the range");
    assert_eq!(records.len(), (75 * DAY / (3 * MINUTE)) as usize, "every reading once");
    let keys: HashSet<i64> = records.iter().map(|r| r["package_num"].as_i64().unwrap()).collect();
    assert_eq!(keys.len(), records.len(), "no duplicate across a window edge");
    assert!(
        records.windows(2).all(|w| w[0]["measured_at"].as_i64() < w[1]["measured_at"].as_i64()),
        "sorted by measured_at"
    );
    p.assert_clean();
}

#[tokio::test]
async fn ninety_days_of_three_minute_records_paged_to_the_end() {
    let p = Proxy::new(90 * DAY, &[]).await;
    let open_id = p.register("u-90").await;

    let (records, pages) = p.all_pages(&open_id, &range(T0, T0 + 90 * DAY - 1), 5_000).await;

    assert_eq!(records.len(), 43_200);
    assert_eq!(pages, 9);
    let keys: HashSet<i64> = records.iter().map(|r| r["package_num"].as_i64().unwrap()).collect();
    assert_eq!(keys.len(), 43_200, "every record exactly once");
    assert_eq!(*keys.iter().min().unwrap(), 1);
    assert_eq!(*keys.iter().max().unwrap(), 43_200);
    p.assert_clean();
}

#[tokio::test]
async fn empty_records_are_an_empty_page() {
    let p = Proxy::new(DAY, &[]).await;
    let open_id = p.register("u-empty").await;
    p.fake.set(|b| b.empty = true);
    let (status, r) = p.user_glucose(&open_id, &range(T0, T0 + 60 * DAY)).await;
    assert_eq!(status, 200);
    assert_eq!(r["data"]["records"], json!([]));
    assert!(r["data"]["next_cursor"].is_null());
}

#[tokio::test]
async fn a_slow_upstream_is_504_within_the_configured_timeout() {
    let p = Proxy::new(DAY, &[("PARTNER_TIMEOUT_MS", "300")]).await;
    let open_id = p.register("u-slow").await;
    p.fake.set(|b| b.delay = Some(Duration::from_secs(3)));
    let started = Instant::now();
    let (status, r) = p.user_glucose(&open_id, &range(T0, T0 + DAY)).await;
    assert_eq!(status, 504, "{r}");
    assert_eq!(r["code"], 504);
    assert!(started.elapsed() < Duration::from_millis(2_500), "answered after {:?}", started.elapsed());
}

#[tokio::test]
async fn malformed_upstream_answers_are_502_naming_the_problem() {
    let p = Proxy::new(DAY, &[]).await;
    let open_id = p.register("u-bad").await;
    p.fake.set(|b| b.raw_body = Some(r#"{"code":0,"data":{"records":[{"#.into()));
    let (status, r) = p.user_glucose(&open_id, &range(T0, T0 + DAY)).await;
    assert_eq!((status, r["code"].as_i64()), (502, Some(502)));
    assert!(r["msg"].as_str().unwrap().contains("not JSON"), "{r}");

    p.fake.set(|b| {
        b.raw_body = None;
        b.html = true;
    });
    let (status, r) = p.user_glucose(&open_id, &range(T0, T0 + DAY)).await;
    assert_eq!(status, 502);
    assert!(r["msg"].as_str().unwrap().contains("HTTP 502"), "{r}");
}

#[tokio::test]
async fn device_lookups_with_and_without_open_id() {
    let proxy = Proxy::new(2 * DAY, &[]).await;
    let p = &proxy;
    let open_id = p.register("u-dev").await;
    let info = |q: String| async move {
        p.call("GET", "/partner/devices/{device_sn}", "/partner/devices/DEV-1", &[("device_sn", "DEV-1")], &q, None)
            .await
    };
    let glucose = |q: String| async move {
        p.call(
            "GET",
            "/partner/devices/{device_sn}/glucose",
            "/partner/devices/DEV-1/glucose",
            &[("device_sn", "DEV-1")],
            &q,
            None,
        )
        .await
    };

    // Without an open_id and with no owner learned yet: a 400 that says what to do.
    let (status, r) = glucose(String::new()).await;
    assert_eq!(status, 400);
    assert!(r["msg"].as_str().unwrap().contains("open_id"), "{r}");

    // With one: the device's information, and its owner is learned.
    let (status, r) = info(format!("open_id={open_id}")).await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["data"]["status"], 2);
    assert_eq!(r["data"]["open_id"], open_id.as_str());

    // Now without: the owner's token; the whole history (no range), paged.
    let (status, r) = glucose("limit=500".into()).await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["data"]["records"].as_array().unwrap().len(), 500);
    assert_eq!(r["data"]["open_id"], open_id.as_str());
    let mut total = 500;
    let mut cursor = r["data"]["next_cursor"].as_str().map(str::to_string);
    while let Some(c) = cursor {
        let (status, r) = glucose(format!("limit=500&cursor={c}")).await;
        assert_eq!(status, 200);
        total += r["data"]["records"].as_array().unwrap().len();
        cursor = r["data"]["next_cursor"].as_str().map(str::to_string);
    }
    assert_eq!(total, 960, "two days of 3-minute readings");

    // With a range.
    let (status, r) = glucose(format!("{}&open_id={open_id}", range(T0, T0 + 60 * MINUTE - 1))).await;
    assert_eq!(status, 200);
    assert_eq!(r["data"]["records"].as_array().unwrap().len(), 20);
    p.assert_clean();
}

#[tokio::test]
async fn bad_input_gets_a_clear_400() {
    let p = Proxy::new(DAY, &[]).await;
    let open_id = p.register("u-400").await;
    let other_cursor = {
        let (_, r) = p.user_glucose(&open_id, &format!("{}&limit=1", range(T0, T0 + DAY))).await;
        r["data"]["next_cursor"].as_str().unwrap().to_string()
    };
    let cases = [
        ("end_time=5", "start_time is required"),
        ("start_time=5", "end_time is required"),
        ("start_time=abc&end_time=5", "start_time must be a whole number"),
        ("start_time=-5&end_time=5", "start_time must not be negative"),
        ("start_time=10&end_time=5", "start_time is after end_time"),
        (&format!("start_time=0&end_time={}", 367 * DAY), "longer than the 366 days"),
        ("start_time=0&end_time=5&limit=0", "limit must be"),
        ("start_time=0&end_time=5&limit=5001", "limit must be"),
        ("start_time=0&end_time=5&limit=ten", "limit must be"),
        ("start_time=0&end_time=5&cursor=%%%", "cursor is malformed"),
        (&format!("start_time=0&end_time=5&cursor={other_cursor}"), "cursor belongs to a different query"),
    ];
    for (q, want) in cases {
        let (status, r) = p.user_glucose(&open_id, q).await;
        assert_eq!(status, 400, "{q}: {r}");
        assert!(r["msg"].as_str().unwrap().contains(want), "{q}: {r}");
    }
    let (status, r) = p
        .call(
            "GET",
            "/partner/users/{open_id}/glucose",
            "/partner/users/ /glucose",
            &[("open_id", " ")],
            "start_time=0&end_time=5",
            None,
        )
        .await;
    assert_eq!((status, r["msg"].as_str()), (400, Some("open_id is empty")));
    for body in ["", "[]", r#"{"partner_uid":""}"#, r#"{"region":"CN"}"#, r#"{"partner_uid":"u","region":5}"#] {
        let (status, _) = p.call("POST", "/partner/users", "/partner/users", &[], "", Some(body)).await;
        assert_eq!(status, 400, "{body}");
    }
    let (status, r) = p.user_glucose("never-registered", &range(0, 5)).await;
    assert_eq!(status, 404, "{r}");
}

#[tokio::test]
async fn forced_refresh_returns_the_new_token() {
    let p = Proxy::new(DAY, &[]).await;
    let open_id = p.register("u-refresh").await;
    let path = format!("/partner/users/{open_id}/token");
    let (status, r) = p.call("POST", "/partner/users/{open_id}/token", &path, &[("open_id", &open_id)], "", None).await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["data"]["open_id"], open_id.as_str());
    assert_eq!(p.fake.calls("/partner/v1/user/token"), 1);
    let issued = p.fake.issued_tokens();
    assert_eq!(r["data"]["access_token"], issued.last().unwrap().as_str());
    p.assert_clean();
}

#[tokio::test]
async fn tokens_never_reach_logs_or_error_replies() {
    let p = Proxy::new(DAY, &[]).await;
    let (logs, guard) = capture_logs("trace");
    let open_id = p.register("u-canary").await;
    p.fake.revoke_all();
    let mut replies = Vec::new();
    replies.push(p.user_glucose(&open_id, &range(T0, T0 + DAY)).await);
    p.fake.set(|b| b.denied = vec![open_id.clone()]);
    replies.push(p.user_glucose(&open_id, &range(T0, T0 + DAY)).await);
    p.fake.set(|b| b.html = true);
    replies.push(p.user_glucose(&open_id, &range(T0, T0 + DAY)).await);
    drop(guard);

    let text = logs.text();
    assert!(text.contains(r#""message":"partner""#), "logs were captured");
    let errors: Vec<String> = replies.iter().filter(|(s, _)| *s != 200).map(|(_, r)| r.to_string()).collect();
    assert_eq!(errors.len(), 2);
    for token in p.fake.issued_tokens() {
        assert!(!text.contains(&token), "a token reached the logs");
        assert!(errors.iter().all(|e| !e.contains(&token)), "a token reached an error reply");
    }
    assert!(!text.contains(cgm_tests::fake_partner::APP_SECRET));
}

#[tokio::test]
async fn a_token_survives_a_cold_start() {
    let p = Proxy::new(DAY, &[]).await;
    let open_id = p.register("u-cold").await;
    // A second instance: nothing cached, the token comes from DynamoDB.
    let other = Proxy::service(&p.stack, &p.fake, &[]).await;
    let r = reply_of(
        &other
            .handle(api_request(
                "GET",
                "/partner/users/{open_id}/glucose",
                "/x",
                &[("open_id", &open_id)],
                &range(T0, T0 + DAY - 1),
                None,
            ))
            .await,
    );
    assert_eq!(r.0, 200);
    assert_eq!(p.fake.calls("/partner/v1/user/token"), 0);
}
