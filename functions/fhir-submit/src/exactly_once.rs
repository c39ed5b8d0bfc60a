//! The exactly-once rules, one at a time, on memory stores and the stand-in EHR (`cgm_ehr`,
//! tools/ehr) started in-process on loopback: real HTTP, SMART Backend Services tokens and
//! `$submit-cgm-bundle` with conditional create, as tests/tests/fhir_submit.rs has them end
//! to end against DynamoDB Local. Each test reads what happened to every reading from the
//! bundles the EHR was sent (how often each was sent) and what it stored (how often each was
//! stored), beside the checkpoint the submitter wrote.
//!
//! One sensor, readings every five minutes from 2024-05-01 00:00 China time, the first three
//! warm-up (never sent, but passed by the checkpoint); its session as the readings stream's
//! consumer keeps it, each local day counting every reading.

use crate::ehr::{Ehr, Retry};
use crate::{RunReport, Submitter, smart};
use cgm_domain::alerts::AlertSettings;
use cgm_domain::ids::{DeviceSn, TestId};
use cgm_domain::sensitive::Sensitive;
use cgm_domain::session::{SensorReading, Session};
use cgm_domain::store::reads::StoredReading;
use cgm_domain::store::reads::memory::MemoryReadStore;
use cgm_domain::store::rollups::memory::MemoryRollupStore;
use cgm_domain::store::sensors::memory::MemorySensorStore;
use cgm_domain::store::submissions::checkpoints::{Checkpoint, CheckpointStore, Kind};
use cgm_domain::store::submissions::memory::MemoryCheckpointStore;
use cgm_domain::store::submissions::memory::MemorySubmissionRequests;
use cgm_domain::store::submissions::{RequestProfiles, RequestStatus, SubmissionRequest, SubmissionRequests};
use cgm_domain::time::{SourceZone, Timestamp};
use cgm_ehr::{CLIENT_ID, FakeEhr, KEY_ID, TestKey};
use cgm_shared::config::Config;
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

type Memory =
    Submitter<MemoryReadStore, MemoryRollupStore, MemorySensorStore, MemoryCheckpointStore, MemorySubmissionRequests>;

const SN: &str = "SN-UNIT";
const MPI: &str = "https://hospital.example/fhir/sid/mpi";
/// 2024-05-01T00:00:00+08:00.
const DAY0: i64 = 1_714_492_800_000;
const MIN5: i64 = 300_000;
const TEST_ID_SYSTEM: &str = "urn:cgm-bridge:sinocare:test-id";

/// The test id of reading `s` (from 1).
fn id(s: i64) -> String {
    format!("{SN}-{s:05}")
}

/// Reading `s` (from 1): five minutes after the one before, the first three warm-up.
fn reading(s: i64) -> StoredReading {
    StoredReading {
        test_id: TestId::from(id(s).as_str()),
        device_sn: DeviceSn::from(SN),
        measured_at: Timestamp::from_ms(DAY0 + (s - 1) * MIN5),
        mmol: 4.0 + (s % 80) as f64 / 10.0,
        serial_no: u64::try_from(s).ok(),
        status: Some(if s <= 3 { "1" } else { "0" }.into()),
        valid: s > 3,
        incre_minute: Some(5),
        low: None,
        high: None,
    }
}

fn readings(serials: std::ops::RangeInclusive<i64>) -> Vec<StoredReading> {
    serials.map(reading).collect()
}

/// The session the readings stream's consumer keeps for `readings`: each local day's count
/// is every reading of that day, as its rollup counts them.
fn session_of(readings: &[StoredReading]) -> Session {
    let zone = SourceZone::default();
    let mut days = BTreeMap::new();
    for r in readings {
        *days.entry(zone.local_date(r.measured_at).expect("a day")).or_insert(0) += 1;
    }
    let pushed: Vec<SensorReading> = readings
        .iter()
        .map(|r| SensorReading {
            reading: r.clone(),
            cgm_status: None,
            cgm_day: None,
            customer_name: None,
            patient_id: Some("MPI-4711".into()),
            visit_id: None,
            received_at: None,
        })
        .collect();
    Session::apply(None, &pushed, &days, &AlertSettings::default()).session.expect("a session")
}

/// What outlives a submitter's instance.
#[derive(Default)]
struct Stores {
    reads: MemoryReadStore,
    sensors: MemorySensorStore,
    checkpoints: MemoryCheckpointStore,
    requests: MemorySubmissionRequests,
}

impl Stores {
    fn with(readings: Vec<StoredReading>) -> Stores {
        let stores = Stores { reads: MemoryReadStore::with_readings(readings.clone()), ..Stores::default() };
        set_session(&stores.sensors, &readings);
        stores
    }
}

fn set_session(sensors: &MemorySensorStore, readings: &[StoredReading]) {
    sensors.sessions.lock().expect("lock").insert(DeviceSn::from(SN), session_of(readings));
}

/// Readings only (no summaries), `batch` readings a bundle at most.
fn config(batch: usize) -> Config {
    let vars = BTreeMap::from([
        ("FHIR_SUBMIT_PROFILES", "cgm-sensor-reading".to_string()),
        ("FHIR_SUBMIT_BATCH", batch.to_string()),
        ("FHIR_CLIENT_SIGNING_ALG", "ES384".to_string()),
        ("FHIR_PATIENT_IDENTIFIER_SYSTEM", MPI.to_string()),
    ]);
    Config::from_lookup(|k| vars.get(k).cloned()).expect("a configuration")
}

/// A new instance on `stores`, with an EHR client of its own (its own token), which tries a
/// bundle once: an EHR that does not answer ends the run's sending, for the next run.
fn submitter(ehr: &FakeEhr, stores: Stores, batch: usize) -> Memory {
    let cfg = config(batch);
    let s = &cfg.fhir_submit;
    let pem = Sensitive::new(ehr.private_pem().to_string());
    let client = smart::Client::new(CLIENT_ID.into(), KEY_ID.into(), s.signing_alg, &pem, s.scopes.clone())
        .expect("the stand-in's key");
    let http = reqwest::Client::new();
    let tokens = smart::Tokens::new(http.clone(), ehr.base(), client);
    let once = Retry { attempts: 1, first_backoff: Duration::from_millis(1), max_backoff: Duration::from_millis(1) };
    let ehr = Ehr::new(http, ehr.base(), tokens, once);
    Submitter::new(
        stores.reads,
        MemoryRollupStore::default(),
        stores.sensors,
        stores.checkpoints,
        ehr,
        &cfg,
        MPI.into(),
    )
    .with_requests(Some(stores.requests))
}

/// The stores of an instance that ends (a cold start's next instance gets them).
fn stores_of(s: Memory) -> Stores {
    Stores {
        reads: s.store,
        sensors: s.sensors,
        checkpoints: s.checkpoints,
        requests: s.requests.expect("the one-time submissions"),
    }
}

async fn run(s: &Memory) -> RunReport {
    s.run(Timestamp::now(), Instant::now() + Duration::from_secs(60)).await.expect("a run")
}

async fn checkpoint(s: &Memory) -> Checkpoint {
    s.checkpoints.get(&DeviceSn::from(SN), Kind::Readings).await.expect("the checkpoint")
}

/// The checkpoint's place just after reading `s`.
fn after(s: i64) -> Option<String> {
    Some(format!("{}:{}", DAY0 + (s - 1) * MIN5, id(s)))
}

/// How many times each reading was sent, over every bundle the EHR took in (by test id).
fn sent(ehr: &FakeEhr) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for b in ehr.bundles() {
        for e in b["entry"].as_array().expect("entries") {
            let ident = &e["resource"]["identifier"][0];
            if e["resource"]["resourceType"] == "Observation" && ident["system"] == TEST_ID_SYSTEM {
                *out.entry(ident["value"].as_str().expect("a test id").to_string()).or_insert(0) += 1;
            }
        }
    }
    out
}

/// How many copies of each reading the EHR stored (by test id).
fn stored(ehr: &FakeEhr) -> BTreeMap<String, usize> {
    let prefix = format!("{TEST_ID_SYSTEM}|");
    ehr.stored("Observation").into_iter().filter_map(|(k, n)| Some((k.strip_prefix(&prefix)?.to_string(), n))).collect()
}

/// Each of `serials` (valid readings, and `extra` test ids) `n` times.
fn each(serials: impl IntoIterator<Item = i64>, n: usize) -> BTreeMap<String, usize> {
    serials.into_iter().map(|s| (id(s), n)).collect()
}

#[tokio::test]
async fn a_partial_answer_moves_the_checkpoint_only_past_what_was_answered_for() {
    let ehr = FakeEhr::start(TestKey::es384()).await;
    // Of the first bundle (the sensor, then readings 4 to 20), the EHR takes the sensor and
    // six readings, declines reading 6 by its own rules (422), and does not get to the rest
    // (503 each, in a 200 answer).
    ehr.behave(|b| {
        b.take_at_most = Some(8);
        b.decline_test_ids.insert(id(6));
    });
    let s = submitter(&ehr, Stores::with(readings(1..=40)), 20);
    let first = run(&s).await;
    assert_eq!((first.accepted, first.declined, first.unfinished, first.failed), (6, 1, 1, 0), "{first:?}");
    // The checkpoint passes reading 10, the last the EHR answered for (the warm-ups before
    // it too, unsent), and not 11, the first it did not get to.
    let c = checkpoint(&s).await;
    assert_eq!((c.through, c.accepted, c.declined), (after(10), 6, 1));
    assert_eq!(c.days.values().copied().collect::<Vec<_>>(), [10], "the day's readings passed, warm-ups too");

    ehr.behave(|b| b.take_at_most = None);
    let second = run(&s).await;
    assert_eq!((second.accepted, second.declined, second.unfinished), (30, 0, 0), "{second:?}");
    // What the EHR answered for was never sent again (the declined one neither); what it
    // did not get to (11 to 20) was sent once more; the rest once.
    let mut want = each(4..=40, 1);
    want.extend(each(11..=20, 2));
    assert_eq!(sent(&ehr), want);
    let mut want = each(4..=40, 1);
    want.remove(&id(6));
    assert_eq!(stored(&ehr), want, "every reading the EHR took, once");
    let c = checkpoint(&s).await;
    assert_eq!((c.through, c.accepted, c.declined), (after(40), 36, 1));
    assert_eq!(ehr.violations(), Vec::<String>::new());
}

#[tokio::test]
async fn a_lost_answer_is_sent_again_and_conditional_create_makes_it_a_no_op() {
    let ehr = FakeEhr::start(TestKey::es384()).await;
    // The EHR stores the bundle, but its answer is lost (a gateway's 504 after it took it).
    ehr.behave(|b| b.lose_answers = 1);
    let s = submitter(&ehr, Stores::with(readings(1..=40)), 500);
    let first = run(&s).await;
    assert_eq!((first.accepted, first.unfinished, first.failed), (0, 1, 0), "an outage, for the next run: {first:?}");
    let c = checkpoint(&s).await;
    assert_eq!((c.through, c.accepted), (None, 0), "no answer, no move");
    let after_loss = ehr.stored("Observation");
    assert_eq!(stored(&ehr), each(4..=40, 1), "the EHR has them all the same");

    // The next run sends the same bundle (the same entries, fullUrls and ifNoneExist): the
    // EHR matches each to what it has, and stores nothing.
    let second = run(&s).await;
    assert_eq!((second.accepted, second.unfinished), (37, 0), "{second:?}");
    assert_eq!(ehr.stored("Observation"), after_loss, "nothing stored twice");
    assert_eq!(ehr.stored("Device").values().copied().collect::<Vec<_>>(), [1], "the sensor once");
    let bundles = ehr.bundles();
    let entries = |b: &Value| -> Vec<(Value, Value)> {
        b["entry"].as_array().expect("entries").iter().map(|e| (e["fullUrl"].clone(), e["request"].clone())).collect()
    };
    assert_eq!(bundles.len(), 2);
    assert_eq!(entries(&bundles[0]), entries(&bundles[1]), "the same bundle, again");
    assert_eq!(sent(&ehr), each(4..=40, 2));
    let c = checkpoint(&s).await;
    assert_eq!((c.through, c.accepted), (after(40), 37));

    let third = run(&s).await;
    assert_eq!(third.bundles, 0, "nothing sent a third time: {third:?}");
}

/// A reading measured between readings 20 and 21 that arrives after the day was sent (a
/// push Sinocare sent again), counted in its day by the readings stream's consumer.
fn arrives_late(s: &Memory) {
    let mut late = reading(20);
    late.test_id = TestId::from(format!("{SN}-late").as_str());
    late.measured_at = Timestamp::from_ms(DAY0 + 19 * MIN5 + 120_000);
    late.serial_no = Some(9_999);
    s.store.readings.lock().expect("lock").push(late);
    let mut sessions = s.sensors.sessions.lock().expect("lock");
    let session = sessions.get_mut(&DeviceSn::from(SN)).expect("the session");
    session.days.values_mut().for_each(|n| *n += 1);
}

#[tokio::test]
async fn a_day_whose_readings_came_late_is_sent_again_once_and_only_the_late_one_is_created() {
    let ehr = FakeEhr::start(TestKey::es384()).await;
    let s = submitter(&ehr, Stores::with(readings(1..=40)), 500);
    let first = run(&s).await;
    assert_eq!((first.accepted, first.late), (37, 0), "{first:?}");

    arrives_late(&s);
    let second = run(&s).await;
    assert_eq!((second.late, second.unfinished, second.bundles), (1, 0, 1), "{second:?}");
    // The day went again, each with its ifNoneExist: the EHR matched what it had and created
    // the late one.
    let mut want = each(4..=40, 1);
    want.insert(format!("{SN}-late"), 1);
    assert_eq!(stored(&ehr), want, "the late reading once, nothing twice");
    let mut want = each(4..=40, 2);
    want.insert(format!("{SN}-late"), 1);
    assert_eq!(sent(&ehr), want);
    let c = checkpoint(&s).await;
    assert_eq!(c.through, after(40), "late days do not move the checkpoint");
    assert_eq!(c.days.values().copied().collect::<Vec<_>>(), [41], "the day now counts the late one");

    let third = run(&s).await;
    assert_eq!((third.bundles, third.late), (0, 0), "the day is not sent a third time: {third:?}");
}

#[tokio::test]
async fn late_readings_are_not_sent_to_an_ehr_without_conditional_create_which_would_store_the_day_twice() {
    let ehr = FakeEhr::start(TestKey::es384()).await;
    ehr.behave(|b| b.no_conditional_create = true);
    let s = submitter(&ehr, Stores::with(readings(1..=40)), 500);
    let first = run(&s).await;
    assert_eq!((first.accepted, first.unfinished), (37, 0), "sent again without ifNoneExist: {first:?}");
    assert_eq!(stored(&ehr), each(4..=40, 1));

    arrives_late(&s);
    let second = run(&s).await;
    assert_eq!((second.late, second.unfinished, second.failed), (0, 0, 0), "{second:?}");
    assert_eq!(stored(&ehr), each(4..=40, 1), "the day is not stored twice (nor the late one)");
    let c = checkpoint(&s).await;
    assert_eq!(c.days.values().copied().collect::<Vec<_>>(), [41], "the day is passed, and said so in the log");
    let third = run(&s).await;
    assert_eq!(third.bundles, 0, "{third:?}");
}

#[tokio::test]
async fn a_new_instance_on_the_same_stores_goes_on_from_the_checkpoint_and_resends_nothing() {
    let ehr = FakeEhr::start(TestKey::es384()).await;
    let a = submitter(&ehr, Stores::with(readings(1..=20)), 500);
    let first = run(&a).await;
    assert_eq!((first.accepted, first.unfinished), (17, 0), "{first:?}");
    // Twenty more readings arrive; the EHR is down for the next run (503), which ends.
    a.store.readings.lock().expect("lock").extend(readings(21..=40));
    set_session(&a.sensors, &readings(1..=40));
    ehr.behave(|b| b.fail_next.push_back((503, None)));
    let second = run(&a).await;
    assert_eq!((second.accepted, second.unfinished, second.failed), (0, 1, 0), "{second:?}");
    assert_eq!(checkpoint(&a).await.through, after(20));

    // A cold start: a new instance, with a new EHR client and token, on the same stores.
    let b = submitter(&ehr, stores_of(a), 500);
    let third = run(&b).await;
    assert_eq!((third.accepted, third.unfinished), (20, 0), "{third:?}");
    assert_eq!(ehr.token_requests(), 2, "each instance got its own token");
    assert_eq!(sent(&ehr), each(4..=40, 1), "each reading sent once, across the restart");
    assert_eq!(stored(&ehr), each(4..=40, 1));
    let c = checkpoint(&b).await;
    assert_eq!((c.through, c.accepted), (after(40), 37));
    let fourth = run(&b).await;
    assert_eq!(fourth.bundles, 0, "{fourth:?}");
}

#[tokio::test]
async fn a_one_time_submission_resends_its_period_which_the_ehr_matches_and_leaves_the_checkpoint_alone() {
    let ehr = FakeEhr::start(TestKey::es384()).await;
    let s = submitter(&ehr, Stores::with(readings(1..=40)), 500);
    run(&s).await;
    let before = checkpoint(&s).await;
    let requests = s.requests.as_ref().expect("the one-time submissions");
    let request = SubmissionRequest {
        id: "r-1".into(),
        device_sn: DeviceSn::from(SN),
        first: "2024-05-01".parse().expect("a day"),
        last: "2024-05-01".parse().expect("a day"),
        profiles: RequestProfiles { readings: true, summary: false, summary_pdf: false },
        status: RequestStatus::Queued,
        attempts: 0,
        accepted: 0,
        declined: 0,
        reason: None,
        created_at: Timestamp::now(),
        updated_at: Timestamp::now(),
        version: 0,
    };
    assert!(requests.create(&request).await.expect("queued"));

    let second = run(&s).await;
    assert_eq!((second.requests, second.accepted), (1, 37), "{second:?}");
    let done = requests.get("r-1").await.expect("read").expect("the request");
    assert_eq!((done.status, done.attempts, done.accepted, done.declined), (RequestStatus::Done, 1, 37, 0), "{done:?}");
    assert_eq!(sent(&ehr), each(4..=40, 2), "the period, again");
    assert_eq!(stored(&ehr), each(4..=40, 1), "matched, not stored twice");
    assert_eq!(checkpoint(&s).await, before, "the schedule's checkpoint is not the request's");

    let third = run(&s).await;
    assert_eq!((third.requests, third.bundles), (0, 0), "a done request is not sent again: {third:?}");
}
