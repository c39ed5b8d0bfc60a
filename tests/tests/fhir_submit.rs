//! The FHIR submitter end to end: days of one sensor pushed through the push route into
//! DynamoDB Local, its session and rollups kept by the stream consumer, then the submitter
//! (built from its configuration as its cold start builds it, checkpoints in DynamoDB
//! Local) against a stand-in EHR on loopback that checks SMART Backend Services and plays
//! `$submit-cgm-bundle` (`cgm_tests::fake_ehr`). What the EHR stored is counted per
//! identifier: every valid reading once, across outages, partial acceptance and restarts.
//! Every bundle sent is run through the FHIR validator. Devices whose stored values no push
//! makes (impossible times, checkpoints at the calendar's end) and a device whose bundles the
//! EHR refuses whole fail alone: counted, and the others are sent.

use cgm_domain::ids::DeviceSn;
use cgm_domain::session::Session;
use cgm_domain::store::sensors::SensorStore;
use cgm_domain::store::submissions::checkpoints::{CheckpointStore, Kind};
use cgm_domain::time::Timestamp;
use cgm_shared::store::attr;
use cgm_shared::store::sensors::dynamodb::DynamoSensorStore;
use cgm_tests::fake_ehr::{CLIENT_ID, FakeEhr, KEY_ID, TestKey};
use cgm_tests::fhir_validator::validate;
use cgm_tests::filter_pattern::FilterPattern;
use cgm_tests::{Stack, capture_logs, seed_with, serve_locally};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const MPI: &str = "https://hospital.example/fhir/sid/mpi";
/// 2024-05-01T00:00:00+08:00.
const DAY0: i64 = 1_714_492_800_000;
const MIN5: i64 = 300_000;
const TEST_ID_SYSTEM: &str = "urn:cgm-bridge:sinocare:test-id";

/// `days` of 5-minute readings of `sn`, the first three warm-up.
fn bodies(sn: &str, days: i64) -> Vec<String> {
    (1..=days * 288)
        .map(|s| {
            let local =
                chrono::DateTime::from_timestamp_millis(DAY0 + (s - 1) * MIN5).unwrap() + chrono::Duration::hours(8);
            seed_with(json!({
                "testId": format!("{sn}-{s:05}"), "deviceSn": sn, "serialNo": s,
                "testTime": local.format("%Y-%m-%d %H:%M:%S").to_string(),
                "testResult": format!("{:.1}", 4.0 + (s % 80) as f64 / 10.0),
                "status": if s <= 3 { "1" } else { "0" }, "increMinute": 5,
                "patientName": "张三丰", "patientId": "MPI-4711", "idCard": "430424199001011234",
                "visitId": "V-2001", "inSerialId": "IN-3003",
            }))
        })
        .collect()
}

fn valid_ids(sn: &str, days: i64) -> Vec<String> {
    (4..=days * 288).map(|s| format!("{TEST_ID_SYSTEM}|{sn}-{s:05}")).collect()
}

/// Pushes the readings and waits until the stream consumer has kept the session with its
/// patient and the last reading.
async fn seed(stack: &Stack, sn: &str, days: i64) {
    let last = DAY0 + (days * 288 - 1) * MIN5;
    push_and_wait(stack, &bodies(sn, days), |s| s.last.at.ms() == last && s.patient_id.is_some()).await;
}

/// Pushes `bodies` (of one device) and waits until its session, as the stream consumer
/// keeps it, is `done`.
async fn push_and_wait(stack: &Stack, bodies: &[String], done: impl Fn(&cgm_domain::session::Session) -> bool) {
    let sn: Value = serde_json::from_str(&bodies[0]).unwrap();
    let sn = sn["data"]["deviceSn"].as_str().unwrap().to_string();
    let cfg = stack.config(&[]);
    let base = serve_locally(&cfg).await;
    let consumer = cgm_local::stream_consumer(&cfg).await.expect("a stream consumer");
    let running = tokio::spawn(consumer.run());
    let http = reqwest::Client::new();
    for chunk in bodies.chunks(48) {
        let mut set = tokio::task::JoinSet::new();
        for b in chunk {
            let (http, url, b) = (http.clone(), format!("{base}/sinocare/cgm"), b.clone());
            // As Sinocare does: a push answered 503 (storage slow on a busy machine) is sent again.
            set.spawn(async move {
                for _ in 0..5 {
                    let status = http.post(&url).body(b.clone()).send().await.expect("push").status().as_u16();
                    if status != 503 {
                        return status;
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                503
            });
        }
        while let Some(r) = set.join_next().await {
            assert_eq!(r.unwrap(), 200);
        }
    }
    let sensors = cgm_shared::store::sensors::dynamodb::DynamoSensorStore::new(
        stack.client.clone(),
        stack.table("SENSORS_TABLE").into(),
    );
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        use cgm_domain::store::sensors::SensorStore;
        let s = sensors.session(&DeviceSn::from(sn.as_str())).await.expect("sessions");
        if s.as_ref().is_some_and(&done) {
            break;
        }
        assert!(Instant::now() < deadline, "the stream consumer kept no whole session in 90 s");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // The rollups are written in the same batches as the session.
    tokio::time::sleep(Duration::from_millis(500)).await;
    running.abort();
}

async fn session_of(stack: &Stack, sn: &str) -> cgm_domain::session::Session {
    use cgm_domain::store::sensors::SensorStore;
    let sensors = cgm_shared::store::sensors::dynamodb::DynamoSensorStore::new(
        stack.client.clone(),
        stack.table("SENSORS_TABLE").into(),
    );
    sensors.session(&DeviceSn::from(sn)).await.expect("sessions").expect("a session")
}

fn settings<'a>(ehr: &'a FakeEhr, alg: &'a str, extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut v = vec![
        ("FHIR_EHR_BASE_URL", Box::leak(ehr.base().into_boxed_str()) as &str),
        ("FHIR_CLIENT_ID", CLIENT_ID),
        ("FHIR_CLIENT_KEY_ID", KEY_ID),
        ("FHIR_CLIENT_PRIVATE_KEY", ehr.private_pem()),
        ("FHIR_CLIENT_SIGNING_ALG", alg),
        ("FHIR_PATIENT_IDENTIFIER_SYSTEM", MPI),
        // The fonts layer's fonts, for the summaries' PDFs.
        ("AGP_FONT_DIR", Box::leak(cgm_local::font_dir().display().to_string().into_boxed_str()) as &str),
    ];
    v.extend_from_slice(extra);
    v
}

fn later() -> Instant {
    Instant::now() + Duration::from_secs(120)
}

fn now() -> cgm_domain::time::Timestamp {
    cgm_domain::time::Timestamp::now()
}

/// Each identifier stored exactly once: the map of those stored more often.
fn twice(stored: &BTreeMap<String, usize>) -> Vec<(&String, &usize)> {
    stored.iter().filter(|(_, n)| **n != 1).collect()
}

#[tokio::test]
async fn every_valid_reading_reaches_the_ehr_once_across_outages_partial_acceptance_and_a_restart() {
    let stack = Stack::new().await;
    let sn = "SN-SUBMIT";
    seed(&stack, sn, 2).await;
    let ehr = FakeEhr::start(TestKey::es384()).await;
    let env = settings(&ehr, "ES384", &[("FHIR_SUBMIT_BATCH", "200"), ("FHIR_SUMMARY_PERIOD_DAYS", "1")]);
    let cfg = stack.config(&env);

    // The first run meets an outage (503), then 429 with Retry-After, then an EHR that
    // stores the bundle but whose answer is lost (504), then one that takes only the first
    // 100 entries of each bundle.
    ehr.behave(|b| {
        b.fail_next.extend([(503, None), (429, Some(1))]);
        b.lose_answers = 1;
        b.take_at_most = Some(100);
    });
    let submitter = cgm_fhir_submit::from_config(&cfg).await.expect("the submitter starts");
    let first = submitter.run(now(), later()).await.expect("a run");
    assert_eq!(first.devices, 1);
    assert_eq!(first.unfinished, 1, "{first:?}");
    assert_eq!(first.accepted, 99, "the device and 99 readings were taken: {first:?}");
    let stored = ehr.stored("Observation");
    assert_eq!(stored.len(), 99);
    assert_eq!(ehr.violations(), Vec::<String>::new());

    // A restart (a new cold start: a new token, the checkpoint from DynamoDB) with an EHR
    // that takes everything.
    ehr.behave(|b| b.take_at_most = None);
    drop(submitter);
    let submitter = cgm_fhir_submit::from_config(&cfg).await.expect("the submitter starts again");
    let second = submitter.run(now(), later()).await.expect("a run");
    assert_eq!(second.unfinished, 0, "{second:?}");
    let stored = ehr.stored("Observation");
    let readings: BTreeMap<String, usize> =
        stored.iter().filter(|(k, _)| k.starts_with(TEST_ID_SYSTEM)).map(|(k, v)| (k.clone(), *v)).collect();
    assert_eq!(readings.keys().cloned().collect::<Vec<_>>(), valid_ids(sn, 2), "every valid reading, no warm-up");
    assert!(twice(&stored).is_empty(), "stored more than once: {:?}", twice(&stored));
    // Two daily summaries, each the panel and its six members.
    let summaries = stored.keys().filter(|k| k.starts_with("urn:cgm-bridge:sinocare:summary|")).count();
    assert_eq!(summaries, 14, "{stored:?}");
    assert_eq!(ehr.stored("Device").values().copied().collect::<Vec<_>>(), vec![1], "the sensor once");
    // Each summary with its ambulatory glucose profile as a one-page PDF report, which a PDF
    // reader (poppler's pdfinfo) opens.
    let reports = ehr.resources("DiagnosticReport");
    assert_eq!(reports.len(), 2, "a PDF report per summary");
    assert!(reports[0]["result"][0]["reference"].as_str().unwrap().starts_with("urn:uuid:"), "its summary panel");
    let info = cgm_tests::pdfinfo_of_base64(reports[0]["presentedForm"][0]["data"].as_str().unwrap());
    let pages = info.lines().find_map(|l| l.strip_prefix("Pages:")).map(str::trim);
    assert_eq!(pages, Some("1"), "{info}");
    assert!(info.contains("(A4)"), "{info}");
    assert_eq!(ehr.violations(), Vec::<String>::new());

    // The checkpoints are where the EHR's copy ends.
    let sn_id = DeviceSn::from(sn);
    let c = submitter.checkpoints().get(&sn_id, Kind::Readings).await.unwrap();
    assert_eq!(c.accepted, 573);
    assert_eq!(c.through.as_deref(), Some(format!("{}:{sn}-00576", DAY0 + 575 * MIN5).as_str()));
    let c = submitter.checkpoints().get(&sn_id, Kind::Summary).await.unwrap();
    assert_eq!(c.through.as_deref(), Some("2024-05-02"));

    // Nothing new: nothing sent.
    let before = ehr.submissions();
    let third = submitter.run(now(), later()).await.expect("a run");
    assert_eq!((third.bundles, ehr.submissions()), (0, before), "{third:?}");

    // A reading that arrives late (Sinocare re-sent a push that failed): measured on the
    // first day, long before the checkpoint. The session's count of that day grows, so the
    // day is sent again and the EHR's conditional create takes only the late one.
    let late_at =
        chrono::DateTime::from_timestamp_millis(DAY0 + 100 * MIN5 + 120_000).unwrap() + chrono::Duration::hours(8);
    let late = seed_with(json!({
        "testId": format!("{sn}-late"), "deviceSn": sn, "serialNo": 9_999,
        "testTime": late_at.format("%Y-%m-%d %H:%M:%S").to_string(), "testResult": "6.6",
        "status": "0", "increMinute": 5, "patientId": "MPI-4711",
    }));
    let counted = |s: &cgm_domain::session::Session| s.days.values().sum::<u64>();
    let before = counted(&session_of(&stack, sn).await);
    push_and_wait(&stack, &[late], |s| counted(s) > before).await;
    let fourth = submitter.run(now(), later()).await.expect("a run");
    assert_eq!((fourth.late, fourth.unfinished), (1, 0), "{fourth:?}");
    let stored = ehr.stored("Observation");
    assert_eq!(stored.get(&format!("{TEST_ID_SYSTEM}|{sn}-late")), Some(&1), "the late reading, once");
    assert!(twice(&stored).is_empty(), "stored more than once: {:?}", twice(&stored));
    let fifth = submitter.run(now(), later()).await.expect("a run");
    assert_eq!(fifth.bundles, 0, "the day is not sent a third time: {fifth:?}");

    // What the EHR was sent is what the IG profiles: every bundle through the validator.
    let bundles = ehr.bundles();
    let reading =
        &ehr.resources("Observation").into_iter().find(|o| o["code"]["coding"][0]["code"] == "105272-9").unwrap();
    assert_eq!(reading["subject"]["reference"], "Patient?identifier=https://hospital.example/fhir/sid/mpi|MPI-4711");
    assert_eq!(reading["status"], "final");
    let report = validate(&bundles);
    assert!(report.ok, "the validator refused a submission bundle: {:#?}", report.errors());
    let checked: Vec<&str> = report
        .resources
        .iter()
        .flat_map(|r| r["profiles"].as_array().unwrap().iter().filter_map(Value::as_str))
        .collect();
    for p in [
        "cgm-data-submission-bundle",
        "cgm-sensor-reading-moles-per-volume",
        "cgm-summary",
        "cgm-summary-pdf",
        "cgm-device",
    ] {
        assert!(checked.contains(&p), "no {p} was validated");
    }
    // No personal field but the patient identifier the profiles require.
    let text = serde_json::to_string(&bundles).unwrap();
    for field in ["张三丰", "430424199001011234", "V-2001", "IN-3003"] {
        assert!(!text.contains(field), "{field} was sent");
    }
}

#[tokio::test]
async fn an_ehr_without_conditional_create_gets_each_reading_once_and_a_401_gets_a_new_token() {
    let stack = Stack::new().await;
    let sn = "SN-NOCOND";
    seed(&stack, sn, 1).await;
    let ehr = FakeEhr::start(TestKey::rs384()).await;
    ehr.add_patient(MPI, "MPI-4711", "pat-123");
    let env = settings(
        &ehr,
        "RS384",
        &[
            ("FHIR_SUBMIT_PROFILES", "cgm-sensor-reading"),
            ("FHIR_SUBMIT_BATCH", "100"),
            ("FHIR_PATIENT_REFERENCE", "search"),
        ],
    );
    let cfg = stack.config(&env);
    // It also refuses bundles of over 60 entries whole (413): the submitter halves them.
    ehr.behave(|b| {
        b.no_conditional_create = true;
        b.max_entries = Some(60);
        b.decline_test_ids.insert(format!("{sn}-00010"));
    });
    let submitter = cgm_fhir_submit::from_config(&cfg).await.expect("the submitter starts");
    let first = submitter.run(now(), later()).await.expect("a run");
    assert_eq!(first.unfinished, 0, "{first:?}");
    assert_eq!(first.declined, 1, "the reading the EHR declined is counted: {first:?}");
    assert!(
        ehr.bundles().iter().all(|b| b["entry"].as_array().unwrap().len() <= 60),
        "bundles were halved after the 413"
    );
    assert_eq!(ehr.token_requests(), 1);
    let stored = ehr.stored("Observation");
    let mut expected = valid_ids(sn, 1);
    expected.retain(|id| !id.ends_with("-00010"));
    assert_eq!(stored.keys().cloned().collect::<Vec<_>>(), expected);
    assert!(twice(&stored).is_empty(), "stored more than once: {:?}", twice(&stored));
    let reading = ehr.resources("Observation").remove(0);
    assert_eq!(reading["subject"]["reference"], "Patient/pat-123", "the patient found by search");
    // Without conditional create the sensor is named by its identifier, not sent with every
    // bundle (which would store it once per bundle).
    assert!(ehr.stored("Device").is_empty(), "{:?}", ehr.stored("Device"));
    assert_eq!(reading["device"]["identifier"]["value"], sn);
    assert_eq!(ehr.violations(), Vec::<String>::new());
    // The EHR revokes its tokens (a key rotation): the next call gets 401 and a new token.
    ehr.revoke_tokens();
    let again = submitter.run(now(), later()).await.expect("a run");
    assert_eq!(again.bundles, 0, "nothing new, the declined reading not resent: {again:?}");
    assert_eq!(ehr.token_requests(), 2, "the patient search met the revoked token and got a new one");
    assert!(twice(&ehr.stored("Observation")).is_empty());
    // The patient's identifier travels in a search's body, never in a URL.
    assert!(ehr.searches().iter().all(|s| s == "POST /Patient/_search"), "{:?}", ehr.searches());
}

/// A `cgm-data-submission-standing-order` as an EHR holds it (examples.fsh,
/// `cgmDataSubmissionStandingOrderExample`): one `data-submission-schedule`.
fn standing_order(
    id: &str,
    status: &str,
    every: (u32, &str),
    lookback: Option<(u32, &str)>,
    profiles: &[&str],
) -> Value {
    let quantity =
        |(value, code): (u32, &str)| json!({"value": value, "system": "http://unitsofmeasure.org", "code": code});
    let mut parts = vec![json!({"url": "submissionPeriod", "valueQuantity": quantity(every)})];
    if let Some(l) = lookback {
        parts.push(json!({"url": "lookbackPeriod", "valueQuantity": quantity(l)}));
    }
    for p in profiles {
        parts.push(json!({"url": "submissionDataProfile", "valueCanonical": format!("http://hl7.org/fhir/uv/cgm/StructureDefinition/{p}")}));
    }
    json!({
        "resourceType": "ServiceRequest", "id": id, "status": status, "intent": "order",
        "code": {"coding": [{"system": "http://hl7.org/fhir/uv/cgm/CodeSystem/cgm", "code": "cgm-data-submission-standing-order"}]},
        "subject": {"reference": "Patient/pat-9"},
        "extension": [{"url": "http://hl7.org/fhir/uv/cgm/StructureDefinition/data-submission-schedule", "extension": parts}],
    })
}

#[tokio::test]
async fn with_standing_orders_it_sends_only_what_the_ehr_asks_for_as_often_as_it_asks() {
    let stack = Stack::new().await;
    let sn = "SN-ORDERS";
    seed(&stack, sn, 3).await;
    let ehr = FakeEhr::start(TestKey::es384()).await;
    ehr.add_patient(MPI, "MPI-4711", "pat-9");
    // The configured profiles would send everything daily; the standing orders win.
    let env = settings(&ehr, "ES384", &[("FHIR_READ_STANDING_ORDERS", "true"), ("FHIR_SUMMARY_PERIOD_DAYS", "1")]);
    let cfg = stack.config(&env);
    let submitter = cgm_fhir_submit::from_config(&cfg).await.expect("the submitter starts");

    // No order for the patient: nothing is sent.
    let first = submitter.run(now(), later()).await.expect("a run");
    assert_eq!((first.without_order, first.bundles), (1, 0), "{first:?}");
    assert_eq!(ehr.searches(), vec!["POST /ServiceRequest/_search"]);

    // A summary and its PDF every day, each over the last two days; a revoked order for
    // the readings is not followed.
    ehr.add_order(standing_order("so-1", "active", (1, "d"), Some((2, "d")), &["cgm-summary", "cgm-summary-pdf"]));
    ehr.add_order(standing_order("so-0", "revoked", (1, "h"), None, &["cgm-sensor-reading-moles-per-volume"]));
    let second = submitter.run(now(), later()).await.expect("a run");
    assert_eq!((second.without_order, second.unfinished), (0, 0), "{second:?}");
    let stored = ehr.stored("Observation");
    assert!(!stored.keys().any(|k| k.starts_with(TEST_ID_SYSTEM)), "no reading was asked for: {stored:?}");
    let panels: Vec<Value> =
        ehr.resources("Observation").into_iter().filter(|o| o["code"]["coding"][0]["code"] == "107931-8").collect();
    let mut periods: Vec<(String, String)> = panels
        .iter()
        .map(|p| {
            (
                p["effectivePeriod"]["start"].as_str().unwrap().into(),
                p["effectivePeriod"]["end"].as_str().unwrap().into(),
            )
        })
        .collect();
    periods.sort();
    assert_eq!(
        periods,
        [("2024-04-30", "2024-05-01"), ("2024-05-01", "2024-05-02"), ("2024-05-02", "2024-05-03")]
            .map(|(a, b)| (a.to_string(), b.to_string())),
        "one summary a day, each over two days"
    );
    assert_eq!(ehr.resources("DiagnosticReport").len(), 3, "each with its PDF");

    // A second order asks for the readings, in mg/dL, every hour, going back a day. The run
    // is at 01:00 on the day after the sensor's last: the first submission starts at the
    // start of the sensor's last day, and the days before it are not taken for late ones.
    ehr.add_order(standing_order("so-2", "active", (1, "h"), Some((1, "d")), &["cgm-sensor-reading-mass-per-volume"]));
    let at = cgm_domain::time::Timestamp::from_ms(DAY0 + 3 * 86_400_000 + 3_600_000);
    let third = submitter.run(at, later()).await.expect("a run");
    assert_eq!((third.unfinished, third.late), (0, 0), "{third:?}");
    let stored = ehr.stored("Observation");
    let readings: Vec<String> = stored.keys().filter(|k| k.starts_with(TEST_ID_SYSTEM)).cloned().collect();
    let last_day: Vec<String> = valid_ids(sn, 3).into_iter().skip(2 * 288 - 3).collect();
    assert_eq!(readings, last_day, "the last day's readings only");
    assert!(twice(&stored).is_empty(), "stored more than once: {:?}", twice(&stored));
    let reading =
        ehr.resources("Observation").into_iter().find(|o| o["identifier"][0]["system"] == TEST_ID_SYSTEM).unwrap();
    assert_eq!(reading["code"]["coding"][0]["code"], "99504-3", "the mass profile the order asks for");
    assert_eq!(reading["valueQuantity"]["code"], "mg/dL");

    // Within the hour nothing is due.
    let before = ehr.submissions();
    let fourth =
        submitter.run(cgm_domain::time::Timestamp::from_ms(at.ms() + 1_800_000), later()).await.expect("a run");
    assert_eq!((fourth.bundles, ehr.submissions()), (0, before), "{fourth:?}");

    // The searches named the patient as the IG's Data Receiver declares (patient, code),
    // with strict handling, so none was refused.
    assert_eq!(ehr.violations(), Vec::<String>::new());
    // An EHR that ignores the patient parameter answers another patient's order too: the
    // device waits, rather than follow an order that may not be its patient's.
    ehr.behave(|b| b.lenient_patient = true);
    let mut other = standing_order("so-3", "active", (1, "h"), None, &["cgm-sensor-reading-moles-per-volume"]);
    other["subject"]["reference"] = json!("Patient/pat-other");
    ehr.add_order(other);
    let fifth = submitter.run(cgm_domain::time::Timestamp::from_ms(at.ms() + 7_200_000), later()).await.expect("a run");
    assert_eq!((fifth.unfinished, fifth.bundles, ehr.submissions()), (1, 0, before), "{fifth:?}");

    let report = validate(&ehr.bundles());
    assert!(report.ok, "the validator refused a submission bundle: {:#?}", report.errors());
    assert_eq!(ehr.violations(), Vec::<String>::new());
}

#[tokio::test]
async fn a_one_time_submission_sends_its_period_again_and_the_ehr_matches_what_it_has() {
    let stack = Stack::new().await;
    let sn = "SN-ONCE";
    seed(&stack, sn, 2).await;
    let ehr = FakeEhr::start(TestKey::es384()).await;
    // The schedule sends only daily summaries; the readings come from the request.
    let env = settings(&ehr, "ES384", &[("FHIR_SUBMIT_PROFILES", "cgm-summary"), ("FHIR_SUMMARY_PERIOD_DAYS", "1")]);
    let cfg = stack.config(&env);
    let base = serve_locally(&cfg).await;
    let http = reqwest::Client::new();
    let post = |body: Value| {
        let (http, url) = (http.clone(), format!("{base}/fhir-submissions"));
        async move {
            let r = http.post(url).json(&body).send().await.expect("POST /fhir-submissions");
            let (status, location) = (r.status().as_u16(), r.headers().get("location").cloned());
            (status, location, r.json::<Value>().await.expect("JSON"))
        }
    };

    // What cannot be sent is refused, naming why.
    for (body, why) in [
        (json!({"device": sn, "start": "2024-05-02", "end": "2024-05-01"}), "start is after end"),
        (json!({"device": sn, "start": "2024-05-01", "end": "2024-05-01", "patientId": "MPI-4711"}), "unknown field"),
        (json!({"device": sn, "start": "2024-05-01"}), "end is required"),
        (json!({"device": sn, "start": "2024-01-01", "end": "2024-05-01"}), "at most 90 days"),
        (
            json!({"device": sn, "start": "2024-05-01", "end": "2024-05-01", "profiles": ["cgm-summary-pdf"]}),
            "add cgm-summary",
        ),
        (
            json!({"device": sn, "start": "2024-05-01", "end": "2024-05-01", "profiles": ["cgm-glucose"]}),
            "unknown profile",
        ),
        (json!({"device": sn, "start": "2024-05-01", "end": "2099-01-01"}), "a local day that has ended"),
    ] {
        let (status, _, b) = post(body).await;
        assert_eq!(status, 400, "{b}");
        assert!(b["message"].as_str().unwrap().contains(why), "{why}: {b}");
        assert!(!b.to_string().contains("MPI-4711"), "no value is echoed: {b}");
    }
    let (status, _, b) = post(json!({"device": "SN-NEVER", "start": "2024-05-01", "end": "2024-05-01"})).await;
    assert_eq!(status, 404, "{b}");

    // The first day, everything: queued, then sent by the submitter's next run.
    let (status, location, queued) =
        post(json!({"device": format!("Device/{sn}"), "start": "2024-05-01", "end": "2024-05-01"})).await;
    assert_eq!(status, 202, "{queued}");
    assert_eq!(queued["status"], "queued");
    assert_eq!(queued["profiles"], json!(["cgm-sensor-reading", "cgm-summary", "cgm-summary-pdf"]));
    let location = location.expect("a Location").to_str().unwrap().to_string();
    assert_eq!(location, format!("/fhir-submissions/{}", queued["id"].as_str().unwrap()));
    let get = |location: String| {
        let (http, url) = (http.clone(), format!("{base}{location}"));
        async move { http.get(url).send().await.expect("GET").json::<Value>().await.expect("JSON") }
    };
    assert_eq!(get(location.clone()).await["status"], "queued");
    assert_eq!(get("/fhir-submissions/0123456789abcdef0123456789abcdef".into()).await["status"], 404);

    let submitter = cgm_fhir_submit::from_config(&cfg).await.expect("the submitter starts");
    let run = submitter.run(now(), later()).await.expect("a run");
    assert_eq!((run.requests, run.unfinished), (1, 0), "{run:?}");
    let done = get(location.clone()).await;
    assert_eq!(done["status"], "done", "{done}");
    // 285 valid readings of the day, the summary's seven and its PDF report.
    assert_eq!((done["accepted"].as_u64(), done["attempts"].as_u64()), (Some(293), Some(1)), "{done}");
    let stored = ehr.stored("Observation");
    let readings: Vec<String> = stored.keys().filter(|k| k.starts_with(TEST_ID_SYSTEM)).cloned().collect();
    assert_eq!(readings, valid_ids(sn, 1), "the day's valid readings");
    // The schedule's summary of that day is the request's: one copy, beside the next day's.
    let panels = stored.keys().filter(|k| k.starts_with("urn:cgm-bridge:sinocare:summary|")).count();
    assert_eq!(panels, 14, "{stored:?}");
    assert!(twice(&stored).is_empty(), "stored more than once: {:?}", twice(&stored));
    assert_eq!(ehr.resources("DiagnosticReport").len(), 1, "the request's PDF report");

    // The same day's readings again: the EHR matches every one, and stores none twice.
    let (status, location, _) =
        post(json!({"device": sn, "start": "2024-05-01", "end": "2024-05-01", "profiles": ["cgm-sensor-reading"]}))
            .await;
    assert_eq!(status, 202);
    let again = submitter.run(now(), later()).await.expect("a run");
    assert_eq!(again.requests, 1, "{again:?}");
    let done = get(location.unwrap().to_str().unwrap().to_string()).await;
    assert_eq!((done["status"].as_str(), done["accepted"].as_u64()), (Some("done"), Some(285)), "{done}");
    assert!(twice(&ehr.stored("Observation")).is_empty(), "stored more than once");

    // An EHR that declares in its CapabilityStatement that it has no conditional create
    // cannot take a one-time submission (it would store what it has twice): the request
    // fails saying so, and nothing is sent.
    ehr.behave(|b| {
        b.no_conditional_create = true;
        b.declares_conditional_create = Some(false);
    });
    let before = ehr.submissions();
    let (status, location, _) = post(json!({"device": sn, "start": "2024-05-02", "end": "2024-05-02"})).await;
    assert_eq!(status, 202);
    submitter.run(now(), later()).await.expect("a run");
    let failed = get(location.unwrap().to_str().unwrap().to_string()).await;
    assert_eq!(failed["status"], "failed", "{failed}");
    assert!(failed["reason"].as_str().unwrap().contains("conditional create"), "{failed}");
    assert_eq!(ehr.submissions(), before, "nothing was sent");

    let report = validate(&ehr.bundles());
    assert!(report.ok, "the validator refused a submission bundle: {:#?}", report.errors());
    assert_eq!(ehr.violations(), Vec::<String>::new());
}

fn sensors(stack: &Stack) -> DynamoSensorStore {
    DynamoSensorStore::new(stack.client.clone(), stack.table("SENSORS_TABLE").into())
}

/// `from`'s session as the stream consumer kept it, written as `other`'s after `change`:
/// another device's stored session, as no push would make it.
async fn another_session(stack: &Stack, from: &str, other: &str, change: impl FnOnce(&mut Session)) {
    let mut s = session_of(stack, from).await;
    s.device_sn = DeviceSn::from(other);
    s.version = 0;
    change(&mut s);
    let saved = sensors(stack).put_session(&s).await.expect("a session written");
    assert_eq!(saved, cgm_domain::store::sensors::Saved::Stored);
}

/// The first `n` of `from`'s stored readings, copied as `other`'s (`<other>-00001`, …), the
/// `i`th (from 1) measured at `at(i, its measured time)`.
async fn copy_readings(stack: &Stack, from: &str, other: &str, n: usize, at: impl Fn(usize, i64) -> i64) {
    let measured = |item: &attr::Item| cgm_tests::n(item, attr::MEASURED_AT).and_then(|v| v.parse::<i64>().ok());
    let mut items: Vec<attr::Item> = stack
        .scan("READINGS_TABLE")
        .await
        .into_iter()
        .filter(|i| cgm_tests::s(i, attr::DEVICE_SN) == Some(from))
        .collect();
    items.sort_by_key(|i| measured(i));
    for (i, mut item) in items.into_iter().take(n).enumerate() {
        let i = i + 1;
        let ms = at(i, measured(&item).expect("a measured time"));
        let s = |v: String| aws_sdk_dynamodb::types::AttributeValue::S(v);
        item.insert(attr::TEST_ID.into(), s(format!("{other}-{i:05}")));
        item.insert(attr::DEVICE_SN.into(), s(other.into()));
        item.insert(attr::MEASURED_AT.into(), aws_sdk_dynamodb::types::AttributeValue::N(ms.to_string()));
        stack
            .client
            .put_item()
            .table_name(stack.table("READINGS_TABLE"))
            .set_item(Some(item))
            .send()
            .await
            .expect("a reading written");
    }
}

/// The submitter's one line per run, as JSON, from captured logs.
fn run_lines(logs: &str) -> Vec<Value> {
    logs.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["message"] == "submission run")
        .collect()
}

#[tokio::test]
async fn a_device_with_impossible_stored_values_fails_alone_and_the_others_are_sent() {
    // Given a sensor pushed as Sinocare pushes, and beside it stored values no push makes: a
    // session and a reading in the year 262142, a session whose last reading is at i64::MAX
    // ms, a summary checkpoint at the calendar's last day, and one-time submissions of a
    // period of 8,000 years and with an attempt count at its limit.
    let stack = Stack::new().await;
    let sn = "SN-SANE";
    seed(&stack, sn, 1).await;
    let far = chrono::NaiveDate::from_ymd_opt(262_142, 6, 1).unwrap();
    let far_ms = far.and_hms_opt(0, 0, 0).unwrap().and_utc().timestamp_millis();
    another_session(&stack, sn, "SN-YEAR", |s| {
        (s.first.at, s.last.at) = (Timestamp::from_ms(far_ms), Timestamp::from_ms(far_ms));
        s.days = BTreeMap::from([(far, 1)]);
    })
    .await;
    copy_readings(&stack, sn, "SN-YEAR", 1, |_, _| far_ms).await;
    another_session(&stack, sn, "SN-MAX", |s| s.last.at = Timestamp::from_ms(i64::MAX)).await;
    copy_readings(&stack, sn, "SN-MAX", 5, |i, at| if i < 5 { at } else { i64::MAX }).await;
    another_session(&stack, sn, "SN-CKPT", |_| {}).await;
    let ehr = FakeEhr::start(TestKey::es384()).await;
    let env = settings(&ehr, "ES384", &[("FHIR_SUMMARY_PERIOD_DAYS", "1")]);
    let cfg = stack.config(&env);
    let submitter = cgm_fhir_submit::from_config(&cfg).await.expect("the submitter starts");
    let mut c = submitter.checkpoints().get(&DeviceSn::from("SN-CKPT"), Kind::Summary).await.unwrap();
    c.through = Some(chrono::NaiveDate::MAX.to_string());
    assert_eq!(
        submitter.checkpoints().put(&c).await.unwrap(),
        cgm_domain::store::submissions::checkpoints::Saved::Stored
    );
    let requests = cgm_shared::store::submissions::dynamodb::DynamoSubmissionRequests::new(
        stack.client.clone(),
        stack.table("SUBMISSIONS_TABLE").into(),
    );
    use cgm_domain::store::submissions::{RequestProfiles, RequestStatus, SubmissionRequest, SubmissionRequests};
    let request = |id: &str, last: &str, attempts: u32, created: i64| SubmissionRequest {
        id: id.into(),
        device_sn: DeviceSn::from(sn),
        first: "2024-05-01".parse().unwrap(),
        last: last.parse().unwrap(),
        profiles: RequestProfiles { readings: true, summary: true, summary_pdf: false },
        status: RequestStatus::Queued,
        attempts,
        accepted: 0,
        declined: 0,
        reason: None,
        created_at: Timestamp::from_ms(created),
        updated_at: Timestamp::from_ms(created),
        version: 0,
    };
    let (long, worn) = ("0123456789abcdef0123456789abcde0", "0123456789abcdef0123456789abcde1");
    assert!(requests.create(&request(long, "9999-12-31", 0, 1)).await.unwrap());
    assert!(requests.create(&request(worn, "2024-05-01", u32::MAX, 2)).await.unwrap());

    // When the submitter runs, twice.
    let (logs, guard) = capture_logs("info");
    let first = submitter.run(now(), later()).await.expect("a run");
    let second = submitter.run(now(), later()).await.expect("a run");
    drop(guard);

    // Then the three devices fail, each counted, and the run goes on: every valid reading of
    // the sane sensor reaches the EHR once, with its summary, and nothing of the others.
    assert_eq!(first.devices, 4, "{first:?}");
    assert_eq!((first.failed, first.stuck, first.unfinished), (3, 0, 3), "{first:?}");
    let stored = ehr.stored("Observation");
    let readings: Vec<String> = stored.keys().filter(|k| k.starts_with(TEST_ID_SYSTEM)).cloned().collect();
    assert_eq!(readings, valid_ids(sn, 1), "the sane sensor's valid readings, and no other device's");
    assert!(twice(&stored).is_empty(), "stored more than once: {:?}", twice(&stored));
    let summaries = stored.keys().filter(|k| k.starts_with("urn:cgm-bridge:sinocare:summary|")).count();
    assert_eq!(summaries, 7, "the sane sensor's day as a summary panel and its six members: {stored:?}");
    assert_eq!(
        ehr.stored("Device").keys().cloned().collect::<Vec<_>>(),
        vec![format!("urn:cgm-bridge:sinocare:device-sn|{sn}")]
    );
    assert_eq!(ehr.violations(), Vec::<String>::new());
    // The one-time submission of 8,000 years fails saying why; the one with its attempts at
    // their limit is sent.
    let failed = requests.get(long).await.unwrap().unwrap();
    assert_eq!(failed.status, RequestStatus::Failed);
    assert!(failed.reason.as_deref().unwrap_or("").contains("1 to 90 local days"), "{failed:?}");
    let done = requests.get(worn).await.unwrap().unwrap();
    assert_eq!((done.status, done.attempts), (RequestStatus::Done, u32::MAX), "{done:?}");
    // The next run meets the same devices, fails them again, and sends nothing twice.
    assert_eq!((second.failed, second.stuck, second.bundles), (3, 0, 0), "{second:?}");

    // The run's line says how many failed (a warning then), each failed device has its own
    // line naming it and why, and no line names the patient.
    let text = logs.text();
    let lines = run_lines(&text);
    assert_eq!(lines.len(), 2, "one line per run: {text}");
    for l in &lines {
        assert_eq!(
            (l["failed"].as_u64(), l["stuck"].as_u64(), l["level"].as_str()),
            (Some(3), Some(0), Some("WARN")),
            "{l}"
        );
    }
    let left: Vec<Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["message"] == "submission left for the next run")
        .collect();
    let mut failed_devices: Vec<&str> =
        left.iter().filter(|l| l["outcome"] == "failed").filter_map(|l| l["device_sn"].as_str()).collect();
    failed_devices.sort();
    assert_eq!(failed_devices, ["SN-CKPT", "SN-CKPT", "SN-MAX", "SN-MAX", "SN-YEAR", "SN-YEAR"], "{left:#?}");
    assert!(left.iter().all(|l| l["error"].as_str().is_some_and(|e| e.contains("stored data"))), "{left:#?}");
    assert!(!text.contains("MPI-4711"), "the patient's identifier was logged");
}

#[tokio::test]
async fn a_bundle_the_ehr_refuses_whole_leaves_its_device_stuck_and_counted_for_the_alarm() {
    // Given two sensors, whose second the EHR refuses whole (400) every time it comes.
    let stack = Stack::new().await;
    let sn = "SN-TAKEN";
    seed(&stack, sn, 1).await;
    another_session(&stack, sn, "SN-REFUSED", |_| {}).await;
    copy_readings(&stack, sn, "SN-REFUSED", 30, |_, at| at).await;
    let ehr = FakeEhr::start(TestKey::es384()).await;
    ehr.behave(|b| {
        b.refuse_devices.insert("SN-REFUSED".into());
    });
    let env = settings(&ehr, "ES384", &[("FHIR_SUBMIT_PROFILES", "cgm-sensor-reading")]);
    let cfg = stack.config(&env);
    let submitter = cgm_fhir_submit::from_config(&cfg).await.expect("the submitter starts");

    // When it runs twice, then the EHR takes the device again and it runs once more.
    let (logs, guard) = capture_logs("info");
    let first = submitter.run(now(), later()).await.expect("a run");
    let before = ehr.submissions();
    let second = submitter.run(now(), later()).await.expect("a run");
    let resent = ehr.submissions() - before;
    ehr.behave(|b| b.refuse_devices.clear());
    let third = submitter.run(now(), later()).await.expect("a run");
    drop(guard);

    // Then the refused device is stuck in both runs (its same bundle sent and refused again),
    // counted as failed too, while the other's readings all reach the EHR; once taken, it
    // is neither.
    assert_eq!((first.failed, first.stuck, first.unfinished), (1, 1, 1), "{first:?}");
    assert_eq!(
        (second.failed, second.stuck, second.bundles),
        (1, 1, 0),
        "a refused bundle is no bundle sent: {second:?}"
    );
    assert_eq!(resent, 1, "the stuck device's bundle, again, and nothing of the other");
    assert_eq!((third.failed, third.stuck, third.unfinished), (0, 0, 0), "{third:?}");
    let stored = ehr.stored("Observation");
    let mut want = valid_ids(sn, 1);
    want.extend((4..=30).map(|i| format!("{TEST_ID_SYSTEM}|SN-REFUSED-{i:05}")));
    want.sort();
    assert_eq!(stored.keys().cloned().collect::<Vec<_>>(), want);
    assert!(twice(&stored).is_empty(), "stored more than once: {:?}", twice(&stored));

    // The device's line says it is stuck and what the EHR said; the run's lines count it.
    let text = logs.text();
    let stuck_lines: Vec<Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["message"] == "submission left for the next run" && l["outcome"] == "stuck")
        .collect();
    assert_eq!(stuck_lines.len(), 2, "{text}");
    for l in &stuck_lines {
        assert_eq!((l["device_sn"].as_str(), l["level"].as_str()), (Some("SN-REFUSED"), Some("WARN")), "{l}");
        assert!(l["error"].as_str().unwrap().contains("the whole bundle: the EHR refused the request with 400"), "{l}");
    }
    let lines = run_lines(&text);
    assert_eq!(lines.len(), 3, "{text}");

    // And the template's metric filters over those lines give the alarms' metrics: each run's
    // count of stuck and of failed devices.
    let template: serde_norway::Value =
        serde_norway::from_str(&std::fs::read_to_string(cgm_local::repo_root().join("infra/template.yaml")).unwrap())
            .unwrap();
    let filters: Vec<_> = cgm_local::template::Template::load_default()
        .expect("infra/template.yaml")
        .metric_filters()
        .into_iter()
        .filter(|f| f.log_group.as_deref() == Some("FhirSubmitFunctionLogGroup"))
        .collect();
    let mut metrics: BTreeMap<String, Vec<Option<u64>>> = BTreeMap::new();
    for f in &filters {
        let pattern = FilterPattern::parse(&f.pattern).unwrap_or_else(|e| panic!("{}: {e}", f.logical_id));
        let transform = &template["Resources"][f.logical_id.as_str()]["Properties"]["MetricTransformations"][0];
        let value = transform["MetricValue"].as_str().expect("a MetricValue");
        let field = value.strip_prefix("$.").unwrap_or_else(|| panic!("{}: MetricValue {value}", f.logical_id));
        assert!(
            lines.iter().all(|l| pattern.matches(l)),
            "{} ({}) must match every run's line, so each run gives a value",
            f.logical_id,
            f.pattern
        );
        let others = text
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|l| l["message"] != "submission run");
        assert!(others.clone().all(|l| !pattern.matches(&l)), "{} matches no other line", f.logical_id);
        metrics.insert(f.metric.clone(), lines.iter().map(|l| l[field].as_u64()).collect());
    }
    assert_eq!(
        metrics,
        BTreeMap::from([
            ("FhirSubmitDevicesFailed".to_string(), vec![Some(1), Some(1), Some(0)]),
            ("FhirSubmitDevicesStuck".to_string(), vec![Some(1), Some(1), Some(0)]),
        ])
    );
    // Each has its alarm, on the stack's namespace.
    let alarms: Vec<&serde_norway::Value> = template["Resources"]
        .as_mapping()
        .unwrap()
        .values()
        .filter(|r| r["Type"].as_str() == Some("AWS::CloudWatch::Alarm"))
        .collect();
    for metric in metrics.keys() {
        assert!(
            alarms.iter().any(|a| a["Properties"]["MetricName"].as_str() == Some(metric.as_str())),
            "no alarm on {metric}"
        );
    }
}
