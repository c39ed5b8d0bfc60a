//! Hostile input over real HTTP through the local server: ids built to break keys, logs and
//! parsers, ids far too long, a flood without the key, bodies over the limit, and canary
//! values on every route of the template that must never surface in a log line or an
//! error reply.

use cgm_domain::push::MAX_BODY_BYTES;
use cgm_local::template::Template;
use cgm_tests::fake_partner::{self, FakePartner, T0};
use cgm_tests::net::refused_url;
use cgm_tests::*;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::Duration;

const KEY: &str = "hostile-key";
const DAY: i64 = 86_400_000;

async fn push(http: &reqwest::Client, base: &str, query: &str, body: impl Into<reqwest::Body>) -> (u16, Value) {
    let resp = http
        .post(format!("{base}/sinocare/cgm?{query}"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("the local server answers");
    let status = resp.status().as_u16();
    (status, resp.json().await.expect("a JSON reply"))
}

fn code0() -> (u16, Value) {
    (200, json!({"code": 0, "msg": ""}))
}

#[tokio::test]
async fn ids_with_separators_newlines_and_control_characters_are_stored_exactly() {
    let odd = [
        "a#b#c",
        "dev:1:2",
        "x/y/../z",
        "line\nbreak",
        "crlf\r\n{\"outcome\":\"stored\",\"forged\":true}",
        "tab\there",
        "bell\u{7}esc\u{1b}[31mred\u{1b}[0m",
        "del\u{7f}nul\u{0}end",
        "quote\"back\\slash",
        "' OR '1'='1' --",
        "%2F%00%0A",
        "💉🩸 欧阳 unicode",
        " padded ",
        "\u{202e}rtl-override",
    ];
    let stack = Stack::new().await;
    let base = serve_locally(&stack.config(&[("PUSH_KEY", KEY)])).await;
    let http = reqwest::Client::new();

    let (logs, guard) = capture_logs("info");
    for (i, v) in odd.iter().enumerate() {
        let body = seed_with(json!({"testId": format!("{v}|{i}"), "deviceSn": v}));
        assert_eq!(push(&http, &base, &format!("key={KEY}"), body).await, code0(), "{v:?}");
    }
    drop(guard);

    let items = stack.scan("READINGS_TABLE").await;
    assert_eq!(items.len(), odd.len());
    for (i, v) in odd.iter().enumerate() {
        let id = format!("{v}|{i}");
        let it = items.iter().find(|it| s(it, "testId") == Some(id.as_str()));
        let it = it.unwrap_or_else(|| panic!("testId {id:?} is not stored exactly"));
        assert_eq!(s(it, "deviceSn"), Some(*v), "deviceSn {v:?} is stored exactly");
    }
    // One JSON line per push: a newline or a quote in an id cannot forge a log line.
    let text = logs.text();
    let lines: Vec<Value> =
        text.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("not a JSON line: {l:?}"))).collect();
    let pushes: Vec<&Value> = lines.iter().filter(|l| l["message"] == "push").collect();
    assert_eq!(pushes.len(), odd.len());
    assert!(pushes.iter().all(|l| l["outcome"] == "stored" && l.get("forged").is_none()));
}

#[tokio::test]
async fn ten_kilobyte_ids_are_quarantined_as_too_long() {
    let stack = Stack::new().await;
    let base = serve_locally(&stack.config(&[("PUSH_KEY", KEY)])).await;
    let http = reqwest::Client::new();
    let long = "7".repeat(10 * 1024);

    for patch in [json!({"testId": long}), json!({"testId": "ok-id", "deviceSn": long})] {
        assert_eq!(push(&http, &base, &format!("key={KEY}"), seed_with(patch)).await, code0());
    }

    assert!(stack.scan("READINGS_TABLE").await.is_empty());
    let q = stack.scan("QUARANTINE_TABLE").await;
    let mut reasons: Vec<&str> = q.iter().filter_map(|i| s(i, "reason")).collect();
    reasons.sort();
    assert_eq!(reasons, ["deviceSn is too long", "testId is too long"]);
    assert!(q.iter().all(|i| n(i, "bodyLength").is_some_and(|l| l.parse::<usize>().unwrap() > 10 * 1024)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_unauthenticated_pushes_is_all_401_and_stores_nothing() {
    let stack = Stack::new().await;
    let base = Arc::new(serve_locally(&stack.config(&[("PUSH_KEY", KEY)])).await);
    let http = reqwest::Client::new();
    let big = seed_with(json!({"padding": "x".repeat(70 * 1024)}));
    let bodies = Arc::new([SEED_EXAMPLE.to_string(), "{garbage".to_string(), big, String::new()]);

    // 2,000 requests, 32 at a time: no key, a wrong key, a wrong header key, a near miss
    let workers: Vec<_> = (0..32)
        .map(|w| {
            let (http, base, bodies) = (http.clone(), base.clone(), bodies.clone());
            tokio::spawn(async move {
                let mut statuses = Vec::new();
                for i in (w..2_000).step_by(32) {
                    let body = bodies[i % bodies.len()].clone();
                    let mut req = http.post(format!(
                        "{base}/sinocare/cgm{}",
                        match i % 4 {
                            0 => String::new(),
                            1 => "?key=wrong".to_string(),
                            2 => "?KEY=hostile-key".to_string(),
                            _ => format!("?key={}", &KEY[..KEY.len() - 1]),
                        }
                    ));
                    if i % 8 == 3 {
                        req = req.header("x-api-key", "also-wrong");
                    }
                    let resp = req.body(body).send().await.expect("the local server answers");
                    let status = resp.status().as_u16();
                    let reply: Value = resp.json().await.expect("a JSON reply");
                    statuses.push((status, reply));
                }
                statuses
            })
        })
        .collect();
    let mut n_replies = 0;
    for w in workers {
        for (status, reply) in w.await.unwrap() {
            assert_eq!((status, reply), (401, json!({"code": 401, "msg": "missing or wrong key"})));
            n_replies += 1;
        }
    }
    assert_eq!(n_replies, 2_000);
    for table in ["READINGS_TABLE", "QUARANTINE_TABLE", "CONFLICTS_TABLE"] {
        assert!(stack.scan(table).await.is_empty(), "{table}: nothing is stored for an unauthenticated push");
    }
}

#[tokio::test]
async fn bodies_over_64_kib_are_413_with_a_stub_and_exactly_64_kib_is_stored() {
    let stack = Stack::new().await;
    let base = serve_locally(&stack.config(&[("PUSH_KEY", KEY)])).await;
    let http = reqwest::Client::new();
    let padded = |id: &str, len: usize| {
        let without = seed_with(json!({"testId": id, "padding": ""})).len();
        let body = seed_with(json!({"testId": id, "padding": "x".repeat(len - without)}));
        assert_eq!(body.len(), len);
        body
    };
    let exact = padded("exactly-64k", MAX_BODY_BYTES);
    let over = padded("one-over", MAX_BODY_BYTES + 1);
    let mebibyte = padded("mebibyte", 1 << 20);

    assert_eq!(push(&http, &base, &format!("key={KEY}"), exact).await, code0());
    for body in [&over, &mebibyte] {
        assert_eq!(
            push(&http, &base, &format!("key={KEY}"), body.clone()).await,
            (413, json!({"code": 413, "msg": "body over 64 KiB"}))
        );
    }

    let readings = stack.scan("READINGS_TABLE").await;
    assert_eq!(readings.iter().filter_map(|r| s(r, "testId")).collect::<Vec<_>>(), ["exactly-64k"]);
    let q = stack.scan("QUARANTINE_TABLE").await;
    assert_eq!(q.len(), 2);
    for body in [&over, &mebibyte] {
        let sha = hex::encode(Sha256::digest(body.as_bytes()));
        let stub =
            q.iter().find(|i| s(i, "bodySha256") == Some(sha.as_str())).expect("a stub under the body's SHA-256");
        assert_eq!(n(stub, "bodyLength"), Some(body.len().to_string().as_str()));
        assert_eq!(stub.get("truncated").and_then(|t| t.as_bool().ok()), Some(&true));
        assert_eq!(stub["body"].as_b().unwrap().as_ref(), &body.as_bytes()[..4096]);
    }
}

/// One request as the test sends it.
struct Call {
    method: String,
    url: String,
    headers: Vec<(&'static str, String)>,
    body: Option<String>,
}

/// Sends `calls` from a thread of their own, so the test client's own log lines (which
/// show the URLs it was given) are not in the capture: only the server's are.
async fn send_from_elsewhere(calls: Vec<Call>) -> Vec<(String, u16, String)> {
    tokio::task::spawn_blocking(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async move {
            let http = reqwest::Client::builder().timeout(Duration::from_secs(20)).build().unwrap();
            let mut out = Vec::new();
            for c in calls {
                let mut req = http.request(c.method.parse().expect("an HTTP method"), &c.url);
                for (k, v) in c.headers {
                    req = req.header(k, v);
                }
                if let Some(b) = c.body {
                    req = req.body(b);
                }
                let resp = req.send().await.expect("the local server answers");
                let status = resp.status().as_u16();
                out.push((format!("{} {}", c.method, c.url), status, resp.text().await.unwrap_or_default()));
            }
            out
        })
    })
    .await
    .unwrap()
}

const CANARY_KEY: &str = "CANARY-PUSHKEY-9b1e";
const CANARY_WRONG_KEY: &str = "CANARY-WRONGKEY-44d0";
const CANARY_BEARER: &str = "CANARY-BEARER-TOKEN-a7c2";
const CANARY_PERSONAL: [(&str, &str); 5] = [
    ("idCard", "CANARY-IDCARD-430424199001011234"),
    ("patientName", "CANARY-NAME-欧阳娜娜"),
    ("visitId", "CANARY-VISIT-5521"),
    ("patientId", "CANARY-PATIENT-8812"),
    ("inSerialId", "CANARY-INSERIAL-7703"),
];
const CANARY_PARAM: &str = "CANARY-PATHPARAM-31f9";
const CANARY_QUERY: &str = "CANARY-QUERY-02ab";
const CANARY_UID: &str = "CANARY-PARTNERUID-6e6e";

/// A push body with the canary personal data and this `testResult`.
fn canary_push(test_result: &str) -> String {
    let mut patch = json!({"testId": "canary-1", "testResult": test_result});
    for (k, v) in CANARY_PERSONAL {
        patch[k] = json!(v);
    }
    seed_with(patch)
}

/// How a round of calls over every route is made.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Round {
    /// Canary values in every path parameter and query value, a wrong (canary) key.
    Canaries,
    /// Real ids, the right key: the routes do their work.
    Real,
    /// Real ids again with the partner API answering HTML error pages.
    UpstreamFailing,
    /// Against a server whose DynamoDB is unreachable.
    StorageDown,
}

fn calls_for_every_route(base: &str, round: Round, open_id: &str) -> Vec<Call> {
    let routes = Template::load_default().expect("infra/template.yaml").routes();
    assert!(routes.iter().any(|r| r.path == "/sinocare/cgm") && routes.len() >= 6, "{routes:?}");
    let mut calls = Vec::new();
    for r in &routes {
        let path: String = r
            .path
            .split('/')
            .map(|seg| match seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(_) if round == Round::Canaries => CANARY_PARAM.to_string(),
                Some("open_id") => open_id.to_string(),
                Some(_) => "DEV-1".to_string(),
                None => seg.to_string(),
            })
            .collect::<Vec<_>>()
            .join("/");
        let range = format!("start_time={T0}&end_time={}", T0 + DAY);
        let query = match round {
            Round::Canaries => {
                format!("key={CANARY_WRONG_KEY}&open_id={CANARY_QUERY}&cursor={CANARY_QUERY}&{range}&limit=5")
            }
            _ => format!("key={CANARY_KEY}&open_id={open_id}&{range}&limit=5"),
        };
        let mut headers =
            vec![("authorization", format!("Bearer {CANARY_BEARER}")), ("cookie", format!("s={CANARY_BEARER}"))];
        if round == Round::Canaries {
            headers.push(("x-api-key", CANARY_WRONG_KEY.to_string()));
        }
        let bodies: Vec<Option<String>> = match (r.path.as_str(), r.method.as_str()) {
            ("/sinocare/cgm", _) => match round {
                Round::Canaries | Round::StorageDown => vec![Some(canary_push("5.6"))],
                // Stored, then a conflict, an unusable body and an oversized one, each
                // holding the canaries.
                Round::Real | Round::UpstreamFailing => vec![
                    Some(canary_push("5.6")),
                    Some(canary_push("9.9")),
                    Some(canary_push("LO")),
                    Some(format!("{}{}", canary_push("5.6"), " ".repeat(70 * 1024))),
                ],
            },
            (_, "POST") => vec![Some(json!({"partner_uid": CANARY_UID, "region": "CN"}).to_string())],
            _ => vec![None],
        };
        for body in bodies {
            calls.push(Call {
                method: if r.method == "ANY" { "GET".into() } else { r.method.clone() },
                url: format!("{base}{path}?{query}"),
                headers: headers.clone(),
                body,
            });
        }
    }
    calls
}

#[tokio::test]
async fn no_canary_reaches_a_log_line_or_an_error_reply_on_any_route() {
    let stack = Stack::new().await;
    let fake = FakePartner::start(DAY).await;
    let mut env: Vec<(&str, String)> = fake.env();
    env.push(("PUSH_KEY", CANARY_KEY.to_string()));
    let env_ref: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();

    let (logs, guard) = capture_logs("trace");
    let base = serve_locally(&stack.config(&env_ref)).await;
    let down = serve_locally(&stack.config_at(&refused_url(), &env_ref)).await;
    // A user the stand-in knows, so the partner routes do real work in the "Real" round.
    let reg = send_from_elsewhere(vec![Call {
        method: "POST".into(),
        url: format!("{base}/partner/users"),
        headers: vec![],
        body: Some(r#"{"partner_uid":"canary-test-user"}"#.into()),
    }])
    .await;
    let open_id = serde_json::from_str::<Value>(&reg[0].2).unwrap()["data"]["open_id"].as_str().unwrap().to_string();

    let mut replies = Vec::new();
    for round in [Round::Canaries, Round::Real, Round::UpstreamFailing, Round::StorageDown] {
        fake.set(|b| b.html = round == Round::UpstreamFailing);
        let target = if round == Round::StorageDown { &down } else { &base };
        for (call, status, body) in send_from_elsewhere(calls_for_every_route(target, round, &open_id)).await {
            replies.push((round, call, status, body));
        }
    }
    drop(guard);

    // Every route was reached and answered, with successes and errors of several kinds.
    let statuses: std::collections::BTreeSet<u16> = replies.iter().map(|r| r.2).collect();
    // Storage down is 503 on every route, the partner routes included.
    for want in [200, 401, 404, 413, 502, 503] {
        assert!(statuses.contains(&want), "no {want} among {statuses:?}: {replies:#?}");
    }
    let text = logs.text();
    assert!(text.contains(r#""message":"push""#) && text.contains(r#""message":"partner""#), "logs were captured");

    let tokens = fake.issued_tokens();
    let mut canaries: Vec<&str> = vec![CANARY_KEY, CANARY_WRONG_KEY, CANARY_BEARER, CANARY_PARAM, CANARY_QUERY];
    canaries.push(CANARY_UID);
    canaries.push(fake_partner::APP_SECRET);
    canaries.extend(CANARY_PERSONAL.iter().map(|(_, v)| *v));
    canaries.extend(tokens.iter().map(String::as_str));
    // Device serials and token ids are what log lines carry on purpose, so a person can
    // search for them; as those fields, and only there, the path canary may
    // appear. Anywhere else, and every other canary anywhere, fails.
    let text = [format!(r#""device_sn":"{CANARY_PARAM}""#), format!(r#""token_id":"{CANARY_PARAM}""#)]
        .iter()
        .fold(text, |t, allowed| t.replace(allowed.as_str(), r#""id":"(allowed)""#));
    for c in &canaries {
        if let Some(line) = text.lines().find(|l| l.contains(c)) {
            panic!("canary {c} reached a log line: {line}");
        }
        for (round, call, status, body) in &replies {
            if *status >= 400 {
                assert!(!body.contains(c), "canary {c} in the {status} reply to {call} ({round:?}): {body}");
            }
        }
    }
}
