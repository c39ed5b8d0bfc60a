//! Route tests against the in-memory read store: each route's reply shape, its paging, and
//! its refusals, through the same `handle` the Lambda calls.

use crate::ReadService;
use cgm_domain::store::reads::StoredReading;
use cgm_domain::store::reads::memory::MemoryReadStore;
use cgm_domain::store::rollups::memory::MemoryRollupStore;
use cgm_domain::store::sensors::memory::MemorySensorStore;
use cgm_domain::time::{SourceZone, Timestamp};
use cgm_edge::HttpService;
use serde_json::{Value, json};
use std::sync::atomic::Ordering;

/// 2024-05-01T00:00:00+08:00.
const DAY0: i64 = 1_714_492_800_000;
const MIN3: i64 = 180_000;

fn reading(sn: &str, i: u64, mmol: f64, valid: bool) -> StoredReading {
    StoredReading {
        test_id: format!("{sn}-{i:04}").into(),
        device_sn: sn.into(),
        measured_at: Timestamp::from_ms(DAY0 + (i as i64 - 1) * MIN3),
        mmol,
        serial_no: Some(i),
        status: Some(if valid { "0" } else { "1" }.into()),
        valid,
        incre_minute: Some(3),
        low: Some(3.5),
        high: None,
    }
}

/// A day of one device: 480 readings, the first five warm-up, serials 281–300 missing.
fn day(sn: &str) -> Vec<StoredReading> {
    (1..=480)
        .filter(|i| !(281..=300).contains(i))
        .map(|i| reading(sn, i, 4.0 + (i % 50) as f64 / 10.0, i > 5))
        .collect()
}

type Svc = ReadService<MemoryReadStore, MemoryRollupStore, MemorySensorStore>;

fn service(readings: Vec<StoredReading>) -> Svc {
    ReadService::new(
        MemoryReadStore::with_readings(readings),
        MemoryRollupStore::default(),
        MemorySensorStore::default(),
        SourceZone::default(),
        false,
    )
}

/// A real API Gateway HTTP API event for a route (`GET /devices/{device_sn}/readings`).
fn request(route: &str, path: &str, params: Value, query: &[(&str, &str)], headers: Value) -> lambda_http::Request {
    let (method, _) = route.split_once(' ').unwrap();
    let raw_query: Vec<String> = query.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let mut qmap = serde_json::Map::new();
    for (k, v) in query {
        qmap.insert(k.to_string(), json!(v));
    }
    let event = json!({
        "version": "2.0", "routeKey": route, "rawPath": path, "rawQueryString": raw_query.join("&"),
        "headers": headers, "queryStringParameters": qmap, "pathParameters": params,
        "requestContext": {"accountId": "1", "apiId": "a", "domainName": "d", "domainPrefix": "d",
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "t"},
            "requestId": "r", "routeKey": route, "stage": "$default", "timeEpoch": 1},
        "isBase64Encoded": false,
    });
    lambda_http::request::from_str(&event.to_string()).unwrap()
}

fn device(route_tail: &str, sn: &str, query: &[(&str, &str)]) -> lambda_http::Request {
    let route = format!("GET /devices/{{device_sn}}/{route_tail}");
    request(&route, &format!("/devices/{sn}/{route_tail}"), json!({"device_sn": sn}), query, json!({}))
}

async fn call(svc: &Svc, req: lambda_http::Request) -> (u16, Value) {
    let resp = svc.handle(req).await;
    let status = resp.status().as_u16();
    let body: &[u8] = resp.body();
    (status, serde_json::from_slice(body).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into())))
}

#[tokio::test]
async fn an_unknown_query_parameter_is_a_400_naming_it_never_the_default_range() {
    // Given a device with a day of readings
    let svc = service(day("SN-Q"));
    let create = || {
        let route = "POST /devices/{device_sn}/follow-tokens";
        request(route, "/devices/SN-Q/follow-tokens", json!({"device_sn": "SN-Q"}), &[("days", "7")], json!({}))
    };
    let revoke = || {
        let route = "DELETE /devices/{device_sn}/follow-tokens/{token_id}";
        let params = json!({"device_sn": "SN-Q", "token_id": "t1"});
        request(route, "/devices/SN-Q/follow-tokens/t1", params, &[("force", "1")], json!({}))
    };
    // When each route is asked with a misspelt or unknown parameter (issue 27's cases)
    for (req, name) in [
        (device("readings", "SN-Q", &[("form", "1")]), "form"),
        (device("gaps", "SN-Q", &[("frm", "1")]), "frm"),
        (device("summary", "SN-Q", &[("fromm", "1")]), "fromm"),
        (device("chart.svg", "SN-Q", &[("day", "2024-01-01")]), "day"),
        (device("follow-tokens", "SN-Q", &[("all", "1")]), "all"),
        (create(), "days"),
        (revoke(), "force"),
    ] {
        // Then it is refused, naming the parameter, rather than answered for the default range
        let (status, body) = call(&svc, req).await;
        assert_eq!(status, 400, "{name}: {body}");
        let message = body["message"].as_str().unwrap_or_default();
        assert!(message.contains(&format!("unknown query parameter \"{name}\"")), "{name}: {body}");
    }
    // And the parameters each route documents are still taken
    let from = (Timestamp::now().ms() - 86_400_000).to_string();
    for req in [
        device("readings", "SN-Q", &[("from", "0"), ("include_invalid", "true"), ("limit", "5"), ("format", "json")]),
        device("gaps", "SN-Q", &[("from", &from), ("limit", "5")]),
        device("summary", "SN-Q", &[("from", &from)]),
        device("chart.svg", "SN-Q", &[("date", "2024-05-01")]),
    ] {
        let (status, body) = call(&svc, req).await;
        assert_eq!(status, 200, "{body}");
    }
}

#[tokio::test]
async fn readings_page_through_to_the_end_each_once() {
    let svc = service(day("SN1"));
    let mut cursor: Option<String> = None;
    let mut seen = Vec::new();
    loop {
        let mut q = vec![("limit", "100")];
        if let Some(c) = &cursor {
            q.push(("cursor", c.as_str()));
        }
        let (status, body) = call(&svc, device("readings", "SN1", &q)).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["device_sn"], "SN1");
        let page = body["readings"].as_array().unwrap();
        assert!(page.len() <= 100);
        seen.extend(page.iter().map(|r| r["test_id"].as_str().unwrap().to_string()));
        match body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 455, "460 stored, 5 warm-up left out");
    let first = call(&svc, device("readings", "SN1", &[("limit", "1")])).await.1;
    let r = &first["readings"][0];
    assert_eq!(r["local_time"], "2024-05-01T00:15:00+08:00");
    assert_eq!(r["measured_at_utc"], "2024-04-30T16:15:00.000Z");
    assert_eq!((r["serial_no"].as_u64(), r["valid"].as_bool(), r["status"].as_str()), (Some(6), Some(true), Some("0")));
}

#[tokio::test]
async fn a_cursor_only_continues_its_own_query() {
    let svc = service(day("SN1"));
    let (_, body) = call(&svc, device("readings", "SN1", &[("limit", "10")])).await;
    let c = body["next_cursor"].as_str().unwrap().to_string();
    let (status, body) =
        call(&svc, device("readings", "SN1", &[("limit", "10"), ("include_invalid", "true"), ("cursor", &c)])).await;
    assert_eq!((status, body["message"].as_str()), (400, Some("cursor belongs to a different query")));
    let (status, body) = call(&svc, device("readings", "SN1", &[("cursor", "bogus")])).await;
    assert_eq!((status, body["message"].as_str()), (400, Some("cursor is malformed")));
}

#[tokio::test]
async fn readings_as_csv_carry_their_cursor_in_a_header() {
    let svc = service(day("SN1"));
    let resp = svc.handle(device("readings", "SN1", &[("format", "csv"), ("limit", "2")])).await;
    assert_eq!(resp.headers()["content-type"], "text/csv; charset=utf-8");
    assert!(resp.headers().contains_key("x-next-cursor"));
    let text = String::from_utf8(resp.body().to_vec()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3);
    assert!(lines[0].starts_with("device_sn,test_id,serial_no"));
    assert!(lines[1].starts_with("SN1,SN1-0006,6,"), "{}", lines[1]);
}

#[tokio::test]
async fn gaps_name_the_missing_run_with_its_times() {
    let svc = service(day("SN1"));
    let q = [("from", "2024-05-01T00:00:00+08:00"), ("to", "2024-05-01T23:59:59+08:00")];
    let (status, body) = call(&svc, device("gaps", "SN1", &q)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["expected"].as_u64(), body["received"].as_u64(), body["missing"].as_u64()),
        (Some(480), Some(460), Some(20))
    );
    let g = &body["gaps"][0];
    assert_eq!((g["first_serial_no"].as_u64(), g["last_serial_no"].as_u64()), (Some(281), Some(300)));
    assert_eq!(g["expected_from_local"], "2024-05-01T14:00:00+08:00");
    assert_eq!(g["after"]["serial_no"], 280);
    assert_eq!(body["from_local"], "2024-05-01T00:00:00+08:00");
}

#[tokio::test]
async fn summary_computes_the_consensus_metrics_over_valid_readings() {
    let svc = service(vec![
        reading("S", 1, 2.5, true),
        reading("S", 2, 5.0, true),
        reading("S", 3, 12.0, true),
        reading("S", 4, 9.0, false),
    ]);
    let q = [("from", &*DAY0.to_string()), ("to", &*(DAY0 + 4 * MIN3 - 1).to_string())];
    let (status, body) = call(&svc, device("summary", "S", &q)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!((body["readings"].as_u64(), body["invalid_readings_excluded"].as_u64()), (Some(3), Some(1)));
    assert_eq!((body["interval_minutes"].as_u64(), body["expected_readings"].as_u64()), (Some(3), Some(4)));
    assert_eq!(body["mean_mmol"].as_f64(), Some(6.5));
    let tir = &body["time_in_ranges_percent"];
    assert_eq!(
        (tir["very_low_below_3_0"].as_f64(), tir["in_range_3_9_to_10_0"].as_f64(), tir["high_10_0_to_13_9"].as_f64()),
        (Some(33.3), Some(33.3), Some(33.3))
    );
    let (status, body) = call(&svc, device("summary", "S", &[("from", "0"), ("to", "9999999999999")])).await;
    assert_eq!(status, 400);
    assert!(body["message"].as_str().unwrap().contains("longer than 90 days"));
}

#[tokio::test]
async fn the_chart_is_svg_of_the_local_day() {
    let svc = service(day("SN1"));
    let resp = svc.handle(device("chart.svg", "SN1", &[("date", "2024-05-01")])).await;
    assert_eq!(
        (resp.status().as_u16(), &resp.headers()["content-type"]),
        (200, &"image/svg+xml".parse::<lambda_http::http::HeaderValue>().unwrap())
    );
    let svg = String::from_utf8(resp.body().to_vec()).unwrap();
    assert!(svg.contains("<svg") && svg.contains("SN1") && svg.contains("2024-05-01"), "{}", &svg[..200]);
    assert_eq!(call(&svc, device("chart.svg", "SN1", &[("date", "01.05.2024")])).await.0, 400);
}

#[tokio::test]
async fn a_follower_token_is_stored_by_its_hash_until_it_is_revoked() {
    let svc = service(day("SN1"));
    let create = request(
        "POST /devices/{device_sn}/follow-tokens",
        "/devices/SN1/follow-tokens",
        json!({"device_sn": "SN1"}),
        &[],
        json!({}),
    );
    let (status, created) = call(&svc, create).await;
    assert_eq!(status, 201, "{created}");
    let token = created["token"].as_str().unwrap().to_string();
    let id = created["token_id"].as_str().unwrap().to_string();

    // What the Nightscout function looks a follower up by: the hash of the token's SHA-1.
    use cgm_domain::follow::{secret_hash, sha1_hex};
    use cgm_domain::store::reads::ReadStore;
    let hash = secret_hash(&sha1_hex(&token));
    let stored = svc.store().find_follow_token(&hash).await.unwrap().expect("the token is stored by its hash");
    assert_eq!((stored.token_id.as_str(), stored.device_sn.as_str()), (id.as_str(), "SN1"));

    let revoke = request(
        "DELETE /devices/{device_sn}/follow-tokens/{token_id}",
        &format!("/devices/SN1/follow-tokens/{id}"),
        json!({"device_sn": "SN1", "token_id": id}),
        &[],
        json!({}),
    );
    assert_eq!(call(&svc, revoke).await, (200, json!({"token_id": id, "device_sn": "SN1", "revoked": true})));
    assert!(svc.store().find_follow_token(&hash).await.unwrap().is_none(), "revoked: no longer found");
}

#[tokio::test]
async fn unknown_routes_are_404_and_storage_failures_503() {
    let svc = service(day("SN1"));
    let (status, body) = call(&svc, request("GET /nope", "/nope", json!({}), &[], json!({}))).await;
    assert_eq!((status, body), (404, json!({"status": 404, "message": "route not found"})));
    svc.store().fail.store(true, Ordering::SeqCst);
    let (status, body) = call(&svc, device("summary", "SN1", &[])).await;
    assert_eq!((status, body), (503, json!({"status": 503, "message": "storage unavailable, retry later"})));
}

/// Whatever a stored reading holds (any instant, serial, interval, value, threshold), every
/// read route answers below 500. The store here bypasses the bounds the DynamoDB store
/// applies when reading an item, so the routes' own arithmetic is what is tested.
mod props {
    use super::*;
    use proptest::prelude::*;

    fn any_reading() -> impl Strategy<Value = StoredReading> {
        let at = prop_oneof![
            Just(i64::MIN),
            Just(i64::MAX),
            Just(-1i64),
            DAY0 - 86_400_000..DAY0 + 2 * 86_400_000,
            any::<i64>()
        ];
        let serial = prop_oneof![
            Just(None),
            Just(Some(0u64)),
            Just(Some(u64::MAX)),
            (0u64..600).prop_map(Some),
            any::<u64>().prop_map(Some)
        ];
        let incre = prop_oneof![
            Just(None),
            Just(Some(0u64)),
            Just(Some(1u64 << 59)),
            Just(Some(u64::MAX)),
            (1u64..6).prop_map(Some)
        ];
        let mmol = prop_oneof![0.1f64..30.0, Just(f64::MAX), Just(f64::MIN_POSITIVE), Just(1e300)];
        let threshold =
            prop_oneof![Just(None), Just(Some(f64::MAX)), Just(Some(-f64::MAX)), (2.0f64..12.0).prop_map(Some)];
        (0u32..1_000_000, at, serial, incre, mmol, any::<bool>(), threshold.clone(), threshold).prop_map(
            |(id, at, serial_no, incre_minute, mmol, valid, low, high)| StoredReading {
                test_id: format!("t{id}").into(),
                device_sn: "P".into(),
                measured_at: Timestamp::from_ms(at),
                mmol,
                serial_no,
                status: Some(if valid { "0" } else { "1" }.into()),
                valid,
                incre_minute,
                low,
                high,
            },
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn every_route_answers_below_500(readings in prop::collection::vec(any_reading(), 0..40)) {
            let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().expect("a runtime");
            let svc = service(readings);
            let full = [("from", "0"), ("to", "9223372036854775807")];
            let day = [("from", "2024-04-30T00:00:00Z"), ("to", "2024-05-02T00:00:00Z")];
            let requests = vec![
                device("readings", "P", &[("include_invalid", "true"), ("limit", "5000")]),
                device("readings", "P", &[("format", "csv"), ("include_invalid", "true")]),
                device("readings", "P", &full),
                device("gaps", "P", &day),
                device("gaps", "P", &[("from", "0"), ("to", "7776000000")]),
                device("summary", "P", &day),
                device("chart.svg", "P", &[("date", "2024-05-01")]),
                device("chart.svg", "P", &[("date", "1970-01-01")]),
            ];
            for req in requests {
                let resp = rt.block_on(svc.handle(req));
                prop_assert!(resp.status().as_u16() < 500, "{:?}", String::from_utf8_lossy(resp.body()));
            }
        }
    }
}

#[tokio::test]
async fn summary_and_gaps_read_whole_days_from_rollups_and_give_the_readings_numbers() {
    use cgm_domain::rollup::DayRollup;
    use cgm_domain::store::rollups::RollupStore;
    // Three local days of readings; the middle one is rolled up, the ends are partial. Holes:
    // one every 50 readings, and 475-490 across midnight into the rolled-up day.
    let zone = SourceZone::default();
    let readings: Vec<StoredReading> = (1..=1440u64)
        .filter(|i| i % 50 != 7 && !(475..=490).contains(i))
        .map(|i| {
            let mut r = reading("R", i, 3.0 + (i % 97) as f64 / 10.0, i % 13 != 0);
            r.measured_at = Timestamp::from_ms(DAY0 - 86_400_000 + (i as i64) * MIN3);
            r
        })
        .collect();
    let q = [("from", "2024-04-30T12:00:00+08:00"), ("to", "2024-05-02T12:00:00+08:00")];
    let plain = service(readings.clone());
    let (_, without) = call(&plain, device("summary", "R", &q)).await;
    let (_, gaps_without) = call(&plain, device("gaps", "R", &q)).await;
    // The rolled-up day's readings are left out of this store: only its rollup has them, so
    // equal numbers prove the rollup was read.
    let day = chrono::NaiveDate::from_ymd_opt(2024, 5, 1).unwrap();
    let span = zone.local_day(day).unwrap();
    let rolled = service(readings.iter().filter(|r| !span.contains(r.measured_at)).cloned().collect());
    rolled.rollups.put_rollup(&DayRollup::of_day(&"R".into(), day, &zone, &readings)).await.unwrap();
    // A rollup made in another zone is stale and ignored.
    let berlin: SourceZone = "Europe/Berlin".parse().unwrap();
    let mut stale =
        DayRollup::of_day(&"R".into(), chrono::NaiveDate::from_ymd_opt(2024, 4, 30).unwrap(), &berlin, &readings);
    stale.readings = 1;
    rolled.rollups.put_rollup(&stale).await.unwrap();
    let (status, with) = call(&rolled, device("summary", "R", &q)).await;
    assert_eq!(status, 200, "{with}");
    assert_eq!(with, without, "the same numbers to the last digit");
    assert!(with["readings"].as_u64().unwrap() > 480, "partial days from readings, the whole day from its rollup");
    let (status, gaps_with) = call(&rolled, device("gaps", "R", &q)).await;
    assert_eq!(status, 200, "{gaps_with}");
    assert_eq!(gaps_with, gaps_without);
    let across_midnight =
        gaps_with["gaps"].as_array().unwrap().iter().any(|g| g["first_serial_no"] == 475 && g["last_serial_no"] == 490);
    assert!(across_midnight, "one gap across midnight: {gaps_with}");
    assert!(gaps_with["gap_count"].as_u64().unwrap() > 10, "{gaps_with}");
}

mod sensors {
    use super::*;
    use cgm_domain::alerts::AlertSettings;
    use cgm_domain::session::{SensorReading, Session};
    use cgm_domain::store::sensors::SensorStore;
    use std::collections::BTreeMap;

    fn sensor_reading(sn: &str, customer: &str, i: u64, mmol: f64) -> SensorReading {
        SensorReading {
            reading: {
                let mut r = reading(sn, i, mmol, true);
                r.measured_at = Timestamp::now().minus_ms(60_000 * (10 - i as i64));
                r
            },
            cgm_status: Some("2".into()),
            cgm_day: Some(14),
            customer_name: Some(customer.into()),
            patient_id: Some("PATIENT-CANARY".into()),
            visit_id: Some("VISIT-CANARY".into()),
            received_at: None,
        }
    }

    /// Ward7 with a sensor in urgent low and a quiet one; another hospital's sensor.
    async fn ward(patient_fields: bool) -> Svc {
        let svc = ReadService::new(
            MemoryReadStore::default(),
            MemoryRollupStore::default(),
            MemorySensorStore::default(),
            SourceZone::default(),
            patient_fields,
        );
        for (sn, customer, v) in [("LOW", "Ward7", 2.5), ("OK", "Ward7", 6.0), ("ELSEWHERE", "Ward9", 6.0)] {
            let rs = [sensor_reading(sn, customer, 1, 6.0), sensor_reading(sn, customer, 2, v)];
            let s = Session::apply(None, &rs, &BTreeMap::new(), &AlertSettings::default()).session;
            svc.sensor_store().put_session(&s.unwrap()).await.unwrap();
        }
        svc
    }

    fn get(route: &str, path: &str, params: Value, query: &[(&str, &str)]) -> lambda_http::Request {
        request(&format!("GET {route}"), path, params, query, json!({}))
    }

    #[tokio::test]
    async fn a_wards_sensors_with_their_open_alerts_and_no_patient_field_by_default() {
        let svc = ward(false).await;
        let (status, body) =
            call(&svc, get("/sensors", "/sensors", json!({}), &[("customer", "Ward7"), ("active", "true")])).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["count"], 2);
        let low = body["sensors"].as_array().unwrap().iter().find(|s| s["device_sn"] == "LOW").unwrap();
        assert_eq!(low["open_alerts"][0]["kind"], "urgent_low");
        assert_eq!((low["last"]["mmol"].as_f64(), low["active"].as_bool()), (Some(2.5), Some(true)));
        assert!(!body.to_string().contains("CANARY"), "{body}");
        let (_, all) = call(&svc, get("/sensors", "/sensors", json!({}), &[("active", "true")])).await;
        assert_eq!(all["count"], 3);
        let (_, one) = call(&svc, get("/sensors/{device_sn}", "/sensors/OK", json!({"device_sn": "OK"}), &[])).await;
        assert_eq!(one["device_sn"], "OK");
        let (status, _) =
            call(&svc, get("/sensors/{device_sn}", "/sensors/NONE", json!({"device_sn": "NONE"}), &[])).await;
        assert_eq!(status, 404);
    }

    #[tokio::test]
    async fn filters_are_required_known_and_the_patient_route_follows_its_setting() {
        let svc = ward(false).await;
        let (status, body) = call(&svc, get("/sensors", "/sensors", json!({}), &[])).await;
        assert_eq!((status, body["message"].as_str().unwrap().contains("customer")), (400, true), "{body}");
        let (status, body) = call(&svc, get("/sensors", "/sensors", json!({}), &[("ward", "7")])).await;
        assert_eq!(status, 400);
        assert!(body["message"].as_str().unwrap().contains("unknown query parameter \"ward\""), "{body}");
        let (status, body) = call(&svc, get("/alerts", "/alerts", json!({}), &[("state", "resolved")])).await;
        assert_eq!(status, 400, "{body}");
        let patient = || {
            get(
                "/patients/{patient_id}/sensors",
                "/patients/PATIENT-CANARY/sensors",
                json!({"patient_id": "PATIENT-CANARY"}),
                &[],
            )
        };
        let (status, body) = call(&svc, patient()).await;
        assert_eq!(status, 403, "{body}");
        assert!(body["message"].as_str().unwrap().contains("ReadPatientFields"));
        let svc = ward(true).await;
        let (status, body) = call(&svc, patient()).await;
        assert_eq!((status, body["count"].as_u64()), (200, Some(3)), "{body}");
        assert_eq!(body["sensors"][0]["patient_id"], "PATIENT-CANARY");
    }

    #[tokio::test]
    async fn an_open_alert_is_listed_and_acknowledged_once() {
        let svc = ward(false).await;
        let (status, body) =
            call(&svc, get("/alerts", "/alerts", json!({}), &[("customer", "Ward7"), ("state", "open")])).await;
        assert_eq!((status, body["count"].as_u64()), (200, Some(1)), "{body}");
        let id = body["alerts"][0]["alert_id"].as_str().unwrap().to_string();
        let ack = || {
            request(
                "POST /alerts/{alert_id}/acknowledge",
                &format!("/alerts/{id}/acknowledge"),
                json!({"alert_id": id}),
                &[],
                json!({}),
            )
        };
        let (status, first) = call(&svc, ack()).await;
        assert_eq!(status, 200, "{first}");
        assert!(first["acknowledged_at"].is_i64());
        let (_, second) = call(&svc, ack()).await;
        assert_eq!(second["acknowledged_at"], first["acknowledged_at"], "acknowledging twice is once");
        let unknown = request(
            "POST /alerts/{alert_id}/acknowledge",
            "/alerts/LOW~high~1/acknowledge",
            json!({"alert_id": "LOW~high~1"}),
            &[],
            json!({}),
        );
        assert_eq!(call(&svc, unknown).await.0, 404);
    }
}

mod agp {
    use super::*;
    use cgm_domain::rollup::DayRollup;
    use cgm_domain::store::rollups::RollupStore;

    /// 14 local days from 2024-05-01 of 3-minute readings, the first five warm-up; the value
    /// depends on the day and the time of day.
    fn fortnight() -> Vec<StoredReading> {
        (1..=14 * 480u64)
            .map(|i| {
                let mut r = reading("A", i, 4.0 + ((i * 7) % 83) as f64 / 10.0, i > 5);
                r.measured_at = Timestamp::from_ms(DAY0 + (i as i64 - 1) * MIN3);
                r
            })
            .collect()
    }

    fn by_hand(mut v: Vec<f64>, p: f64) -> f64 {
        v.sort_by(f64::total_cmp);
        let h = (v.len() - 1) as f64 * p / 100.0;
        let lo = h.floor() as usize;
        v[lo] + (h - h.floor()) * (v.get(lo + 1).copied().unwrap_or(v[lo]) - v[lo])
    }

    #[tokio::test]
    async fn agp_json_over_fourteen_days_from_rollups_or_readings_alike() {
        let readings = fortnight();
        let q = [("from", "2024-05-01"), ("to", "2024-05-14")];
        let plain = service(readings.clone());
        let (status, body) = call(&plain, device("agp.json", "A", &q)).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["days"], 14.0);
        assert_eq!(body["readings"], 14 * 480 - 5);
        assert_eq!(body["invalid_readings_excluded"], 5);
        assert_eq!((body["sufficient"].as_bool(), body["notice"].as_str()), (Some(true), None));
        assert_eq!(body["profile"].as_array().unwrap().len(), 96);
        assert_eq!(body["daily"].as_array().unwrap().len(), 14);
        assert_eq!(body["targets"].as_array().unwrap().len(), 6);

        // The 08:00-08:15 bin, by hand: every valid reading whose local time falls in it.
        let zone = SourceZone::default();
        let in_bin: Vec<f64> = readings
            .iter()
            .filter(|r| r.valid && cgm_domain::rollup::bin_of(&zone, r.measured_at) / 3 == 32)
            .map(|r| r.mmol)
            .collect();
        let bin = &body["profile"][32];
        assert_eq!(bin["start"], "08:00");
        assert_eq!(bin["readings"], in_bin.len());
        for (name, p) in [("p5", 5.0), ("p25", 25.0), ("p50", 50.0), ("p75", 75.0), ("p95", 95.0)] {
            let want = cgm_domain::metrics::round_to(by_hand(in_bin.clone(), p), 2);
            assert_eq!(bin["raw_percentiles_mmol"][name].as_f64(), Some(want), "{name}");
        }
        for b in body["profile"].as_array().unwrap() {
            let s = &b["percentiles_mmol"];
            let v: Vec<f64> = ["p5", "p25", "p50", "p75", "p95"].iter().map(|k| s[k].as_f64().unwrap()).collect();
            assert!(v.windows(2).all(|w| w[0] <= w[1]), "{b}");
        }

        // With every day rolled up and no readings left, the same page.
        let rolled = service(Vec::new());
        for d in 0..14 {
            let day = chrono::NaiveDate::from_ymd_opt(2024, 5, 1).unwrap() + chrono::Duration::days(d);
            rolled.rollups.put_rollup(&DayRollup::of_day(&"A".into(), day, &zone, &readings)).await.unwrap();
        }
        let (_, from_rollups) = call(&rolled, device("agp.json", "A", &q)).await;
        assert_eq!(from_rollups, body, "rollups give the readings' numbers");
    }

    fn points(attr: &str) -> Vec<(f64, f64)> {
        attr.split_whitespace()
            .map(|p| {
                let (x, y) = p.split_once(',').unwrap();
                (x.parse().unwrap(), y.parse().unwrap())
            })
            .collect()
    }

    /// The page's parts, and the bands in order in every bin as drawn: SVG's y grows
    /// downwards, so 95 % is above 75 %, above the median, above 25 %, above 5 %.
    fn check_page(svg: &str, days: usize) -> bool {
        let doc = roxmltree::Document::parse(svg).expect("well-formed XML");
        let all = |c: &str| -> Vec<roxmltree::Node<'_, '_>> {
            doc.descendants().filter(|n| n.attribute("class").is_some_and(|a| a.split(' ').any(|x| x == c))).collect()
        };
        for part in ["statistics", "time-in-ranges", "profile", "daily"] {
            assert_eq!(all(part).len(), 1, "{part}");
        }
        assert_eq!(all("tir-segment").len(), 5);
        assert_eq!(all("day-panel").len(), days);
        let (outer, inner, median) = (all("band-5-95"), all("band-25-75"), all("median"));
        assert_eq!((outer.len(), inner.len()), (median.len(), median.len()));
        for ((o, i), m) in outer.iter().zip(&inner).zip(&median) {
            let (o, i, m) = (
                points(o.attribute("points").unwrap()),
                points(i.attribute("points").unwrap()),
                points(m.attribute("points").unwrap()),
            );
            let n = m.len();
            assert_eq!((o.len(), i.len()), (2 * n, 2 * n));
            for k in 0..n {
                let (p95, p5) = (o[k].1, o[2 * n - 1 - k].1);
                let (p75, p25) = (i[k].1, i[2 * n - 1 - k].1);
                assert!(
                    p95 <= p75 && p75 <= m[k].1 && m[k].1 <= p25 && p25 <= p5,
                    "bin {k}: {p95} {p75} {} {p25} {p5}",
                    m[k].1
                );
                assert!((o[k].0 - m[k].0).abs() < 1e-9 && (i[2 * n - 1 - k].0 - m[k].0).abs() < 1e-9);
            }
        }
        !all("data-notice").is_empty()
    }

    #[tokio::test]
    async fn agp_svg_has_every_panel_in_order_and_the_notice_exactly_when_data_fall_short() {
        let svc = service(fortnight());
        let q = [("from", "2024-05-01"), ("to", "2024-05-14")];
        let resp = svc.handle(device("agp.svg", "A", &q)).await;
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["content-type"], "image/svg+xml");
        let svg = String::from_utf8(resp.body().to_vec()).unwrap();
        assert!(!check_page(&svg, 14), "14 full days: no notice");
        let order: Vec<usize> =
            ["class=\"statistics\"", "class=\"time-in-ranges\"", "class=\"profile\"", "class=\"daily\""]
                .iter()
                .map(|c| svg.find(c).unwrap())
                .collect();
        assert!(order.windows(2).all(|w| w[0] < w[1]), "the consensus order");
        // Three days of data in the same fortnight: the notice, on the page.
        let short = service(fortnight().into_iter().take(3 * 480).collect());
        let resp = short.handle(device("agp.svg", "A", &q)).await;
        let svg = String::from_utf8(resp.body().to_vec()).unwrap();
        assert!(check_page(&svg, 14), "too little data: the notice is shown");
        assert!(svg.contains("70 %"));
    }

    #[tokio::test]
    async fn too_little_data_is_said_on_the_page_and_too_long_a_range_refused() {
        let readings: Vec<StoredReading> = fortnight().into_iter().take(3 * 480).collect();
        let svc = service(readings);
        let (status, body) = call(&svc, device("agp.json", "A", &[("from", "2024-05-01"), ("to", "2024-05-14")])).await;
        assert_eq!(status, 200);
        assert_eq!(body["sufficient"], false);
        assert!(body["notice"].as_str().unwrap().contains("70 %"), "{body}");
        let days = body["daily"].as_array().unwrap();
        assert!(days[3]["points"].as_array().unwrap().is_empty(), "a day without data stays empty");
        let (_, short) = call(&svc, device("agp.json", "A", &[("from", "2024-05-01"), ("to", "2024-05-03")])).await;
        assert!(short["notice"].as_str().unwrap().contains("Only 3 days"), "{short}");
        let (status, body) = call(&svc, device("agp.json", "A", &[("from", "2024-01-01"), ("to", "2024-05-01")])).await;
        assert_eq!(status, 400);
        assert!(body["message"].as_str().unwrap().contains("90 days"), "{body}");
        // By default the last 14 full local days: none here, so nothing, and said so.
        let (status, body) = call(&svc, device("agp.json", "A", &[])).await;
        assert_eq!((status, body["readings"].as_u64(), body["days"].as_f64()), (200, Some(0), Some(14.0)));
        assert_eq!(body["sufficient"], false);
    }
}
