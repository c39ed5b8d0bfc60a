//! A stand-in EHR on loopback playing the CGM IG's *Data Receiver* (wiremock, with state):
//!
//! - `/.well-known/smart-configuration` names its token endpoint;
//! - `/token` takes SMART Backend Services client credentials: it verifies the client
//!   assertion's signature against the registered public key (RS384 or ES384), its `kid`,
//!   `iss`/`sub`/`aud`, expiry (at most 5 minutes ahead) and that its `jti` is new;
//! - `/$submit-cgm-bundle` needs a live bearer token and answers a `transaction-response`
//!   with one status per entry: `ifNoneExist` by identifier as FHIR's conditional create
//!   (201 created, 200 one match, 412 several), or 400 for every such entry when told it
//!   has no conditional create; it can be told to take only part of a bundle, to answer
//!   429 or 503, to store a bundle and lose its answer (504), to refuse a bundle over a size
//!   (413) or a bundle of a device it will not take (400, whole), or to expire its tokens;
//! - `/metadata`, a CapabilityStatement that may declare `conditionalCreate`;
//! - `/Patient?identifier=` and `POST /Patient/_search` find the patients it was given;
//! - `POST /ServiceRequest/_search` finds the standing orders it was given by the
//!   parameters the IG's `cgm-data-receiver` declares: `code` and `patient` (`Patient/<id>`,
//!   or chained `patient.identifier`).
//!
//! The checks here are written from the specifications, not from the submitter's code. The
//! tests and the benchmarks start it in-process; `cgm-ehr` serves it for `make dev`.

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::signature::{ECDSA_P384_SHA384_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use wiremock::matchers::any;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

pub const CLIENT_ID: &str = "cgm-bridge-test-client";
pub const KEY_ID: &str = "test-key-1";

/// A freshly generated key pair: the private key as the submitter is given it (PKCS#8 PEM)
/// and the public key as the EHR team registers it.
pub struct TestKey {
    pub alg: Algorithm,
    pub private_pem: String,
    public: DecodingKey,
}

fn pem(label: &str, der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = b64.as_bytes().chunks(64).map(|c| std::str::from_utf8(c).expect("base64")).collect();
    format!("-----BEGIN {label}-----\n{}\n-----END {label}-----\n", lines.join("\n"))
}

impl TestKey {
    pub fn es384() -> Self {
        let kp = EcdsaKeyPair::generate(&ECDSA_P384_SHA384_FIXED_SIGNING).expect("generate P-384");
        let pkcs8 = kp.to_pkcs8v1().expect("pkcs8");
        TestKey {
            alg: Algorithm::ES384,
            private_pem: pem("PRIVATE KEY", pkcs8.as_ref()),
            public: DecodingKey::from_ec_der(kp.public_key().as_ref()),
        }
    }

    pub fn rs384() -> Self {
        let kp = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).expect("generate RSA");
        let der = AsDer::<aws_lc_rs::encoding::Pkcs8V1Der>::as_der(&kp).expect("pkcs8");
        TestKey {
            alg: Algorithm::RS384,
            private_pem: pem("PRIVATE KEY", der.as_ref()),
            public: DecodingKey::from_rsa_der(kp.public_key().as_ref()),
        }
    }
}

/// What the stand-in does, changeable while a test runs.
#[derive(Debug, Default)]
pub struct Behaviour {
    /// No conditional create: 400 to every entry with `ifNoneExist` (the IG's rule).
    pub no_conditional_create: bool,
    /// The next submissions are answered with these statuses, one each, before any is read
    /// (429 and 503 among them); `Some(seconds)` adds a `Retry-After`.
    pub fail_next: VecDeque<(u16, Option<u64>)>,
    /// Only this many entries of each bundle are taken; the rest answer 503.
    pub take_at_most: Option<usize>,
    /// The next bundles are stored, but their answer is lost (a 504 from a gateway in
    /// front of it, as when the EHR took longer than the gateway waits).
    pub lose_answers: usize,
    /// A bundle of more entries than this is refused whole with 413.
    pub max_entries: Option<usize>,
    /// What `GET /metadata` says of conditional create on Observation (`None`: nothing).
    pub declares_conditional_create: Option<bool>,
    /// A `ServiceRequest` search ignores `patient` (a server without it) and answers every
    /// patient's standing orders.
    pub lenient_patient: bool,
    /// Readings with these test ids are declined with 422.
    pub decline_test_ids: HashSet<String>,
    /// A bundle naming one of these device serials (its `Device` entry, or an entry's
    /// `device.identifier`) is refused whole with 400, as an EHR refuses a bundle its rules
    /// reject as a whole (a device registered to another patient, say): the same bundle is
    /// refused every time it comes.
    pub refuse_devices: HashSet<String>,
    /// Seconds of life of each token issued.
    pub token_seconds: u64,
    /// Each request it answers is printed to stderr (the `cgm-ehr` binary).
    pub print: bool,
}

#[derive(Debug, Default)]
struct State {
    behaviour: Behaviour,
    /// (resource type, "system|value" of its first identifier) → how many were stored.
    stored: BTreeMap<(String, String), Vec<Value>>,
    tokens: Vec<(String, i64)>,
    jtis: HashSet<String>,
    patients: Vec<(String, String, String)>,
    orders: Vec<Value>,
    searches: Vec<String>,
    violations: Vec<String>,
    submissions: u64,
    token_requests: u64,
    bundles: Vec<Value>,
}

#[derive(Clone)]
pub struct FakeEhr {
    pub server: Arc<MockServer>,
    state: Arc<Mutex<State>>,
    key: Arc<TestKey>,
}

struct Handler {
    state: Arc<Mutex<State>>,
    key: Arc<TestKey>,
    base: String,
}

fn now_s() -> i64 {
    chrono::Utc::now().timestamp()
}

fn outcome(status: u16, code: &str, text: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!({
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": code, "diagnostics": text}]
    }))
}

fn form(body: &[u8]) -> BTreeMap<String, String> {
    url_decode_pairs(std::str::from_utf8(body).unwrap_or(""))
}

fn url_decode_pairs(q: &str) -> BTreeMap<String, String> {
    q.split('&').filter_map(|p| p.split_once('=')).map(|(k, v)| (decode(k), decode(v))).collect()
}

fn decode(s: &str) -> String {
    percent_encoding::percent_decode_str(&s.replace('+', " ")).decode_utf8_lossy().into_owned()
}

impl Handler {
    fn token(&self, req: &Request) -> ResponseTemplate {
        let mut st = self.state.lock().expect("lock");
        st.token_requests += 1;
        let f = form(&req.body);
        let bad = |st: &mut State, why: String| {
            st.violations.push(why);
            ResponseTemplate::new(401).set_body_json(json!({"error": "invalid_client"}))
        };
        if f.get("grant_type").map(String::as_str) != Some("client_credentials") {
            return bad(&mut st, format!("grant_type {:?}", f.get("grant_type")));
        }
        if f.get("client_assertion_type").map(String::as_str)
            != Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
        {
            return bad(&mut st, "client_assertion_type".into());
        }
        let Some(assertion) = f.get("client_assertion") else { return bad(&mut st, "no client_assertion".into()) };
        let header = match jsonwebtoken::decode_header(assertion) {
            Ok(h) => h,
            Err(e) => return bad(&mut st, format!("assertion header: {e}")),
        };
        if header.kid.as_deref() != Some(KEY_ID) || header.alg != self.key.alg {
            return bad(&mut st, format!("kid {:?} alg {:?}", header.kid, header.alg));
        }
        let mut v = Validation::new(self.key.alg);
        v.set_audience(&[format!("{}/token", self.base)]);
        v.set_issuer(&[CLIENT_ID]);
        v.sub = Some(CLIENT_ID.into());
        v.set_required_spec_claims(&["exp", "aud", "iss", "sub"]);
        let claims = match jsonwebtoken::decode::<Value>(assertion, &self.key.public, &v) {
            Ok(d) => d.claims,
            Err(e) => return bad(&mut st, format!("assertion: {e}")),
        };
        if claims["exp"].as_i64().is_none_or(|exp| exp > now_s() + 300 + 5) {
            return bad(&mut st, "exp more than 5 minutes ahead".into());
        }
        let Some(jti) = claims["jti"].as_str() else { return bad(&mut st, "no jti".into()) };
        if !st.jtis.insert(jti.to_string()) {
            return bad(&mut st, "jti reused".into());
        }
        let token = format!("tok-{}", uuid::Uuid::new_v4());
        let secs = st.behaviour.token_seconds.max(1);
        st.tokens.push((token.clone(), now_s() + i64::try_from(secs).unwrap_or(300)));
        ResponseTemplate::new(200).set_body_json(json!({
            "access_token": token, "token_type": "bearer", "expires_in": secs, "scope": f.get("scope")
        }))
    }

    fn authorized(&self, req: &Request, st: &State) -> bool {
        let Some(auth) = req.headers.get("authorization").and_then(|v| v.to_str().ok()) else { return false };
        let Some(t) = auth.strip_prefix("Bearer ") else { return false };
        st.tokens.iter().any(|(v, exp)| v == t && *exp > now_s())
    }

    fn submit(&self, req: &Request) -> ResponseTemplate {
        let mut st = self.state.lock().expect("lock");
        if !self.authorized(req, &st) {
            return outcome(401, "login", "no valid bearer token");
        }
        st.submissions += 1;
        if let Some((status, after)) = st.behaviour.fail_next.pop_front() {
            let mut r = outcome(status, "transient", "try again later");
            if let Some(s) = after {
                r = r.insert_header("retry-after", s.to_string().as_str());
            }
            return r;
        }
        let Ok(bundle) = serde_json::from_slice::<Value>(&req.body) else {
            return outcome(400, "structure", "not JSON");
        };
        if bundle["resourceType"] != "Bundle"
            || bundle["type"] != "transaction"
            || bundle["timestamp"].as_str().is_none()
        {
            st.violations.push("not a transaction bundle with a timestamp".into());
            return outcome(400, "invalid", "a cgm-data-submission-bundle is a transaction with a timestamp");
        }
        let names_refused = bundle["entry"].as_array().into_iter().flatten().any(|e| {
            let r = &e["resource"];
            let sn = if r["resourceType"] == "Device" {
                &r["identifier"][0]["value"]
            } else {
                &r["device"]["identifier"]["value"]
            };
            sn.as_str().is_some_and(|sn| st.behaviour.refuse_devices.contains(sn))
        });
        if names_refused {
            return outcome(400, "business-rule", "this EHR takes no data of the device");
        }
        let entries = bundle["entry"].as_array().map_or(0, Vec::len);
        if st.behaviour.max_entries.is_some_and(|m| entries > m) {
            return outcome(413, "too-costly", "the bundle has too many entries");
        }
        st.bundles.push(bundle.clone());
        let mut out = Vec::new();
        for (i, e) in bundle["entry"].as_array().cloned().unwrap_or_default().iter().enumerate() {
            if st.behaviour.take_at_most.is_some_and(|n| i >= n) {
                out.push(json!({"response": {"status": "503 Service Unavailable"}}));
                continue;
            }
            let r = &e["resource"];
            let ty = r["resourceType"].as_str().unwrap_or("").to_string();
            if e["request"]["method"] != "POST" || e["request"]["url"] != ty.as_str() {
                st.violations.push(format!("entry {i} is not a POST of its type"));
                out.push(json!({"response": {"status": "400 Bad Request"}}));
                continue;
            }
            let ident = format!(
                "{}|{}",
                r["identifier"][0]["system"].as_str().unwrap_or(""),
                r["identifier"][0]["value"].as_str().unwrap_or("")
            );
            let test_id = r["identifier"][0]["value"].as_str().unwrap_or("");
            if ty == "Observation" && st.behaviour.decline_test_ids.contains(test_id) {
                out.push(json!({"response": {"status": "422 Unprocessable Entity"}}));
                continue;
            }
            let key = (ty.clone(), ident.clone());
            let status = match e["request"]["ifNoneExist"].as_str() {
                Some(_) if st.behaviour.no_conditional_create => "400 Bad Request".to_string(),
                Some(q) => {
                    let want = url_decode_pairs(q);
                    if want.get("identifier") != Some(&ident) {
                        st.violations.push(format!("ifNoneExist {q:?} is not the entry's identifier {ident:?}"));
                    }
                    match st.stored.get(&key).map_or(0, Vec::len) {
                        0 => {
                            st.stored.entry(key).or_default().push(r.clone());
                            "201 Created".into()
                        }
                        1 => "200 OK".into(),
                        _ => "412 Precondition Failed".into(),
                    }
                }
                None => {
                    st.stored.entry(key).or_default().push(r.clone());
                    "201 Created".into()
                }
            };
            out.push(json!({"response": {"status": status}}));
        }
        if st.behaviour.print {
            let mut by_status: BTreeMap<String, usize> = BTreeMap::new();
            for e in &out {
                *by_status.entry(e["response"]["status"].as_str().unwrap_or("?").to_string()).or_default() += 1;
            }
            let stored: usize = st.stored.values().map(Vec::len).sum();
            eprintln!("cgm-ehr: $submit-cgm-bundle of {} entries: {by_status:?}; {stored} resources stored", out.len());
        }
        if st.behaviour.lose_answers > 0 {
            st.behaviour.lose_answers -= 1;
            return outcome(504, "timeout", "the gateway gave up waiting (the bundle was stored)");
        }
        ResponseTemplate::new(200)
            .set_body_json(json!({"resourceType": "Bundle", "type": "transaction-response", "entry": out}))
    }

    fn metadata(&self) -> ResponseTemplate {
        let st = self.state.lock().expect("lock");
        let mut observation = json!({"type": "Observation", "interaction": [{"code": "create"}]});
        if let Some(c) = st.behaviour.declares_conditional_create {
            observation["conditionalCreate"] = json!(c);
        }
        ResponseTemplate::new(200).set_body_json(json!({
            "resourceType": "CapabilityStatement", "status": "active", "kind": "instance", "fhirVersion": "4.0.1",
            // The IG's rule for every Data Receiver (profiles.fsh, Instance: cgm-data-receiver).
            "instantiates": ["http://hl7.org/fhir/uv/cgm/CapabilityStatement/cgm-data-receiver"],
            "format": ["json"], "rest": [{"mode": "server", "resource": [observation]}],
        }))
    }

    /// A search's parameters: the query of a GET, the form body of a `POST …/_search`.
    fn search_params(req: &Request) -> BTreeMap<String, String> {
        if req.method.as_str() == "POST" { form(&req.body) } else { url_decode_pairs(req.url.query().unwrap_or("")) }
    }

    fn patient(&self, req: &Request) -> ResponseTemplate {
        let mut st = self.state.lock().expect("lock");
        if !self.authorized(req, &st) {
            return outcome(401, "login", "no valid bearer token");
        }
        let q = Self::search_params(req);
        st.searches.push(format!("{} {}", req.method, req.url.path()));
        let want = q.get("identifier").cloned().unwrap_or_default();
        let entries: Vec<Value> = st
            .patients
            .iter()
            .filter(|(sys, val, _)| format!("{sys}|{val}") == want)
            .map(|(_, _, id)| json!({"resource": {"resourceType": "Patient", "id": id}, "search": {"mode": "match"}}))
            .collect();
        searchset(entries)
    }

    /// `ServiceRequest` search with the parameters the IG's `cgm-data-receiver` declares,
    /// `patient` (`Patient/<id>`, or chained `patient.identifier`) and `code`. Another
    /// parameter is refused (400) under `Prefer: handling=strict` and otherwise ignored, as
    /// FHIR's lenient handling does; told it is `lenient_patient`, it ignores `patient` too
    /// (a server without that parameter) and answers every patient's orders.
    fn service_requests(&self, req: &Request) -> ResponseTemplate {
        let mut st = self.state.lock().expect("lock");
        if !self.authorized(req, &st) {
            return outcome(401, "login", "no valid bearer token");
        }
        st.searches.push(format!("{} {}", req.method, req.url.path()));
        let q = Self::search_params(req);
        let strict =
            req.headers.get("prefer").and_then(|v| v.to_str().ok()).is_some_and(|v| v.contains("handling=strict"));
        let known = if st.behaviour.lenient_patient {
            vec!["code", "_count"]
        } else {
            vec!["patient", "patient.identifier", "code", "_count"]
        };
        if let Some(k) = q.keys().find(|k| !known.contains(&k.as_str()))
            && strict
            && !st.behaviour.lenient_patient
        {
            st.violations.push(format!("ServiceRequest search parameter {k:?} is not one the IG declares"));
            return outcome(400, "not-supported", "unknown search parameter");
        }
        // The patient the search names: by logical id, or by identifier through the patients it has.
        let subject = if st.behaviour.lenient_patient {
            None
        } else {
            match (q.get("patient"), q.get("patient.identifier")) {
                (Some(r), _) => Some(Some(if r.contains('/') { r.clone() } else { format!("Patient/{r}") })),
                (None, Some(ident)) => Some(
                    st.patients
                        .iter()
                        .find(|(sys, val, _)| format!("{sys}|{val}") == *ident)
                        .map(|(_, _, id)| format!("Patient/{id}")),
                ),
                (None, None) => None,
            }
        };
        let code = q.get("code").cloned().unwrap_or_default();
        let entries: Vec<Value> = st
            .orders
            .iter()
            .filter(|o| match &subject {
                None => true,
                Some(s) => s.as_deref().is_some_and(|s| o["subject"]["reference"] == s),
            })
            .filter(|o| {
                code.is_empty()
                    || o["code"]["coding"].as_array().into_iter().flatten().any(|c| {
                        let (sys, val) = (c["system"].as_str().unwrap_or(""), c["code"].as_str().unwrap_or(""));
                        code == format!("{sys}|{val}") || code == val
                    })
            })
            .map(|o| json!({"resource": o, "search": {"mode": "match"}}))
            .collect();
        searchset(entries)
    }
}

fn searchset(entries: Vec<Value>) -> ResponseTemplate {
    ResponseTemplate::new(200)
        .set_body_json(json!({"resourceType": "Bundle", "type": "searchset", "total": entries.len(), "entry": entries}))
}

impl Respond for Handler {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        match (req.method.as_str(), req.url.path()) {
            ("GET", "/.well-known/smart-configuration") => ResponseTemplate::new(200).set_body_json(json!({
                "token_endpoint": format!("{}/token", self.base),
                "grant_types_supported": ["client_credentials"],
                "token_endpoint_auth_methods_supported": ["private_key_jwt"],
                "token_endpoint_auth_signing_alg_values_supported": ["RS384", "ES384"],
                "capabilities": ["client-confidential-asymmetric"],
            })),
            ("POST", "/token") => self.token(req),
            ("POST", "/$submit-cgm-bundle") => self.submit(req),
            ("GET", "/metadata") => self.metadata(),
            ("GET", "/Patient") | ("POST", "/Patient/_search") => self.patient(req),
            ("POST", "/ServiceRequest/_search") => self.service_requests(req),
            _ => outcome(404, "not-found", "no such route"),
        }
    }
}

impl FakeEhr {
    pub async fn start(key: TestKey) -> Self {
        Self::serve(key, MockServer::start().await).await
    }

    /// The same on a listener of the caller's (a fixed port).
    pub async fn start_on(key: TestKey, listener: std::net::TcpListener) -> Self {
        Self::serve(key, MockServer::builder().listener(listener).start().await).await
    }

    async fn serve(key: TestKey, server: MockServer) -> Self {
        let state = Arc::new(Mutex::new(State {
            behaviour: Behaviour { token_seconds: 300, ..Default::default() },
            ..Default::default()
        }));
        let key = Arc::new(key);
        Mock::given(any())
            .respond_with(Handler { state: state.clone(), key: key.clone(), base: server.uri() })
            .mount(&server)
            .await;
        FakeEhr { server: Arc::new(server), state, key }
    }

    pub fn base(&self) -> String {
        self.server.uri()
    }

    pub fn private_pem(&self) -> &str {
        &self.key.private_pem
    }

    pub fn behave(&self, f: impl FnOnce(&mut Behaviour)) {
        f(&mut self.state.lock().expect("lock").behaviour);
    }

    pub fn add_patient(&self, system: &str, value: &str, id: &str) {
        self.state.lock().expect("lock").patients.push((system.into(), value.into(), id.into()));
    }

    /// A `ServiceRequest` (a standing order) it holds, as the EHR's clinicians would enter it.
    pub fn add_order(&self, order: Value) {
        self.state.lock().expect("lock").orders.push(order);
    }

    /// Each search it answered, as `METHOD /path`.
    pub fn searches(&self) -> Vec<String> {
        self.state.lock().expect("lock").searches.clone()
    }

    /// How many copies of each identifier of this type it stored.
    pub fn stored(&self, resource_type: &str) -> BTreeMap<String, usize> {
        let st = self.state.lock().expect("lock");
        st.stored.iter().filter(|((t, _), _)| t == resource_type).map(|((_, id), v)| (id.clone(), v.len())).collect()
    }

    /// The stored resources of this type (the first copy of each).
    pub fn resources(&self, resource_type: &str) -> Vec<Value> {
        let st = self.state.lock().expect("lock");
        st.stored.iter().filter(|((t, _), _)| t == resource_type).filter_map(|(_, v)| v.first().cloned()).collect()
    }

    pub fn bundles(&self) -> Vec<Value> {
        self.state.lock().expect("lock").bundles.clone()
    }

    pub fn violations(&self) -> Vec<String> {
        self.state.lock().expect("lock").violations.clone()
    }

    /// Every token issued so far stops being accepted (as after a key rotation).
    pub fn revoke_tokens(&self) {
        self.state.lock().expect("lock").tokens.clear();
    }

    /// Every access token it issued.
    pub fn issued_tokens(&self) -> Vec<String> {
        self.state.lock().expect("lock").tokens.iter().map(|(t, _)| t.clone()).collect()
    }

    pub fn token_requests(&self) -> u64 {
        self.state.lock().expect("lock").token_requests
    }

    pub fn submissions(&self) -> u64 {
        self.state.lock().expect("lock").submissions
    }
}
