//! [`PushService::handle`]: one push in, one row of the reply table out, and one log line.

use crate::auth::{Denied, PushAuth};
use cgm_domain::alerts::AlertSettings;
use cgm_domain::push::{MAX_BODY_BYTES, Reading, parse_push_arrived};
use cgm_domain::store::StoreError;
use cgm_domain::store::push::{Arrival, Conflict, PushStore, PutOutcome, Quarantined, Recorded};
use cgm_domain::time::{SourceZone, Timestamp, now_ms};
use cgm_edge::frame::LogFields;
use cgm_edge::{Answer, Api, Frame, HttpService, Routes, reply};
use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Request, Response};
use sha2::{Digest, Sha256};
use std::time::Duration;

/// How much of an oversized body the quarantine stub keeps.
const STUB_BYTES: usize = 4 * 1024;

const UNAVAILABLE: &str = "storage unavailable, retry later";

/// The quarantine reason of a reading the parser accepted but storage refused for good
/// (DynamoDB's `ValidationException`): a re-send would be refused again, so the body is
/// kept and answered 0 rather than 503 for ever. It means the parser missed a bound.
pub const STORAGE_REFUSED: &str = "storage refused the reading";

pub struct PushService<S> {
    store: S,
    auth: PushAuth,
    zone: SourceZone,
    deadline: Duration,
    /// How far after its arrival a reading may be measured before it is flagged
    /// `clockAhead` (`CLOCK_AHEAD_MINUTES`).
    clock_ahead: Duration,
}

/// What happened to one push: the `outcome` field of its log line, which the template's
/// metric filters count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Stored,
    Duplicate,
    Conflict,
    Quarantined,
    Rejected,
    Unavailable,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Stored => "stored",
            Outcome::Duplicate => "duplicate",
            Outcome::Conflict => "conflict",
            Outcome::Quarantined => "quarantined",
            Outcome::Rejected => "rejected",
            Outcome::Unavailable => "unavailable",
        }
    }
}

/// The push's one failure: storage did not confirm the write, so Sinocare must re-send.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error(transparent)]
    Unavailable(#[from] StoreError),
}

/// The push route's API family: Sinocare's envelope `{code, msg}`. A route deadline is a 503
/// too (Sinocare's contract: nothing was confirmed stored, so it re-sends).
pub struct PushApi;

impl Api for PushApi {
    const NAME: &'static str = "push";
    type Error = PushError;
    const FAILURE_OUTCOME: Option<&'static str> = Some("unavailable");

    fn error_reply(e: &PushError) -> Response<Body> {
        match e {
            PushError::Unavailable(_) => reply::push_envelope(StatusCode::SERVICE_UNAVAILABLE, UNAVAILABLE),
        }
    }

    fn deadline_reply(_: Duration) -> Response<Body> {
        reply::push_envelope(StatusCode::SERVICE_UNAVAILABLE, UNAVAILABLE)
    }
}

/// A reply of the push table and what the log line says about it. Ids only: never a
/// personal field or key.
fn answer(outcome: Outcome, status: StatusCode, msg: &'static str) -> Answer {
    let mut a = Answer::new(reply::push_envelope(status, msg));
    a.log = LogFields {
        outcome: Some(outcome.as_str()),
        reason: (!msg.is_empty()).then(|| msg.to_string()),
        ..LogFields::default()
    };
    a
}

impl<S: PushStore> HttpService for PushService<S> {
    /// Answers one push. Never fails: every case is a row of the reply table.
    async fn handle(&self, req: Request) -> Response<Body> {
        cgm_edge::serve(self, req).await
    }
}

/// The push is one route, whatever the method and path: a request that is no push is a
/// row of the reply table too (405, 401, 403…).
impl<S: PushStore> Routes for PushService<S> {
    type Api = PushApi;
    type Route = ();

    fn route_of(_: &Method, _: &str) -> Result<((), &'static str), PushError> {
        Ok(((), "push"))
    }

    /// `PUSH_DEADLINE_MS`, well inside Sinocare's 5 s.
    fn deadline(&self) -> Duration {
        self.deadline
    }

    async fn route(&self, _: (), req: &Request, frame: &Frame) -> Result<Answer, PushError> {
        let arrival = Arrival { received_at_ms: now_ms(), request_id: frame.meta().request_id.clone() };
        match self.refusal(req, frame.meta().source_ip.as_deref()) {
            Some(refused) => Ok(refused),
            None => self.store_body(req.body(), &arrival).await,
        }
    }
}

impl<S: PushStore> PushService<S> {
    /// With `CLOCK_AHEAD_MINUTES`' default; [`Self::with_clock_ahead`] sets another.
    pub fn new(store: S, auth: PushAuth, zone: SourceZone, deadline: Duration) -> Self {
        let clock_ahead = Duration::from_secs(AlertSettings::default().clock_ahead_minutes.saturating_mul(60));
        Self { store, auth, zone, deadline, clock_ahead }
    }

    /// Readings measured more than `tolerance` after their arrival are flagged `clockAhead`.
    pub fn with_clock_ahead(mut self, tolerance: Duration) -> Self {
        self.clock_ahead = tolerance;
        self
    }

    pub fn store(&self) -> &S {
        &self.store
    }

    pub fn auth(&self) -> &PushAuth {
        &self.auth
    }

    /// Method, source and key: the reply when the push is refused, which stores nothing.
    fn refusal(&self, req: &Request, source_ip: Option<&str>) -> Option<Answer> {
        let (status, msg) = if req.method() != Method::POST {
            (StatusCode::METHOD_NOT_ALLOWED, "method not allowed, use POST")
        } else {
            match self.auth.check(source_ip, presented_key(req)) {
                Ok(()) => return None,
                Err(Denied::Source) => (StatusCode::FORBIDDEN, "source address not allowed"),
                Err(Denied::Key) => (StatusCode::UNAUTHORIZED, "missing or wrong key"),
            }
        };
        Some(answer(Outcome::Rejected, status, msg))
    }

    async fn store_body(&self, body: &[u8], arrival: &Arrival) -> Result<Answer, PushError> {
        if body.len() > MAX_BODY_BYTES {
            let stub = Quarantined {
                body_sha256: sha256_hex(body),
                reason: "body over 64 KiB",
                body: &body[..STUB_BYTES],
                body_length: body.len(),
                truncated: true,
            };
            self.store.put_quarantine(&stub, arrival).await?;
            return Ok(answer(Outcome::Quarantined, StatusCode::PAYLOAD_TOO_LARGE, "body over 64 KiB"));
        }

        let received_at = Timestamp::from_ms(arrival.received_at_ms);
        let reading = match parse_push_arrived(body, &self.zone, received_at, self.clock_ahead) {
            Ok(r) => r,
            Err(why) => return self.quarantine(body, &why.to_string(), arrival).await,
        };

        let mut a = answer(Outcome::Stored, StatusCode::OK, "");
        a.log.test_id = Some(reading.test_id.to_string());
        a.log.device_sn = reading.device_sn.as_ref().map(ToString::to_string);
        if !reading.out_of_range.is_empty() {
            let names: Vec<&str> = reading.out_of_range.keys().map(String::as_str).collect();
            a.log.out_of_range = Some(names.join(","));
        }
        if reading.clock_ahead {
            a.log.reason = Some("testTime is ahead of arrival: stored, flagged clockAhead".into());
        }
        match self.store_reading(&reading, body, arrival, &mut a).await {
            Ok(()) => Ok(a),
            // Storage refused the item itself: every re-send would be refused alike, so the
            // body goes to quarantine and Sinocare gets its 0. Only what a re-send can cure
            // (a timeout, throttling, an outage) is a 503.
            Err(e) if e.is_permanent() => {
                let mut q = self.quarantine(body, STORAGE_REFUSED, arrival).await?;
                q.log.test_id = a.log.test_id;
                q.log.device_sn = a.log.device_sn;
                q.log.warn = true;
                Ok(q)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The reading once (or, for a second delivery, nothing new or a recorded conflict);
    /// the log line says which.
    async fn store_reading(
        &self,
        reading: &Reading,
        body: &[u8],
        arrival: &Arrival,
        a: &mut Answer,
    ) -> Result<(), StoreError> {
        match self.store.put_reading(reading, arrival).await? {
            PutOutcome::Stored => {}
            PutOutcome::Existing(Some(old)) if old == reading.measurement() => {
                a.log.outcome = Some(Outcome::Duplicate.as_str());
            }
            PutOutcome::Existing(_) => {
                let conflict = Conflict { reading, measurement_hash: reading.measurement().hash(), raw_body: body };
                let recorded = self.store.put_conflict(&conflict, arrival).await?;
                a.log.outcome = Some(Outcome::Conflict.as_str());
                a.log.warn = true;
                a.log.reason = Some(format!("same testId, different measurement; first kept{}", repeat_note(recorded)));
            }
        }
        Ok(())
    }

    /// Keeps a whole body that cannot be a reading, under its SHA-256, with `reason` (a
    /// fixed sentence, never part of the body): answered 0 once it is durable.
    async fn quarantine(&self, body: &[u8], reason: &str, arrival: &Arrival) -> Result<Answer, PushError> {
        let q = Quarantined { body_sha256: sha256_hex(body), reason, body, body_length: body.len(), truncated: false };
        let recorded = self.store.put_quarantine(&q, arrival).await?;
        let mut a = answer(Outcome::Quarantined, StatusCode::OK, "");
        a.log.reason = Some(format!("{reason}{}", repeat_note(recorded)));
        Ok(a)
    }
}

fn repeat_note(r: Recorded) -> &'static str {
    match r {
        Recorded::New => "",
        Recorded::AlreadyThere => " (already recorded)",
    }
}

fn presented_key(req: &Request) -> Option<&str> {
    let p = cgm_edge::Params::of(req);
    p.header("x-api-key").or_else(|| p.query("key"))
}

fn sha256_hex(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use cgm_domain::sensitive::Sensitive;
    use cgm_domain::store::push::memory::MemoryStore;
    use lambda_http::http::header;
    use serde_json::{Value, json};
    use std::sync::atomic::Ordering;

    const EVENT: &str = include_str!("../tests/data/push-event.json");
    const SEED_EXAMPLE: &str = include_str!("../../../crates/domain/tests/data/seed-example.json");

    fn service(keys: &[&str], cidrs: &[&str]) -> PushService<MemoryStore> {
        let keys: Vec<_> = keys.iter().map(|k| Sensitive::new(k.to_string())).collect();
        let cidrs = cidrs.iter().map(|c| c.parse().unwrap()).collect();
        PushService::new(
            MemoryStore::default(),
            PushAuth::new(&keys, cidrs),
            SourceZone::default(),
            Duration::from_secs(3),
        )
    }

    /// A real API Gateway HTTP API event with this body and query string.
    fn event(body: &str, query: &str) -> Request {
        let mut e: Value = serde_json::from_str(EVENT).unwrap();
        e["body"] = json!(body);
        e["rawQueryString"] = json!(query);
        lambda_http::request::from_str(&e.to_string()).unwrap()
    }

    async fn call(svc: &PushService<MemoryStore>, req: Request) -> (u16, Value) {
        let resp = svc.handle(req).await;
        assert_eq!(resp.headers()[header::CONTENT_TYPE], "application/json");
        let status = resp.status().as_u16();
        (status, serde_json::from_slice(resp.body()).unwrap())
    }

    fn seed_with(patch: Value) -> String {
        let mut body: Value = serde_json::from_str(SEED_EXAMPLE).unwrap();
        for (k, v) in patch.as_object().unwrap() {
            body["data"][k] = v.clone();
        }
        body.to_string()
    }

    #[tokio::test]
    async fn seed_example_is_stored_and_acknowledged() {
        let svc = service(&["test-key"], &[]);
        let (status, reply) = call(&svc, event(SEED_EXAMPLE, "key=test-key")).await;
        assert_eq!((status, reply), (200, json!({"code": 0, "msg": ""})));
        let stored = svc.store.readings.lock().unwrap();
        assert_eq!(stored["23434335345"].glucose.mmol, 5.6);
    }

    #[tokio::test]
    async fn redelivery_is_a_duplicate_and_cgm_status_change_too() {
        let svc = service(&[], &[]);
        for body in [
            SEED_EXAMPLE.to_string(),
            SEED_EXAMPLE.to_string(),
            seed_with(json!({"cgmStatus": "4", "patientName": "李四"})),
        ] {
            assert_eq!(call(&svc, event(&body, "")).await, (200, json!({"code": 0, "msg": ""})));
        }
        assert_eq!(svc.store.readings.lock().unwrap().len(), 1);
        assert!(svc.store.conflicts.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn different_measurement_is_a_conflict_recorded_once() {
        let svc = service(&[], &[]);
        call(&svc, event(SEED_EXAMPLE, "")).await;
        let other = seed_with(json!({"testResult": "7.1"}));
        for _ in 0..3 {
            assert_eq!(call(&svc, event(&other, "")).await, (200, json!({"code": 0, "msg": ""})));
        }
        assert_eq!(svc.store.readings.lock().unwrap()["23434335345"].glucose.text, "5.6", "first kept");
        assert_eq!(svc.store.conflicts.lock().unwrap().len(), 1, "re-sends of one conflict collapse");
    }

    #[tokio::test]
    async fn numeric_string_equals_number_when_comparing() {
        let svc = service(&[], &[]);
        call(&svc, event(SEED_EXAMPLE, "")).await;
        call(&svc, event(&seed_with(json!({"serialNo": "1", "testResult": "5.60", "status": 1})), "")).await;
        assert!(svc.store.conflicts.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn unusable_body_is_quarantined_with_code_0() {
        let svc = service(&[], &[]);
        for body in ["", "not json", "[1]", r#"{"reservedCode":"01"}"#] {
            assert_eq!(call(&svc, event(body, "")).await, (200, json!({"code": 0, "msg": ""})), "{body:?}");
        }
        call(&svc, event("not json", "")).await;
        let q = svc.store.quarantine.lock().unwrap();
        assert_eq!(q.len(), 4, "re-sends of one body collapse");
        let reasons: Vec<&str> = q.values().map(|k| k.reason.as_str()).collect();
        assert!(reasons.contains(&"body is not JSON"), "{reasons:?}");
    }

    #[tokio::test]
    async fn wrong_or_missing_key_is_401_and_stores_nothing() {
        let svc = service(&["old-key", "new-key"], &[]);
        assert_eq!(
            call(&svc, event(SEED_EXAMPLE, "key=wrong")).await,
            (401, json!({"code": 401, "msg": "missing or wrong key"}))
        );
        assert_eq!(call(&svc, event(SEED_EXAMPLE, "")).await.0, 401);
        assert_eq!(call(&svc, event("garbage", "")).await.0, 401);
        assert!(svc.store.readings.lock().unwrap().is_empty());
        assert!(svc.store.quarantine.lock().unwrap().is_empty());
        assert_eq!(call(&svc, event(SEED_EXAMPLE, "key=new-key")).await.0, 200, "the rotation key works");
    }

    #[tokio::test]
    async fn key_may_come_in_a_header() {
        let svc = service(&["k1"], &[]);
        let mut req = event(SEED_EXAMPLE, "");
        req.headers_mut().insert("x-api-key", "k1".parse().unwrap());
        assert_eq!(call(&svc, req).await.0, 200);
    }

    #[tokio::test]
    async fn source_outside_allow_list_is_403() {
        let svc = service(&["test-key"], &["198.51.100.0/24"]);
        assert_eq!(
            call(&svc, event(SEED_EXAMPLE, "key=test-key")).await,
            (403, json!({"code": 403, "msg": "source address not allowed"}))
        );
        let svc = service(&["test-key"], &["203.0.113.0/24"]);
        assert_eq!(call(&svc, event(SEED_EXAMPLE, "key=test-key")).await.0, 200);
    }

    #[tokio::test]
    async fn oversized_body_is_413_with_a_stub() {
        let svc = service(&[], &[]);
        let big = format!(r#"{{"reservedCode":"01","data":{{"pad":"{}"}}}}"#, "x".repeat(1 << 20));
        assert_eq!(call(&svc, event(&big, "")).await, (413, json!({"code": 413, "msg": "body over 64 KiB"})));
        let q = svc.store.quarantine.lock().unwrap();
        let k = q.values().next().unwrap();
        assert_eq!(
            (k.reason.as_str(), k.body.len(), k.body_length, k.truncated),
            ("body over 64 KiB", 4096, big.len(), true)
        );
    }

    #[tokio::test]
    async fn storage_failure_is_503() {
        let svc = service(&[], &[]);
        svc.store.fail.store(true, Ordering::SeqCst);
        assert_eq!(
            call(&svc, event(SEED_EXAMPLE, "")).await,
            (503, json!({"code": 503, "msg": "storage unavailable, retry later"}))
        );
        assert_eq!(call(&svc, event("not json", "")).await.0, 503, "quarantine too must be durable before code 0");
    }

    #[tokio::test]
    async fn a_reading_storage_refuses_for_good_is_quarantined_with_code_0() {
        // Given a store that refuses the item as DynamoDB refuses a value it cannot hold
        let svc = service(&[], &[]);
        svc.store.refuse.store(true, Ordering::SeqCst);
        // When the push arrives, and again when Sinocare re-sends it
        for _ in 0..2 {
            assert_eq!(call(&svc, event(SEED_EXAMPLE, "")).await, (200, json!({"code": 0, "msg": ""})));
        }
        // Then the body is in quarantine, once, saying why; no reading
        assert!(svc.store.readings.lock().unwrap().is_empty());
        let q = svc.store.quarantine.lock().unwrap();
        let kept: Vec<_> = q.values().map(|k| (k.reason.as_str(), k.body.as_slice())).collect();
        assert_eq!(kept, [(STORAGE_REFUSED, SEED_EXAMPLE.as_bytes())]);
    }

    #[tokio::test]
    async fn a_refused_conflict_is_quarantined_too() {
        let svc = service(&[], &[]);
        call(&svc, event(SEED_EXAMPLE, "")).await;
        svc.store.refuse.store(true, Ordering::SeqCst);
        let other = seed_with(json!({"testResult": "7.1"}));
        assert_eq!(call(&svc, event(&other, "")).await, (200, json!({"code": 0, "msg": ""})));
        assert_eq!(svc.store.quarantine.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn the_time_rules_use_the_arrival() {
        let svc = service(&[], &[]);
        let china = |ms: i64| SourceZone::default().format_local_ms(ms).unwrap()[..19].replace('T', " ");
        let now = now_ms();
        let pushes = [
            ("ahead-1h", china(now + 3_600_000)),
            ("on-time", china(now - 60_000)),
            ("ahead-2d", china(now + 2 * 86_400_000)),
            ("year-262142", "+262142-12-31 20:00:00".to_string()),
            ("before-2015", "2014-12-31 23:59:59".to_string()),
        ];
        for (id, t) in &pushes {
            let body = seed_with(json!({"testId": id, "testTime": t}));
            assert_eq!(call(&svc, event(&body, "")).await, (200, json!({"code": 0, "msg": ""})), "{id}");
        }
        let readings = svc.store.readings.lock().unwrap();
        assert!(readings["ahead-1h"].clock_ahead);
        assert!(!readings["on-time"].clock_ahead);
        assert_eq!(readings.len(), 2);
        let q = svc.store.quarantine.lock().unwrap();
        let mut reasons: Vec<&str> = q.values().map(|k| k.reason.as_str()).collect();
        reasons.sort();
        assert_eq!(
            reasons,
            [
                "testTime is before 2015",
                "testTime is more than a day after arrival",
                "testTime is more than a day after arrival"
            ]
        );
    }

    #[tokio::test]
    async fn the_clock_ahead_tolerance_is_a_setting() {
        let svc = service(&[], &[]).with_clock_ahead(Duration::from_secs(2 * 3600));
        let t = SourceZone::default().format_local_ms(now_ms() + 3_600_000).unwrap()[..19].replace('T', " ");
        call(&svc, event(&seed_with(json!({"testTime": t})), "")).await;
        assert!(!svc.store.readings.lock().unwrap()["23434335345"].clock_ahead, "an hour is within two");
    }

    #[tokio::test]
    async fn other_methods_are_405() {
        let svc = service(&[], &[]);
        let mut req = event(SEED_EXAMPLE, "");
        *req.method_mut() = Method::GET;
        assert_eq!(call(&svc, req).await.0, 405);
    }
}

/// Whatever the body, the reply is a row of the push reply table, and code 0 means something
/// was kept.
#[cfg(test)]
mod props {
    use super::*;
    use cgm_domain::store::push::memory::MemoryStore;
    use proptest::prelude::*;
    use serde_json::{Value, json};
    use std::sync::atomic::Ordering;

    const SEED_EXAMPLE: &str = include_str!("../../../crates/domain/tests/data/seed-example.json");

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            any::<String>().prop_map(Value::String),
            prop::sample::select(&["01", "5.6", "", "2021-11-02 12:33:33", "5,6", "-1"][..])
                .prop_map(|s| Value::String(s.into())),
        ];
        leaf.prop_recursive(3, 32, 5, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
                prop::collection::btree_map(any::<String>(), inner, 0..5)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    /// Raw bytes, any JSON, the seed example with one field replaced, or an oversized body.
    fn body() -> impl Strategy<Value = Vec<u8>> {
        let field = prop::sample::select(
            &["testId", "deviceSn", "testResult", "testTime", "serialNo", "status", "low", "data", "reservedCode"][..],
        );
        prop_oneof![
            3 => prop::collection::vec(any::<u8>(), 0..300),
            3 => json_value().prop_map(|v| v.to_string().into_bytes()),
            3 => (field, json_value()).prop_map(|(f, v)| {
                let mut body: Value = serde_json::from_str(SEED_EXAMPLE).expect("the seed example");
                if f == "data" || f == "reservedCode" {
                    body[f] = v;
                } else {
                    body["data"][f] = v;
                }
                body.to_string().into_bytes()
            }),
            1 => (MAX_BODY_BYTES - 2..MAX_BODY_BYTES + 64).prop_map(|n| vec![b' '; n]),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn every_reply_is_in_the_design_table(body in body(), failing in any::<bool>(), refusing in any::<bool>()) {
            let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().expect("a runtime");
            let svc = PushService::new(
                MemoryStore::default(),
                PushAuth::new(&[], vec![]),
                SourceZone::default(),
                Duration::from_secs(3),
            );
            svc.store().fail.store(failing, Ordering::SeqCst);
            // A permanent refusal is never a 503: the body goes to quarantine instead.
            svc.store().refuse.store(refusing, Ordering::SeqCst);
            let mut req = Request::new(Body::from(body.clone()));
            *req.method_mut() = Method::POST;
            let resp = rt.block_on(svc.handle(req));
            let reply: Value = serde_json::from_slice(resp.body()).expect("a JSON reply");
            let got = (resp.status().as_u16(), reply);

            let kept = svc.store().readings.lock().unwrap().len() + svc.store().quarantine.lock().unwrap().len();
            if failing {
                prop_assert_eq!(got, (503, json!({"code": 503, "msg": "storage unavailable, retry later"})));
            } else if body.len() > MAX_BODY_BYTES {
                prop_assert_eq!(got, (413, json!({"code": 413, "msg": "body over 64 KiB"})));
                prop_assert_eq!(kept, 1, "a stub is kept");
            } else {
                prop_assert_eq!(got, (200, json!({"code": 0, "msg": ""})));
                prop_assert_eq!(kept, 1, "code 0: the body is a reading or in quarantine");
            }
        }
    }
}
