//! Route tests against the in-memory stores: each route's reply, its paging and its
//! refusals (as `OperationOutcome`s), through the same `handle` the Lambda calls. The
//! resources themselves are validated by a FHIR validator in `tests/tests/fhir.rs`.

use super::*;
use cgm_domain::alerts::AlertSettings;
use cgm_domain::session::{SensorReading, Session};
use cgm_domain::settings::FhirSettings;
use cgm_domain::store::reads::StoredReading;
use cgm_domain::store::reads::memory::MemoryReadStore;
use cgm_domain::store::rollups::memory::MemoryRollupStore;
use cgm_domain::store::sensors::memory::MemorySensorStore;
use cgm_domain::time::Timestamp;
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// 2024-05-01T00:00:00+08:00.
const DAY0: i64 = 1_714_492_800_000;
const MIN3: i64 = 180_000;
const MPI: &str = "https://hospital.example/fhir/sid/mpi";

fn reading(sn: &str, i: u64, valid: bool) -> StoredReading {
    StoredReading {
        test_id: format!("{sn}-{i:04}").into(),
        device_sn: sn.into(),
        measured_at: Timestamp::from_ms(DAY0 + (i as i64 - 1) * MIN3),
        mmol: 4.0 + (i % 50) as f64 / 10.0,
        serial_no: Some(i),
        status: Some(if valid { "0" } else { "1" }.into()),
        valid,
        incre_minute: Some(3),
        low: None,
        high: None,
    }
}

fn settings(patient_system: Option<&str>) -> FhirSettings {
    FhirSettings {
        patient_identifier_system: patient_system.map(str::to_string),
        mg_dl: false,
        identifier_prefix: "urn:cgm-bridge:sinocare:".into(),
        device_name: "Sinocare CGM sensor".into(),
        base_url: Some("https://ehr-bridge.example/fhir".into()),
    }
}

type Svc = FhirService<MemoryReadStore, MemoryRollupStore, MemorySensorStore>;

/// One day of SN1 (480 readings, the first five warm-up) whose session names patient P-1.
fn service(patient_system: Option<&str>, patient: Option<&str>) -> Svc {
    let readings: Vec<StoredReading> = (1..=480).map(|i| reading("SN1", i, i > 5)).collect();
    let sensors = MemorySensorStore::default();
    let first = SensorReading {
        reading: readings[0].clone(),
        cgm_status: None,
        cgm_day: Some(15),
        customer_name: None,
        patient_id: patient.map(str::to_string),
        visit_id: None,
        received_at: None,
    };
    let session = Session::apply(None, &[first], &BTreeMap::new(), &AlertSettings::default()).session;
    let session = session.expect("a session");
    sensors.sessions.lock().unwrap().insert(session.device_sn.clone(), session);
    let s = settings(patient_system);
    FhirService::new(
        MemoryReadStore::with_readings(readings),
        MemoryRollupStore::default(),
        sensors,
        SourceZone::default(),
        Naming::of(&s),
        GlucoseUnit::of(&s),
        s.base_url.clone(),
    )
}

fn request(route: &str, path: &str, params: Value, query: &[(&str, &str)]) -> lambda_http::Request {
    let raw: Vec<String> = query.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let mut qmap = serde_json::Map::new();
    for (k, v) in query {
        match qmap.get_mut(*k) {
            Some(Value::String(s)) => *s = format!("{s},{v}"),
            _ => drop(qmap.insert(k.to_string(), json!(v))),
        }
    }
    let event = json!({
        "version": "2.0", "routeKey": format!("GET {route}"), "rawPath": path, "rawQueryString": raw.join("&"),
        "headers": {"host": "abc.execute-api.cn-north-1.amazonaws.com.cn"}, "queryStringParameters": qmap,
        "pathParameters": params,
        "requestContext": {"accountId": "1", "apiId": "a", "domainName": "d", "domainPrefix": "d",
            "http": {"method": "GET", "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "t"},
            "requestId": "r", "routeKey": format!("GET {route}"), "stage": "$default", "timeEpoch": 1},
        "isBase64Encoded": false,
    });
    lambda_http::request::from_str(&event.to_string()).unwrap()
}

fn search(query: &[(&str, &str)]) -> lambda_http::Request {
    request("/fhir/Observation", "/fhir/Observation", json!({}), query)
}

async fn call(svc: &Svc, req: lambda_http::Request) -> (u16, Value) {
    let resp = svc.handle(req).await;
    assert_eq!(resp.headers()["content-type"], "application/fhir+json; charset=utf-8");
    let body: &[u8] = resp.body();
    (resp.status().as_u16(), serde_json::from_slice(body).expect("JSON"))
}

fn issue(v: &Value) -> (&str, &str) {
    assert_eq!(v["resourceType"], "OperationOutcome", "{v}");
    (v["issue"][0]["code"].as_str().unwrap(), v["issue"][0]["diagnostics"].as_str().unwrap())
}

/// The query of a link, as (name, value) pairs, decoded.
fn link_query(url: &str) -> Vec<(String, String)> {
    let (_, q) = url.split_once('?').unwrap();
    q.split('&')
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap();
            let dec = |s: &str| percent_encoding::percent_decode_str(s).decode_utf8().unwrap().into_owned();
            (dec(k), dec(v))
        })
        .collect()
}

#[tokio::test]
async fn a_search_pages_through_a_day_by_next_links_each_reading_once_without_warm_up() {
    let svc = service(Some(MPI), Some("P-1"));
    let mut query: Vec<(String, String)> =
        vec![("device".into(), "Device/SN1".into()), ("_count".into(), "200".into())];
    let mut seen = Vec::new();
    for page in 0.. {
        assert!(page < 10, "the search never ended");
        let q: Vec<(&str, &str)> = query.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let (status, b) = call(&svc, search(&q)).await;
        assert_eq!(status, 200, "{b}");
        assert_eq!(b["type"], "searchset");
        for e in b["entry"].as_array().unwrap() {
            let o = &e["resource"];
            assert_eq!(
                e["fullUrl"],
                format!("https://ehr-bridge.example/fhir/Observation/{}", o["id"].as_str().unwrap())
            );
            assert_eq!(o["subject"]["identifier"], json!({"system": MPI, "value": "P-1"}));
            assert_eq!(o["device"]["reference"], "Device/SN1");
            assert!(o.get("valueQuantity").is_some() && o.get("dataAbsentReason").is_none(), "{o}");
            seen.push(o["identifier"][0]["value"].as_str().unwrap().to_string());
        }
        let next = b["link"].as_array().unwrap().iter().find(|l| l["relation"] == "next");
        match next {
            None => break,
            Some(l) => query = link_query(l["url"].as_str().unwrap()),
        }
    }
    let expected: Vec<String> = (6..=480).map(|i| format!("SN1-{i:04}")).collect();
    assert_eq!(seen, expected, "every valid reading once, in time order");
}

#[tokio::test]
async fn warm_up_readings_come_only_when_asked_with_a_data_absent_reason() {
    let svc = service(Some(MPI), Some("P-1"));
    let (_, b) = call(&svc, search(&[("device", "SN1"), ("_count", "10"), ("include-warm-up", "true")])).await;
    let entries = b["entry"].as_array().unwrap();
    assert_eq!(entries.len(), 10);
    for (i, e) in entries.iter().enumerate() {
        let o = &e["resource"];
        if i < 5 {
            assert!(o.get("valueQuantity").is_none(), "{o}");
            assert_eq!(o["dataAbsentReason"]["coding"][0]["code"], "unknown");
        } else {
            assert!(o.get("valueQuantity").is_some(), "{o}");
        }
    }
}

#[tokio::test]
async fn dates_codes_and_units_select_what_is_served() {
    let svc = service(Some(MPI), Some("P-1"));
    // The first hour (local): readings 1-20, of which 6-20 are valid.
    let (_, b) = call(
        &svc,
        search(&[("device", "SN1"), ("date", "ge2024-05-01T00:00:00+08:00"), ("date", "lt2024-05-01T01:00:00+08:00")]),
    )
    .await;
    assert_eq!(b["entry"].as_array().unwrap().len(), 15, "{b}");
    let first = &b["entry"][0]["resource"];
    assert_eq!(first["effectiveDateTime"], "2024-05-01T00:15:00+08:00");
    assert_eq!(first["code"]["coding"][0]["code"], "105272-9");
    assert_eq!(
        first["valueQuantity"],
        json!({"value": 4.6, "unit": "mmol/l", "system": UCUM_SYSTEM, "code": "mmol/L"})
    );
    let (_, b) = call(&svc, search(&[("device", "SN1"), ("code", "http://loinc.org|99504-3"), ("_count", "1")])).await;
    let o = &b["entry"][0]["resource"];
    assert_eq!(o["code"]["coding"][0]["code"], "99504-3");
    assert_eq!(
        o["meta"]["profile"][0],
        "http://hl7.org/fhir/uv/cgm/StructureDefinition/cgm-sensor-reading-mass-per-volume"
    );
    assert_eq!(o["valueQuantity"], json!({"value": 83.0, "unit": "mg/dl", "system": UCUM_SYSTEM, "code": "mg/dL"}));
    // A code this server never produces matches nothing; so does an unknown device.
    for q in [[("device", "SN1"), ("code", "2339-0")], [("device", "SN404"), ("code", "105272-9")]] {
        let (status, b) = call(&svc, search(&q)).await;
        assert_eq!((status, b.get("entry")), (200, None), "{b}");
    }
}

const UCUM_SYSTEM: &str = "http://unitsofmeasure.org";

#[tokio::test]
async fn bad_searches_are_operation_outcomes_naming_what_is_wrong() {
    let svc = service(Some(MPI), Some("P-1"));
    for (q, status, code, says) in [
        (vec![("date", "ge2024-05-01")], 400, "invalid", "device is required"),
        (vec![("device", "SN1"), ("patient", "P-1")], 400, "invalid", "unknown query parameter \"patient\""),
        (vec![("device", "SN1"), ("date", "ne2024-05-01")], 400, "invalid", "prefix ne is not supported"),
        (vec![("device", "SN1"), ("_count", "1001")], 400, "invalid", "_count must be a whole number from 1 to 1000"),
        (vec![("device", "SN1"), ("_cursor", "garbage")], 400, "invalid", "_cursor"),
        (vec![("device", "SN1"), ("code", "107931-8,105272-9")], 400, "invalid", "not both"),
        (
            vec![("device", "SN1"), ("code", "107931-8"), ("date", "ge2024-05-01T06:00:00+08:00")],
            400,
            "invalid",
            "whole local days",
        ),
        (
            vec![("device", "SN1"), ("code", "107931-8"), ("date", "ge2024-01-01"), ("date", "le2024-05-01")],
            400,
            "invalid",
            "at most 90 days",
        ),
        (vec![("device", "SN1"), ("code", "107931-8"), ("include-warm-up", "true")], 400, "invalid", "one page"),
        (vec![("device", "SN1"), ("code", "105272-9,99504-3")], 400, "invalid", "one unit"),
        (vec![("device", "SN1"), ("_format", "xml")], 400, "invalid", "FHIR JSON only"),
        (vec![("device", "Patient/SN1")], 400, "invalid", "device must be Device/<id>"),
    ] {
        let (got, b) = call(&svc, search(&q)).await;
        let (c, d) = issue(&b);
        assert_eq!((got, c), (status, code), "{q:?}: {b}");
        assert!(d.contains(says), "{q:?}: {d}");
    }
}

#[tokio::test]
async fn without_the_patient_identifier_system_only_metadata_is_served() {
    let svc = service(None, Some("P-1"));
    let (status, b) = call(&svc, search(&[("device", "SN1")])).await;
    assert_eq!(status, 403);
    assert!(issue(&b).1.contains("FHIR_PATIENT_IDENTIFIER_SYSTEM"), "{b}");
    let (status, _) = call(&svc, request("/fhir/Device/{id}", "/fhir/Device/SN1", json!({"id": "SN1"}), &[])).await;
    assert_eq!(status, 403);
    let (status, b) = call(&svc, request("/fhir/metadata", "/fhir/metadata", json!({}), &[])).await;
    assert_eq!((status, b["resourceType"].as_str()), (200, Some("CapabilityStatement")));
    assert_eq!(b["fhirVersion"], "4.0.1");
}

#[tokio::test]
async fn a_device_without_a_known_patient_is_refused_not_served_without_a_subject() {
    let svc = service(Some(MPI), None);
    let (status, b) = call(&svc, search(&[("device", "SN1")])).await;
    assert_eq!((status, issue(&b).0), (422, "processing"), "{b}");
    // The device itself needs no patient: it is served without one.
    let (status, b) = call(&svc, request("/fhir/Device/{id}", "/fhir/Device/SN1", json!({"id": "SN1"}), &[])).await;
    assert_eq!(status, 200, "{b}");
    assert!(b.get("patient").is_none());
}

#[tokio::test]
async fn a_device_reads_as_a_cgm_device_and_an_unknown_one_is_not_found() {
    let svc = service(Some(MPI), Some("P-1"));
    let (status, d) = call(&svc, request("/fhir/Device/{id}", "/fhir/Device/SN1", json!({"id": "SN1"}), &[])).await;
    assert_eq!(status, 200, "{d}");
    assert_eq!(d["serialNumber"], "SN1");
    assert_eq!(d["deviceName"][0], json!({"name": "Sinocare CGM sensor", "type": "user-friendly-name"}));
    assert_eq!(d["identifier"][0], json!({"system": "urn:cgm-bridge:sinocare:device-sn", "value": "SN1"}));
    assert_eq!(d["status"], "active");
    assert_eq!(d["patient"]["identifier"]["value"], "P-1");
    for id in ["SN404", "h-00ff", "x-zz"] {
        let (status, b) =
            call(&svc, request("/fhir/Device/{id}", &format!("/fhir/Device/{id}"), json!({"id": id}), &[])).await;
        assert_eq!((status, issue(&b).0), (404, "not-found"), "{id}");
    }
}

#[test]
fn every_sinocare_id_becomes_a_fhir_id_and_back_where_it_fits() {
    let ok = |id: &str| {
        id.len() <= 64 && !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
    };
    for text in ["SN1", "23xxdrt33", "a b", "设备-1", "x-41", "h-1", "", &"9".repeat(64), &"长".repeat(40)] {
        let id = cgm_fhir_profiles::fhir_id(text);
        assert!(ok(&id), "{text:?} gave {id:?}");
        match cgm_fhir_profiles::text_of_fhir_id(&id) {
            Some(back) => assert_eq!(back, text),
            None => assert!(id.starts_with("h-") && text.len() > 31, "{text:?} gave {id:?}"),
        }
    }
    assert_eq!(cgm_fhir_profiles::fhir_id("SN1"), "SN1");
    assert_eq!(cgm_fhir_profiles::fhir_id("x-41"), "x-782d3431");
}

#[tokio::test]
async fn a_summary_over_whole_days_is_the_panel_and_its_six_members() {
    let svc = service(Some(MPI), Some("P-1"));
    let q = [("device", "SN1"), ("code", "107931-8"), ("date", "ge2024-05-01"), ("date", "le2024-05-01")];
    let (status, b) = call(&svc, search(&q)).await;
    assert_eq!(status, 200, "{b}");
    let entries = b["entry"].as_array().unwrap();
    assert_eq!(entries.len(), 7, "{b}");
    let panel = &entries[0]["resource"];
    assert_eq!(entries[0]["search"]["mode"], "match");
    assert!(entries[1..].iter().all(|e| e["search"]["mode"] == "include"));
    assert_eq!(panel["code"]["coding"][0]["code"], "107931-8");
    assert_eq!(panel["effectivePeriod"], json!({"start": "2024-05-01", "end": "2024-05-01"}));
    let members: Vec<String> =
        entries[1..].iter().map(|e| format!("Observation/{}", e["resource"]["id"].as_str().unwrap())).collect();
    let refs: Vec<String> =
        panel["hasMember"].as_array().unwrap().iter().map(|r| r["reference"].as_str().unwrap().to_string()).collect();
    assert_eq!(refs, members, "hasMember names the included members");
    let by_code = |code: &str| {
        entries.iter().map(|e| &e["resource"]).find(|o| o["code"]["coding"][0]["code"] == code).unwrap().clone()
    };
    // 475 valid readings of 480 expected at 3 minutes; one day worn.
    assert_eq!(by_code("104637-4")["valueQuantity"]["value"], 98.96);
    assert_eq!(
        by_code("104636-6")["valueQuantity"],
        json!({"value": 1, "unit": "days", "system": UCUM_SYSTEM, "code": "d"})
    );
    assert_eq!(by_code("105273-7")["valueQuantity"]["unit"], "mmol/l");
    let tir = by_code("106793-3");
    let shares: Vec<f64> =
        tir["component"].as_array().unwrap().iter().map(|c| c["valueQuantity"]["value"].as_f64().unwrap()).collect();
    assert_eq!(shares.len(), 5);
    assert!((shares.iter().sum::<f64>() - 100.0).abs() < 0.05, "{shares:?}");
    // The same search again gives the same ids: a receiver can match what it already has.
    let (_, again) = call(&svc, search(&q)).await;
    assert_eq!(again["entry"][0]["resource"]["id"], panel["id"]);
    // Days without a valid reading have no summary.
    let (_, none) = call(&svc, search(&[("device", "SN1"), ("code", "107931-8"), ("date", "2024-06")])).await;
    assert_eq!(none.get("entry"), None, "{none}");
}
