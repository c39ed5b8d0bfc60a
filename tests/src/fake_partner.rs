//! A stand-in for the vendor's Partner Open API on loopback (wiremock), with state: it
//! issues and expires tokens, checks the application signature and the bearer token on
//! every request, serves 3-minute glucose records, and can be told to misbehave.
//!
//! The signature check here is written independently of the proxy's signer: it rebuilds
//! the string to sign from what arrived on the wire.

use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use wiremock::matchers::any;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

pub const APP_ID: &str = "app_test";
pub const APP_SECRET: &str = "secret_test_value";
pub const MINUTE: i64 = 60_000;
/// Readings every 3 minutes from here on (2023-11-14T22:13:20Z).
pub const T0: i64 = 1_700_000_000_000;

#[derive(Debug, Clone)]
struct Token {
    value: String,
    open_id: String,
    expires_at: i64,
    revoked: bool,
}

/// What the stand-in does, changeable while a test runs.
#[derive(Debug, Default)]
pub struct Behaviour {
    /// Seconds of life of each token issued.
    pub expire_in: i64,
    /// Get-token answers 1001 (the vendor forgot the user).
    pub refuse_refresh: bool,
    /// Registration gives a new open_id each time (after a vendor-side reset).
    pub new_open_id_on_register: bool,
    /// These open_ids get 1002 from the glucose and device endpoints.
    pub denied: Vec<String>,
    /// Every answer is delayed this long.
    pub delay: Option<Duration>,
    /// Every answer is an HTML error page.
    pub html: bool,
    /// Every answer is this text (malformed JSON).
    pub raw_body: Option<String>,
    /// Glucose answers return records from this many minutes before the window's start
    /// too, as a vendor with inclusive, overlapping edges would.
    pub overlap_minutes: i64,
    /// No records at all.
    pub empty: bool,
}

#[derive(Debug, Default)]
struct State {
    behaviour: Behaviour,
    tokens: Vec<Token>,
    registrations: HashMap<String, String>,
    issued: u64,
    calls: BTreeMap<String, u64>,
    glucose_windows: Vec<(i64, i64)>,
    violations: Vec<String>,
    /// Records span [T0, T0 + span) per device.
    span_ms: i64,
}

#[derive(Clone)]
pub struct FakePartner {
    pub server: Arc<MockServer>,
    state: Arc<Mutex<State>>,
}

impl FakePartner {
    /// A stand-in serving `span_ms` of 3-minute records for device `DEV-1`, owned by the
    /// first registered user.
    pub async fn start(span_ms: i64) -> Self {
        let server = MockServer::start().await;
        let state = Arc::new(Mutex::new(State {
            behaviour: Behaviour { expire_in: 7200, ..Default::default() },
            span_ms,
            ..Default::default()
        }));
        Mock::given(any()).respond_with(Responder(state.clone())).mount(&server).await;
        FakePartner { server: Arc::new(server), state }
    }

    pub fn uri(&self) -> String {
        self.server.uri()
    }

    pub fn set(&self, f: impl FnOnce(&mut Behaviour)) {
        f(&mut self.state.lock().unwrap().behaviour);
    }

    /// Calls per upstream path.
    pub fn calls(&self, path: &str) -> u64 {
        self.state.lock().unwrap().calls.get(path).copied().unwrap_or(0)
    }

    pub fn glucose_windows(&self) -> Vec<(i64, i64)> {
        self.state.lock().unwrap().glucose_windows.clone()
    }

    /// Signature or bearer problems seen; a test that ends with any has failed.
    pub fn violations(&self) -> Vec<String> {
        self.state.lock().unwrap().violations.clone()
    }

    /// The vendor revokes every token it issued (they get 1001 from now on).
    pub fn revoke_all(&self) {
        for t in &mut self.state.lock().unwrap().tokens {
            t.revoked = true;
        }
    }

    /// Every token value it ever issued.
    pub fn issued_tokens(&self) -> Vec<String> {
        self.state.lock().unwrap().tokens.iter().map(|t| t.value.clone()).collect()
    }

    /// The configuration entries that point the proxy at this stand-in.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("PARTNER_API_BASE_URL", self.uri()),
            ("PARTNER_APP_ID", APP_ID.to_string()),
            ("PARTNER_APP_SECRET", APP_SECRET.to_string()),
        ]
    }
}

struct Responder(Arc<Mutex<State>>);

fn envelope(code: i64, msg: &str, data: Value) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({"code": code, "msg": msg, "data": data}))
}

impl Respond for Responder {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let mut st = self.0.lock().unwrap();
        let path = req.url.path().to_string();
        *st.calls.entry(path.clone()).or_default() += 1;
        let query: HashMap<String, String> =
            req.url.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect();

        if let Err(v) = check_signature(req) {
            st.violations.push(format!("{path}: {v}"));
            return envelope(4001, "signature invalid", Value::Null);
        }
        let mut resp = answer(&mut st, req, &path, &query);
        if st.behaviour.html {
            resp = ResponseTemplate::new(502).set_body_raw("<html><body>502 Bad Gateway</body></html>", "text/html");
        } else if let Some(raw) = &st.behaviour.raw_body {
            resp = ResponseTemplate::new(200).set_body_raw(raw.clone(), "application/json");
        }
        if let Some(d) = st.behaviour.delay {
            resp = resp.set_delay(d);
        }
        resp
    }
}

fn now() -> i64 {
    cgm_domain::time::now_ms()
}

fn issue(st: &mut State, open_id: &str) -> Value {
    st.issued += 1;
    let value = format!("tok-{}-{}", st.issued, uuid::Uuid::new_v4().simple());
    let expire_in = st.behaviour.expire_in;
    st.tokens.push(Token {
        value: value.clone(),
        open_id: open_id.into(),
        expires_at: now() + expire_in * 1000,
        revoked: false,
    });
    json!({"open_id": open_id, "access_token": value, "expire_in": expire_in})
}

fn bearer(req: &Request) -> Option<String> {
    req.headers.get("authorization")?.to_str().ok()?.strip_prefix("Bearer ").map(str::to_string)
}

/// The open_id whose valid token this is, or the reason it is not.
fn authorised(st: &State, req: &Request) -> Result<String, &'static str> {
    let b = bearer(req).ok_or("no bearer")?;
    let t = st.tokens.iter().find(|t| t.value == b).ok_or("unknown token")?;
    if t.revoked {
        return Err("revoked");
    }
    if t.expires_at <= now() {
        return Err("expired");
    }
    Ok(t.open_id.clone())
}

fn answer(st: &mut State, req: &Request, path: &str, q: &HashMap<String, String>) -> ResponseTemplate {
    match (req.method.as_str(), path) {
        ("POST", "/partner/v1/user/register") => {
            if req.headers.contains_key("authorization") {
                st.violations.push("register carried a bearer token".into());
            }
            let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
            let Some(uid) = body["partner_uid"].as_str() else {
                return envelope(4000, "partner_uid required", Value::Null);
            };
            let open_id = match (st.registrations.get(uid), st.behaviour.new_open_id_on_register) {
                (Some(existing), false) => existing.clone(),
                _ => format!("open-{uid}-{}", st.registrations.len() + st.issued as usize),
            };
            st.registrations.insert(uid.to_string(), open_id.clone());
            let data = issue(st, &open_id);
            envelope(0, "", data)
        }
        ("GET", "/partner/v1/user/token") => {
            let Some(b) = bearer(req) else {
                st.violations.push("get-token without the held bearer".into());
                return envelope(1001, "unauthorized", Value::Null);
            };
            let open_id = q.get("open_id").cloned().unwrap_or_default();
            let known = st.tokens.iter().any(|t| t.value == b && t.open_id == open_id);
            if st.behaviour.refuse_refresh || !known {
                return envelope(1001, "token invalid", Value::Null);
            }
            let data = issue(st, &open_id);
            envelope(0, "", data)
        }
        ("GET", "/partner/v1/user/glucose") => {
            let open_id = match authorised(st, req) {
                Ok(o) => o,
                Err(_) => return envelope(1001, "token invalid", Value::Null),
            };
            if q.get("open_id") != Some(&open_id) {
                return envelope(1002, "permission denied", Value::Null);
            }
            if st.behaviour.denied.contains(&open_id) {
                return envelope(1002, "permission denied", Value::Null);
            }
            let (Some(s), Some(e)) =
                (q.get("start_time").and_then(|v| v.parse().ok()), q.get("end_time").and_then(|v| v.parse().ok()))
            else {
                return envelope(4000, "start_time and end_time required", Value::Null);
            };
            glucose(st, &open_id, Some((s, e)))
        }
        ("GET", "/partner/v1/device/info") => {
            let open_id = match authorised(st, req) {
                Ok(o) => o,
                Err(_) => return envelope(1001, "token invalid", Value::Null),
            };
            if st.behaviour.denied.contains(&open_id) {
                return envelope(1002, "permission denied", Value::Null);
            }
            let sn = q.get("device_sn").cloned().unwrap_or_default();
            envelope(
                0,
                "",
                json!({"device_sn": sn, "status": 2, "bound_at": T0 - 3_600_000, "activated_at": T0, "estimated_end_at": T0 + 15 * 86_400_000,
                       "ended_at": null, "partner_id": "p", "app_id": APP_ID, "open_id": open_id}),
            )
        }
        ("GET", "/partner/v1/device/glucose") => {
            let open_id = match authorised(st, req) {
                Ok(o) => o,
                Err(_) => return envelope(1001, "token invalid", Value::Null),
            };
            if st.behaviour.denied.contains(&open_id) {
                return envelope(1002, "permission denied", Value::Null);
            }
            let range = match (q.get("start_time"), q.get("end_time")) {
                (Some(s), Some(e)) => Some((s.parse().unwrap_or(0), e.parse().unwrap_or(0))),
                _ => None,
            };
            glucose(st, &open_id, range)
        }
        _ => ResponseTemplate::new(404).set_body_json(json!({"code": 404, "msg": "not found", "data": null})),
    }
}

fn glucose(st: &mut State, open_id: &str, range: Option<(i64, i64)>) -> ResponseTemplate {
    if let Some((s, e)) = range {
        if e - s > 30 * 86_400_000 {
            return envelope(4002, "time range exceeds 30 days", Value::Null);
        }
        st.glucose_windows.push((s, e));
    }
    let (from, to) = match range {
        Some((s, e)) => (s - st.behaviour.overlap_minutes * MINUTE, e),
        None => (T0, T0 + st.span_ms),
    };
    let mut records = Vec::new();
    if !st.behaviour.empty {
        // Readings at T0 + 3 min × k, package_num k + 1, within [from, to] and the span.
        let first = ((from.max(T0) - T0) + 3 * MINUTE - 1).div_euclid(3 * MINUTE);
        let mut k = first.max(0);
        loop {
            let t = T0 + k * 3 * MINUTE;
            if t > to || t >= T0 + st.span_ms {
                break;
            }
            records.push(json!({
                "app_id": APP_ID, "device_sn": "DEV-1", "open_id": open_id, "type": 2,
                "value": 5.0 + (k % 40) as f64 / 10.0, "trend": 1, "package_num": k + 1,
                "measured_at": t, "app_received_at": t + 5_000, "vendor_extra": {"k": k},
            }));
            k += 1;
        }
    }
    envelope(0, "", json!({"open_id": open_id, "records": records}))
}

/// Rebuilds the string to sign from the request as received and checks `X-Signature`.
fn check_signature(req: &Request) -> Result<(), String> {
    let h = |name: &str| req.headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
    let (Some(app), Some(ts), Some(nonce), Some(sig)) =
        (h("x-app-id"), h("x-timestamp"), h("x-nonce"), h("x-signature"))
    else {
        return Err("missing signature headers".into());
    };
    if app != APP_ID {
        return Err("wrong app id".into());
    }
    let ts_ms: i64 = ts.parse().map_err(|_| "timestamp not a number")?;
    if (now() - ts_ms).abs() > 5 * 60_000 {
        return Err("timestamp more than 5 minutes off".into());
    }
    if nonce.len() < 8 {
        return Err("nonce too short".into());
    }
    let mut params: Vec<(String, String)> =
        vec![("X-App-Id".into(), app), ("X-Nonce".into(), nonce), ("X-Timestamp".into(), ts)];
    params.extend(req.url.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())));
    params.sort();
    let mut text = Vec::new();
    text.extend_from_slice(req.method.as_str().to_uppercase().as_bytes());
    text.extend_from_slice(req.url.path().as_bytes());
    for (k, v) in params {
        text.extend_from_slice(k.as_bytes());
        text.extend_from_slice(v.as_bytes());
    }
    if req.method.as_str() == "POST" || req.method.as_str() == "PUT" {
        text.extend_from_slice(&req.body);
    }
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(APP_SECRET.as_bytes()).unwrap();
    mac.update(&text);
    let want = hex::encode(mac.finalize().into_bytes());
    if want != sig { Err("signature mismatch".into()) } else { Ok(()) }
}
