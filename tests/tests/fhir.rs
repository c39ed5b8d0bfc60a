//! The FHIR read API end to end: a day of one sensor pushed through the push route into
//! DynamoDB Local, its session kept by the stream consumer, then every FHIR route over HTTP
//! on the local server, and every resource it answered run through a FHIR validator no one
//! here wrote (FHIR.js for R4, fhirpath.js for the CGM IG's rules, `cgm_tests::fhir_validator`).

use cgm_tests::fhir_validator::{self, validate};
use cgm_tests::{Stack, seed_with, serve_locally};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const MPI: &str = "https://hospital.example/fhir/sid/mpi";
const SN: &str = "SN-FHIR";
/// 2024-05-01T00:00:00+08:00.
const DAY0: i64 = 1_714_492_800_000;
const MIN3: i64 = 180_000;

/// A day of 3-minute readings, the first five warm-up, with every personal field set.
fn bodies() -> Vec<String> {
    (1..=480u64)
        .map(|s| {
            let local = chrono::DateTime::from_timestamp_millis(DAY0 + (s as i64 - 1) * MIN3).unwrap()
                + chrono::Duration::hours(8);
            seed_with(json!({
                "testId": format!("FHIR-{s:04}"), "deviceSn": SN, "serialNo": s,
                "testTime": local.format("%Y-%m-%d %H:%M:%S").to_string(),
                "testResult": format!("{:.1}", 4.0 + (s % 60) as f64 / 10.0),
                "status": if s <= 5 { "1" } else { "0" }, "increMinute": 3,
                "patientName": "张三丰", "patientId": "MPI-4711", "idCard": "430424199001011234",
                "visitId": "V-2001", "inSerialId": "IN-3003",
            }))
        })
        .collect()
}

struct Fhir {
    http: reqwest::Client,
    base: String,
    /// Every body the routes answered, for the validator and the privacy check.
    seen: Vec<Value>,
}

impl Fhir {
    async fn get(&mut self, url: &str) -> (u16, Value) {
        let r = self.http.get(url).send().await.expect("a FHIR route");
        let status = r.status().as_u16();
        let ct = r.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
        assert_eq!(ct, "application/fhir+json; charset=utf-8", "{url}");
        let v: Value = r.json().await.expect("FHIR JSON");
        self.seen.push(v.clone());
        (status, v)
    }

    /// Every page of a search, by its `next` links: the entries' resources.
    async fn search_all(&mut self, query: &str) -> Vec<Value> {
        let mut url = format!("{}/fhir/Observation?{query}", self.base);
        let mut out = Vec::new();
        for _ in 0..100 {
            let (status, b) = self.get(&url).await;
            assert_eq!(status, 200, "{url}: {b}");
            out.extend(b["entry"].as_array().cloned().unwrap_or_default().into_iter().map(|e| e["resource"].clone()));
            match b["link"].as_array().unwrap().iter().find(|l| l["relation"] == "next") {
                Some(l) => url = l["url"].as_str().unwrap().to_string(),
                None => return out,
            }
        }
        panic!("the search did not end in 100 pages");
    }
}

#[tokio::test]
async fn a_pushed_day_reads_as_cgm_ig_resources_that_a_fhir_validator_accepts() {
    let stack = Stack::new().await;
    let cfg = stack.config(&[("FHIR_PATIENT_IDENTIFIER_SYSTEM", MPI)]);
    let base = serve_locally(&cfg).await;
    let consumer = cgm_local::stream_consumer(&cfg).await.expect("a stream consumer");
    let running = tokio::spawn(consumer.run());
    let http = reqwest::Client::new();
    for chunk in bodies().chunks(32) {
        let mut set = tokio::task::JoinSet::new();
        for b in chunk {
            set.spawn(http.post(format!("{base}/sinocare/cgm")).body(b.clone()).send());
        }
        while let Some(r) = set.join_next().await {
            assert_eq!(r.unwrap().expect("push").status().as_u16(), 200);
        }
    }
    let mut fhir = Fhir { http, base: base.clone(), seen: Vec::new() };

    // The sensor's session, which names its patient, is kept by the stream consumer.
    let deadline = Instant::now() + Duration::from_secs(60);
    let device = loop {
        let (status, d) = fhir.get(&format!("{base}/fhir/Device/{SN}")).await;
        if status == 200 && d.get("patient").is_some() {
            break d;
        }
        assert!(Instant::now() < deadline, "the stream consumer kept no session in 60 s: {status} {d}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    running.abort();
    assert_eq!(device["serialNumber"], SN);
    assert_eq!(device["patient"]["identifier"], json!({"system": MPI, "value": "MPI-4711"}));

    // Every valid reading, once, in time order, over pages of 200.
    let readings = fhir.search_all(&format!("device=Device/{SN}&_count=200")).await;
    let ids: Vec<&str> = readings.iter().map(|o| o["identifier"][0]["value"].as_str().unwrap()).collect();
    let expected: Vec<String> = (6..=480).map(|s| format!("FHIR-{s:04}")).collect();
    assert_eq!(ids, expected);
    let first = &readings[0];
    assert_eq!(first["effectiveDateTime"], "2024-05-01T00:15:00+08:00", "the instant with its offset");
    assert_eq!(first["valueQuantity"]["value"], 4.6);
    assert_eq!(first["status"], "final");
    assert_eq!(first["category"][0]["coding"][0]["code"], "laboratory", "the scope the IG lists allows only this");
    assert_eq!(first["identifier"][0]["system"], "urn:cgm-bridge:sinocare:test-id");
    assert_eq!(first["device"]["reference"], format!("Device/{SN}"));

    // Warm-up readings on request, in mg/dL, within an hour given by FHIR date prefixes.
    let hour = fhir
        .search_all(
            "device=SN-FHIR&code=http%3A%2F%2Floinc.org%7C99504-3&include-warm-up=true\
                     &date=ge2024-05-01T00:00:00%2B08:00&date=lt2024-05-01T01:00:00%2B08:00",
        )
        .await;
    assert_eq!(hour.len(), 20);
    assert!(hour[..5].iter().all(|o| o.get("valueQuantity").is_none() && o.get("dataAbsentReason").is_some()));
    assert_eq!(
        hour[5]["valueQuantity"],
        json!({"value": 83.0, "unit": "mg/dl", "system": "http://unitsofmeasure.org", "code": "mg/dL"})
    );

    // The day's summary on demand: the panel and its six members, from the day's rollup.
    let (status, summary) = fhir
        .get(&format!("{base}/fhir/Observation?device={SN}&code=107931-8&date=ge2024-05-01&date=le2024-05-01"))
        .await;
    assert_eq!(status, 200, "{summary}");
    assert_eq!(summary["entry"].as_array().map(Vec::len), Some(7), "{summary}");
    let wear = summary["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["resource"])
        .find(|o| o["code"]["coding"][0]["code"] == "104636-6");
    assert_eq!(wear.unwrap()["valueQuantity"]["value"], 1);

    // The same summary's PDF report (cgm-summary-pdf): the AGP page as a PDF a reader
    // opens (poppler's pdfinfo), its result the panel, which is included with its members.
    let (status, reports) =
        fhir.get(&format!("{base}/fhir/DiagnosticReport?device={SN}&date=ge2024-05-01&date=le2024-05-01")).await;
    assert_eq!(status, 200, "{reports}");
    let entries = reports["entry"].as_array().unwrap();
    assert_eq!(entries.len(), 8, "the report and the panel with its six members");
    assert_eq!(
        (entries[0]["search"]["mode"].as_str(), entries[1]["search"]["mode"].as_str()),
        (Some("match"), Some("include"))
    );
    let report = &entries[0]["resource"];
    assert_eq!(report["effectivePeriod"], json!({"start": "2024-05-01", "end": "2024-05-01"}));
    let panel = report["result"][0]["reference"].as_str().unwrap();
    assert!(entries[1]["fullUrl"].as_str().unwrap().ends_with(panel), "{panel} is the included panel");
    let info = cgm_tests::pdfinfo_of_base64(report["presentedForm"][0]["data"].as_str().unwrap());
    assert!(info.contains("Pages:           1") && info.contains("(A4)"), "{info}");
    let (status, none) = fhir.get(&format!("{base}/fhir/DiagnosticReport?device={SN}&code=12345-6")).await;
    assert_eq!(status, 200, "{none}");
    assert!(none["entry"].as_array().is_none_or(Vec::is_empty), "a code it never makes matches nothing: {none}");
    let (status, outcome) = fhir.get(&format!("{base}/fhir/DiagnosticReport?device={SN}&status=final")).await;
    assert_eq!((status, outcome["resourceType"].as_str()), (400, Some("OperationOutcome")), "{outcome}");

    let (status, metadata) = fhir.get(&format!("{base}/fhir/metadata")).await;
    assert_eq!(status, 200);
    let (status, outcome) = fhir.get(&format!("{base}/fhir/Observation?device={SN}&patient=MPI-4711")).await;
    assert_eq!(status, 400, "{outcome}");

    // The validator: R4 structure for everything, the IG's rules for what claims a profile.
    let report = validate(&fhir.seen);
    assert!(report.ok, "the FHIR validator refused what the routes answered:\n{}", report.errors().join("\n"));
    let checked = |profile: &str| {
        report
            .resources
            .iter()
            .filter(|r| r["profiles"].as_array().is_some_and(|p| p.iter().any(|x| x == profile)))
            .count()
    };
    assert!(
        checked("cgm-sensor-reading-moles-per-volume") >= 475,
        "every molar reading was checked against its profile"
    );
    assert_eq!(checked("cgm-sensor-reading-mass-per-volume"), 20);
    assert!(checked("cgm-device") >= 1);
    for profile in [
        "cgm-summary",
        "cgm-summary-mean-glucose-moles-per-volume",
        "cgm-summary-times-in-ranges",
        "cgm-summary-gmi",
        "cgm-summary-coefficient-of-variation",
        "cgm-summary-days-of-wear",
        "cgm-summary-sensor-active-percentage",
    ] {
        assert_eq!(checked(profile), 2, "{profile} was checked in the summary and with its report");
    }
    assert_eq!(checked("cgm-summary-pdf"), 1);
    assert!(
        report
            .resources
            .iter()
            .all(|r| r["profiles"].as_array().unwrap().is_empty() || r["checks"].as_array().unwrap().len() >= 6)
    );
    assert_eq!(metadata["resourceType"], "CapabilityStatement");

    // The patient's identifier is all the FHIR routes show of the patient.
    let text = serde_json::to_string(&fhir.seen).unwrap();
    for personal in ["张三丰", "430424199001011234", "V-2001", "IN-3003"] {
        assert!(!text.contains(personal), "{personal} reached a FHIR answer");
    }
}

#[test]
fn the_validator_refuses_what_breaks_the_profiles_citing_each_rule() {
    // A reading as the routes write it, then broken one rule at a time.
    let good = json!({
        "resourceType": "Observation", "id": "r1",
        "meta": {"profile": ["http://hl7.org/fhir/uv/cgm/StructureDefinition/cgm-sensor-reading-moles-per-volume"]},
        "status": "final",
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "laboratory"}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": "105272-9"}]},
        "subject": {"type": "Patient", "identifier": {"system": MPI, "value": "P-1"}},
        "effectiveDateTime": "2024-05-01T00:15:00+08:00",
        "valueQuantity": {"value": 4.6, "unit": "mmol/l", "system": "http://unitsofmeasure.org", "code": "mmol/L"},
    });
    assert!(validate(std::slice::from_ref(&good)).ok, "the unbroken reading is valid");
    let fsh = std::fs::read_to_string(fhir_validator::profiles_fsh()).unwrap();
    // The rule's line inside its block (the mass profile repeats the molar one's rules).
    let line_of = |block: &str, rule: &str| {
        let lines: Vec<&str> = fsh.lines().collect();
        let start = lines.iter().position(|l| l.trim_end() == block).expect(block);
        lines[start..].iter().position(|l| l.trim() == rule).map(|i| start + i + 1).expect(rule)
    };
    const MOLAR: &str = "Profile: CGMSensorReadingMolesPerVolume";
    const BASE: &str = "RuleSet: ObservationBase";
    const UNIT: &str = "RuleSet: GlucoseMolesPerVolume";
    let broken = |f: &dyn Fn(&mut Value)| {
        let mut v = good.clone();
        f(&mut v);
        v
    };
    for (what, resource, block, cite) in [
        ("no subject", broken(&|v| drop(v.as_object_mut().unwrap().remove("subject"))), BASE, "* subject 1..1 MS"),
        (
            "mg/dL code",
            broken(&|v| v["valueQuantity"]["code"] = json!("mg/dL")),
            UNIT,
            "* valueQuantity = 'mmol/L' \"mmol/l\"",
        ),
        (
            "unit text",
            broken(&|v| v["valueQuantity"]["unit"] = json!("mmol/L")),
            UNIT,
            "* valueQuantity = 'mmol/L' \"mmol/l\"",
        ),
        ("mass code", broken(&|v| v["code"]["coding"][0]["code"] = json!("99504-3")), MOLAR, "* code = $LNC#105272-9"),
        (
            "no value, no reason",
            broken(&|v| drop(v.as_object_mut().unwrap().remove("valueQuantity"))),
            MOLAR,
            "* obeys cgm-sensor-value-or-dar",
        ),
        (
            "a period",
            broken(&|v| {
                v.as_object_mut().unwrap().remove("effectiveDateTime");
                v["effectivePeriod"] = json!({"start": "2024-05-01"});
            }),
            MOLAR,
            "* effectiveDateTime 1..1 MS",
        ),
    ] {
        let report = validate(&[resource]);
        let errors = report.errors().join("\n");
        assert!(!report.ok, "{what}: the validator accepted it");
        let at = format!("profiles.fsh:{}", line_of(block, cite));
        assert!(errors.contains(&at), "{what}: no error cites {at} ({cite}):\n{errors}");
    }
    // And the R4 structure itself: an unknown element, a bad status, a bad dateTime.
    for (what, resource, says) in [
        ("unknown element", broken(&|v| v["glucose"] = json!(4.6)), "Observation.glucose: Unexpected property"),
        ("bad status", broken(&|v| v["status"] = json!("done")), "Observation.status"),
        // FHIR.js checks dateTime loosely (it takes "2024-05-01 00:15"): text that is no time at all.
        ("bad dateTime", broken(&|v| v["effectiveDateTime"] = json!("May 1, noon")), "Invalid dateTime"),
    ] {
        let report = validate(&[resource]);
        let errors = report.errors().join("\n");
        assert!(!report.ok && errors.contains(says), "{what}: {errors}");
    }
}

#[test]
fn the_validator_holds_a_summary_to_its_slices_in_the_bundle_it_came_in() {
    let member = |id: &str, profile: &str, code: &str, value: Value| {
        json!({
            "resourceType": "Observation", "id": id,
            "meta": {"profile": [format!("http://hl7.org/fhir/uv/cgm/StructureDefinition/{profile}")]},
            "status": "final", "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
            "subject": {"identifier": {"system": MPI, "value": "P-1"}},
            "effectivePeriod": {"start": "2024-05-01", "end": "2024-05-14"},
            "valueQuantity": value,
        })
    };
    let pct = |v: f64| json!({"value": v, "unit": "%", "system": "http://unitsofmeasure.org", "code": "%"});
    let mut tir = member("tir", "cgm-summary-times-in-ranges", "106793-3", Value::Null);
    tir.as_object_mut().unwrap().remove("valueQuantity");
    tir["component"] = ["104642-4", "104641-6", "97510-2", "104640-8", "104639-0"]
        .iter()
        .map(|c| json!({"code": {"coding": [{"system": "http://loinc.org", "code": c}]}, "valueQuantity": pct(20.0)}))
        .collect();
    let members = vec![
        member(
            "mean",
            "cgm-summary-mean-glucose-moles-per-volume",
            "105273-7",
            json!({"value": 7.1, "unit": "mmol/l", "system": "http://unitsofmeasure.org", "code": "mmol/L"}),
        ),
        tir,
        member("gmi", "cgm-summary-gmi", "97506-0", pct(6.8)),
        member("cv", "cgm-summary-coefficient-of-variation", "104638-2", pct(34.0)),
        member(
            "wear",
            "cgm-summary-days-of-wear",
            "104636-6",
            json!({"value": 14, "unit": "days", "system": "http://unitsofmeasure.org", "code": "d"}),
        ),
        member("active", "cgm-summary-sensor-active-percentage", "104637-4", pct(95.0)),
    ];
    let bundle = |members: &[Value]| {
        let mut panel = member("panel", "cgm-summary", "107931-8", Value::Null);
        panel.as_object_mut().unwrap().remove("valueQuantity");
        panel["hasMember"] = members
            .iter()
            .map(|m| json!({"reference": format!("Observation/{}", m["id"].as_str().unwrap())}))
            .collect();
        let mut entry = vec![
            json!({"fullUrl": "https://x.example/fhir/Observation/panel", "resource": panel, "search": {"mode": "match"}}),
        ];
        entry.extend(members.iter().map(|m| json!({"fullUrl": format!("https://x.example/fhir/Observation/{}", m["id"].as_str().unwrap()), "resource": m, "search": {"mode": "include"}})));
        json!({"resourceType": "Bundle", "type": "searchset", "entry": entry})
    };
    let report = validate(&[bundle(&members)]);
    assert!(report.ok, "{}", report.errors().join("\n"));
    // Without its GMI the panel has five members: under 6, and the gmi slice is empty.
    let mut five = members.clone();
    five.remove(2);
    let errors = validate(&[bundle(&five)]).errors().join("\n");
    assert!(errors.contains("(* hasMember 6..*) fails") && errors.contains("(gmi 1..1 MS and) fails"), "{errors}");
    // A member of the wrong unit: the days of wear in hours.
    let mut hours = members.clone();
    hours[4]["valueQuantity"] =
        json!({"value": 336, "unit": "hours", "system": "http://unitsofmeasure.org", "code": "h"});
    let errors = validate(&[bundle(&hours)]).errors().join("\n");
    assert!(errors.contains("(* valueQuantity = 'd' \"days\") fails"), "{errors}");
}
