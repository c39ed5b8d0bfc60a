//! The release bootstraps, as `sam build` made them, under a Lambda Runtime API on loopback
//! with logging turned all the way up (`AWS_LAMBDA_LOG_LEVEL=TRACE`, then `RUST_LOG` asking
//! for every crate's TRACE): no push key, follower token, SigV4 header, session token or
//! patient field reaches stdout or stderr, from the HTTP functions or from the events
//! function handling a stored reading's stream record, nor the FHIR submitter's private key or
//! access tokens. The runtime logs each raw event at TRACE, so
//! this holds only because logging caps every target but the project's own at INFO.
//!
//! The bootstraps are arm64 (what Lambda runs); on another host they run under
//! `qemu-aarch64-static` with Debian's arm64 C library (`tools/install.sh qemu` installs
//! both). `make test` runs `sam build` before these tests.

use cgm_local::repo_root;
use cgm_tests::fake_ehr::{CLIENT_ID, FakeEhr, KEY_ID, TestKey};
use cgm_tests::fake_ssm::FakeSsm;
use cgm_tests::runtime_api::RuntimeApi;
use cgm_tests::{SEED_EXAMPLE, Stack};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

const KEY: &str = "CANARY-PUSHKEY-5f0b9a2c7d4e41a8b3c6";
const TOKEN: &str = "c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00";
const SIGV4: &str = "AWS4-HMAC-SHA256 Credential=CANARY-AKID/20261201/cn-north-1/execute-api/aws4_request, \
                     SignedHeaders=host;x-amz-date, Signature=CANARY-SIGNATURE-77aa";
const SESSION: &str = "CANARY-SESSION-TOKEN-IQoJb3JpZ2lu";
const JWT_KEY: &str = "CANARY-JWT-SIGNING-KEY-0123456789abcdef";
const PERSONAL: [(&str, &str); 5] = [
    ("idCard", "CANARY-IDCARD-430424"),
    ("patientName", "CANARY-NAME-李雷"),
    ("visitId", "CANARY-VISIT-2001"),
    ("patientId", "CANARY-PATIENT-3002"),
    ("inSerialId", "CANARY-INSERIAL-4003"),
];

fn bootstrap(function: &str) -> PathBuf {
    let p = repo_root().join(".aws-sam/build").join(function).join("bootstrap");
    assert!(p.is_file(), "{} is missing: run `make sam-build` first (`make test` does)", p.display());
    p
}

/// How to run an arm64 bootstrap here.
fn command(bootstrap: &PathBuf) -> tokio::process::Command {
    if std::env::consts::ARCH == "aarch64" {
        return tokio::process::Command::new(bootstrap);
    }
    let qemu = "/usr/bin/qemu-aarch64-static";
    let sysroot = "/usr/aarch64-linux-gnu";
    assert!(
        std::path::Path::new(qemu).is_file() && std::path::Path::new(sysroot).join("lib").is_dir(),
        "running the arm64 bootstraps needs {qemu} and {sysroot}: `tools/install.sh qemu` installs Debian's \
         qemu-user-static and libc6-arm64-cross (make test does)"
    );
    let mut c = tokio::process::Command::new(qemu);
    c.arg("-L").arg(sysroot).arg(bootstrap);
    c
}

/// An API Gateway event carrying every canary a client could send in headers and query.
fn event(route: &str, path: &str, params: &[(&str, &str)], query: &str, body: &str) -> String {
    let (method, route) = route.split_once(' ').unwrap();
    let mut e = cgm_tests::api_event(method, route, path, params, query, Some(body));
    let h = &mut e["headers"];
    h["x-api-key"] = json!(KEY);
    h["authorization"] = json!(SIGV4);
    h["x-amz-security-token"] = json!(SESSION);
    h["api-secret"] = json!(TOKEN);
    e.to_string()
}

fn push_body() -> String {
    let mut body: Value = serde_json::from_str(SEED_EXAMPLE).unwrap();
    for (k, v) in PERSONAL {
        body["data"][k] = json!(v);
    }
    body["data"]["testId"] = json!("runtime-canary-1");
    body.to_string()
}

/// Runs one bootstrap on `events` and returns what it wrote, stdout then stderr; every
/// invocation must succeed.
async fn run(function: &str, env: &[(&str, String)], events: &[String]) -> String {
    let (text, errors) = run_reporting(function, env, events).await;
    assert!(errors.is_empty(), "{function} reported errors: {errors:?}\n{text}");
    text
}

/// Runs one bootstrap on `events`: what it wrote, and the errors it reported to the runtime.
async fn run_reporting(function: &str, env: &[(&str, String)], events: &[String]) -> (String, Vec<String>) {
    let api = RuntimeApi::start().await.expect("a Runtime API stand-in");
    for (i, e) in events.iter().enumerate() {
        api.push(format!("req-{i}"), e.clone());
    }
    let mut cmd = command(&bootstrap(function));
    cmd.env_clear()
        .env("AWS_LAMBDA_RUNTIME_API", api.addr.to_string())
        .env("AWS_REGION", "cn-north-1")
        .env("AWS_LAMBDA_FUNCTION_NAME", function)
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_LOG_FORMAT", "JSON")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("starting the bootstrap");
    // Read both pipes while it runs: a full pipe would stop the function mid-line.
    let drain = |pipe: Option<Box<dyn tokio::io::AsyncRead + Unpin + Send>>| {
        tokio::spawn(async move {
            let mut buf = Vec::new();
            if let Some(mut p) = pipe {
                let _ = tokio::io::AsyncReadExt::read_to_end(&mut p, &mut buf).await;
            }
            buf
        })
    };
    let stdout = drain(child.stdout.take().map(|p| Box::new(p) as Box<dyn tokio::io::AsyncRead + Unpin + Send>));
    let stderr = drain(child.stderr.take().map(|p| Box::new(p) as Box<dyn tokio::io::AsyncRead + Unpin + Send>));
    let answered = tokio::time::timeout(Duration::from_secs(60), api.wait_for(events.len())).await;
    let _ = child.start_kill();
    let _ = child.wait().await;
    let (out, err) = (stdout.await.unwrap_or_default(), stderr.await.unwrap_or_default());
    let text = format!("{}{}", String::from_utf8_lossy(&out), String::from_utf8_lossy(&err));
    assert!(answered.is_ok(), "{function} did not answer {} events in 60 s; it wrote:\n{text}", events.len());
    (text, api.errors())
}

#[tokio::test]
async fn no_secret_or_personal_field_reaches_the_real_runtimes_output_at_trace() {
    let stack = Stack::new().await;
    let mut env: Vec<(&str, String)> =
        stack.table_vars.iter().map(|(k, v)| (k.as_str(), v.clone())).collect::<Vec<_>>();
    env.push(("DYNAMODB_ENDPOINT", stack.endpoint.clone()));
    // Inside Lambda the push key comes from SSM, read at cold start: from a stand-in here.
    // The FHIR submitter's private key comes from SSM too; its EHR is a stand-in.
    let ehr = FakeEhr::start(TestKey::es384()).await;
    let ssm = FakeSsm::start(&[
        ("/canary/push-key", KEY),
        ("/canary/jwt-key", JWT_KEY),
        ("/canary/fhir-submit-key", ehr.private_pem()),
    ])
    .await;
    env.push(("PUSH_KEY_PARAM", "/canary/push-key".to_string()));
    env.push(("NIGHTSCOUT_JWT_KEY_PARAM", "/canary/jwt-key".to_string()));
    env.push(("AWS_ENDPOINT_URL_SSM", ssm.url.clone()));
    env.push(("PARTNER_API_BASE_URL", cgm_tests::net::refused_url()));
    // A valid reading too (the seed's is a warm-up one), so the FHIR submitter has one to send.
    let mut valid: Value = serde_json::from_str(&push_body()).unwrap();
    valid["data"]["testId"] = json!("runtime-canary-2");
    valid["data"]["status"] = json!("0");
    valid["data"]["serialNo"] = json!(2);
    valid["data"]["testTime"] = json!("2021-11-02 12:36:33");
    let push = vec![
        event("POST /sinocare/cgm", "/sinocare/cgm", &[], &format!("key={KEY}"), &push_body()),
        event("POST /sinocare/cgm", "/sinocare/cgm", &[], &format!("key={KEY}"), &valid.to_string()),
        event("POST /sinocare/cgm", "/sinocare/cgm", &[], "key=CANARY-WRONG-KEY", &push_body()),
    ];
    let partner = vec![
        event("POST /partner/users", "/partner/users", &[], "", r#"{"partner_uid":"CANARY-UID-9"}"#),
        event(
            "GET /partner/users/{open_id}/glucose",
            "/partner/users/o1/glucose",
            &[("open_id", "o1")],
            "start_time=1&end_time=2",
            "",
        ),
    ];
    let nightscout = vec![
        event("GET /api/v1/entries.json", "/api/v1/entries.json", &[], &format!("token={TOKEN}&count=5"), ""),
        event("GET /api/v1/status.json", "/api/v1/status.json", &[], &format!("secret={TOKEN}"), ""),
        // The token in the path, as Nightscout's access-token exchange takes it.
        event(
            "GET /api/v2/authorization/request/{token}",
            &format!("/api/v2/authorization/request/{TOKEN}"),
            &[("token", TOKEN)],
            "",
            "",
        ),
    ];
    let read = vec![event(
        "GET /devices/{device_sn}/readings",
        "/devices/23xxdrt33/readings",
        &[("device_sn", "23xxdrt33")],
        "",
        "",
    )];
    env.push(("FHIR_PATIENT_IDENTIFIER_SYSTEM", "urn:canary:patient-id".to_string()));
    // The FHIR function typesets the summary's PDF in the fonts layer's fonts.
    env.push(("AGP_FONT_DIR", cgm_local::font_dir().display().to_string()));
    let fhir = vec![
        event("GET /fhir/Observation", "/fhir/Observation", &[], "device=23xxdrt33&include-warm-up=true", ""),
        event("GET /fhir/Device/{id}", "/fhir/Device/23xxdrt33", &[("id", "23xxdrt33")], "", ""),
        event(
            "GET /fhir/DiagnosticReport",
            "/fhir/DiagnosticReport",
            &[],
            "device=23xxdrt33&date=ge2021-11-01&date=le2021-11-02",
            "",
        ),
    ];
    let levels = [
        ("AWS_LAMBDA_LOG_LEVEL", "TRACE".to_string()),
        ("RUST_LOG", "trace,lambda_runtime=trace,lambda_http=trace,aws_smithy_runtime=trace,hyper=trace".to_string()),
    ];
    let mut canaries: Vec<&str> =
        vec![KEY, "CANARY-WRONG-KEY", TOKEN, "CANARY-AKID", "CANARY-SIGNATURE", SESSION, "CANARY-UID-9", JWT_KEY];
    canaries.extend(PERSONAL.iter().map(|(_, v)| *v));
    let check = |function: &str, level: &(&str, String), out: &str, message: &str| {
        assert!(
            out.contains(&format!(r#""message":"{message}""#)),
            "{function} with {}={} logged no {message:?} line, so logging was not on:\n{out}",
            level.0,
            level.1
        );
        for c in &canaries {
            if let Some(line) = out.lines().find(|l| l.contains(c)) {
                panic!("{function} with {}={}: canary {c} reached the output: {line}", level.0, level.1);
            }
        }
    };
    for level in &levels {
        for (function, events, message) in [
            ("PushFunction", &push, "push"),
            ("PartnerFunction", &partner, "partner"),
            ("ReadFunction", &read, "read"),
            ("NightscoutFunction", &nightscout, "nightscout"),
        ] {
            let mut env = env.clone();
            env.push((level.0, level.1.clone()));
            let out = run(function, &env, events).await;
            check(function, level, &out, message);
        }
        // The push above stored a reading with every personal field: the events function
        // gets its stream record, with patient fields allowed into events and a bus that
        // cannot be reached (its failure is logged), then the scheduled check.
        let (_, shards) = stack.stream_records("READINGS_TABLE").await;
        let records: Vec<_> = shards.into_iter().flat_map(|(_, r)| r).collect();
        assert!(!records.is_empty(), "the push stored a reading, so the stream has its record");
        let batch = serde_json::to_string(&cgm_local::stream::event_of(&records)).unwrap();
        let mut env = env.clone();
        env.push((level.0, level.1.clone()));
        env.push(("EVENT_BUS_NAME", "canary-bus".to_string()));
        env.push(("EVENT_PATIENT_FIELDS", "true".to_string()));
        env.push(("AWS_ENDPOINT_URL_EVENTBRIDGE", cgm_tests::net::refused_url()));
        let (out, errors) = run_reporting("EventsFunction", &env, &[batch, r#"{"check":"sensors"}"#.to_string()]).await;
        check("EventsFunction", level, &out, "stream batch");
        assert!(out.contains("PutEvents failed"), "the unreachable bus was tried and its failure logged:\n{out}");
        // The batch's records are failed for the retry (its answer, not an error); the check
        // finds the session's outbox still unsent and fails, so the function's errors alarm
        // tells the operator the bus is not taking events.
        assert!(
            errors.len() == 1
                && errors[0].starts_with("/2018-06-01/runtime/invocation/req-1/error")
                && errors[0].contains("1 sensors could not be brought up to date"),
            "only the check fails, on the unsent outbox: {errors:?}\n{out}"
        );
        // The session the events function kept names the patient: the FHIR function returns
        // its id in bodies, never in its output.
        let out = run("FhirFunction", &env, &fhir).await;
        check("FhirFunction", level, &out, "fhir");
    }
    // The FHIR submitter sends that sensor's readings to the stand-in EHR: neither its key
    // nor the access tokens it gets reach its output. It needs the sensor's session (naming
    // the patient), which the events function above could not keep (its bus is unreachable,
    // so its records stay unfinished): the local stream consumer keeps it, after the events
    // function's runs, so they meet no session.
    let consumer = cgm_local::stream_consumer(&stack.config(&[])).await.expect("a stream consumer");
    let consuming = tokio::spawn(consumer.run());
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let sensors = cgm_shared::store::sensors::dynamodb::DynamoSensorStore::new(
        stack.client.clone(),
        stack.table("SENSORS_TABLE").to_string(),
    );
    while cgm_domain::store::sensors::SensorStore::session(&sensors, &"23xxdrt33".into())
        .await
        .expect("the sensors table")
        .is_none_or(|s| s.patient_id.is_none())
    {
        assert!(std::time::Instant::now() < deadline, "the local stream consumer kept no session in 60 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    consuming.abort();
    // The first level's run sends the reading (a token, a bundle); the second's finds it sent.
    let mut submitted = false;
    let mut submit_out = String::new();
    for level in &levels {
        let mut submit = env.clone();
        submit.push((level.0, level.1.clone()));
        submit.extend([
            ("FHIR_EHR_BASE_URL", ehr.base()),
            ("FHIR_CLIENT_ID", CLIENT_ID.to_string()),
            ("FHIR_CLIENT_KEY_ID", KEY_ID.to_string()),
            ("FHIR_CLIENT_SIGNING_ALG", "ES384".to_string()),
            ("FHIR_CLIENT_PRIVATE_KEY_PARAM", "/canary/fhir-submit-key".to_string()),
            ("FHIR_SUBMIT_PROFILES", "cgm-sensor-reading".to_string()),
        ]);
        let events = [r#"{"run":"submit"}"#.to_string(), r#"{"run":"submit","device_sn":"23xxdrt33"}"#.to_string()];
        let out = run("FhirSubmitFunction", &submit, &events).await;
        check("FhirSubmitFunction", level, &out, "submission run");
        submitted |= out.contains("new EHR access token");
        submit_out.push_str(&out);
        for secret in ehr.issued_tokens().iter().map(String::as_str).chain(ehr.private_pem().lines().skip(1).take(2)) {
            if let Some(line) = out.lines().find(|l| l.contains(secret)) {
                panic!("FhirSubmitFunction: its key or an access token reached the output: {line}");
            }
        }
    }
    assert!(submitted, "the submitter got a token and sent the stored reading at some level:\n{submit_out}");
    assert!(
        !ehr.stored("Observation").is_empty(),
        "the stand-in EHR got the reading (and its patient identifier, which no output showed)"
    );
}
