//! Route tests against the in-memory store: what followers send, through the same `handle`
//! the Lambda calls.

use crate::NightscoutService;
use cgm_domain::follow;
use cgm_domain::store::reads::memory::MemoryReadStore;
use cgm_domain::store::reads::{FollowToken, ReadStore, StoredReading};
use cgm_domain::time::{SourceZone, Timestamp};
use cgm_edge::HttpService;
use serde_json::{Value, json};

/// 2024-05-01T00:00:00+08:00.
const DAY0: i64 = 1_714_492_800_000;
const MIN3: i64 = 180_000;
const TOKEN: &str = "5ef559d1c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0fbe84c";

fn reading(i: u64, mmol: f64) -> StoredReading {
    StoredReading {
        test_id: format!("SN1-{i:04}").into(),
        device_sn: "SN1".into(),
        measured_at: Timestamp::from_ms(DAY0 + (i as i64 - 1) * MIN3),
        mmol,
        serial_no: Some(i),
        status: Some("0".into()),
        valid: true,
        incre_minute: Some(3),
        low: Some(4.2),
        high: Some(9.0),
    }
}

/// 2,000 readings (4 days) of SN1, and a live token for it.
async fn service() -> NightscoutService<MemoryReadStore> {
    let readings = (1..=2_000).map(|i| reading(i, 4.0 + (i % 60) as f64 / 10.0)).collect();
    let store = MemoryReadStore::with_readings(readings);
    let now = Timestamp::now();
    store
        .put_follow_token(&FollowToken {
            token_id: "tid1".into(),
            device_sn: "SN1".into(),
            secret_hash: follow::secret_hash(&follow::sha1_hex(TOKEN)),
            label: None,
            created_at: now,
            expires_at: now.plus_ms(86_400_000),
            last_used_at: None,
        })
        .await
        .unwrap();
    NightscoutService::new(store, SourceZone::default(), false)
}

/// A real API Gateway HTTP API event for `GET <path>?<query>` (the query as sent, raw).
fn get(path: &str, query: &str, headers: Value) -> lambda_http::Request {
    let route = match path {
        p if p.starts_with("/socket.io") => "/socket.io/{proxy+}",
        "/api/v3/food" => "/api/v3/{proxy+}",
        p => p,
    };
    let mut qmap = serde_json::Map::new();
    for kv in query.split('&').filter(|kv| !kv.is_empty()) {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        qmap.insert(k.to_string(), json!(v));
    }
    let event = json!({
        "version": "2.0", "routeKey": format!("GET {route}"), "rawPath": path, "rawQueryString": query,
        "headers": headers, "queryStringParameters": qmap, "pathParameters": {},
        "requestContext": {"accountId": "1", "apiId": "a", "domainName": "d", "domainPrefix": "d",
            "http": {"method": "GET", "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "t"},
            "requestId": "r", "routeKey": format!("GET {route}"), "stage": "$default", "timeEpoch": 1},
        "isBase64Encoded": false,
    });
    lambda_http::request::from_str(&event.to_string()).unwrap()
}

async fn call(svc: &NightscoutService<MemoryReadStore>, req: lambda_http::Request) -> (u16, Value) {
    let resp = svc.handle(req).await;
    let status = resp.status().as_u16();
    let body: &[u8] = resp.body();
    (status, serde_json::from_slice(body).unwrap_or(Value::Null))
}

#[tokio::test]
async fn every_way_nightscout_accepts_a_token_opens_the_feed_and_nothing_else_does() {
    let svc = service().await;
    let sha1 = follow::sha1_hex(TOKEN);
    let ok = [
        (format!("token={TOKEN}"), json!({})),
        (format!("secret={sha1}"), json!({})),
        (format!("secret={TOKEN}"), json!({})),
        (String::new(), json!({"api-secret": sha1})),
        (String::new(), json!({"api-secret": sha1.to_uppercase()})),
        (String::new(), json!({"api-secret": TOKEN})),
        (String::new(), json!({"api-secret": format!("token={TOKEN}")})),
        // ?secret= is looked at before the header, as Nightscout does.
        (format!("secret={sha1}"), json!({"api-secret": "0".repeat(40)})),
    ];
    for (q, h) in ok {
        let (status, body) = call(&svc, get("/api/v1/entries.json", &q, h.clone())).await;
        assert_eq!(status, 200, "{q} {h}: {body}");
        assert_eq!(body.as_array().unwrap().len(), 10, "count defaults to 10");
    }
    let unauthorized = json!({"status": 401, "message": "Unauthorized", "description": "Invalid/Missing"});
    for (q, h) in [
        (String::new(), json!({})),
        (format!("token={}", "0".repeat(64)), json!({})),
        ("token=not-a-token".to_string(), json!({})),
        (String::new(), json!({"api-secret": follow::sha1_hex("guess")})),
    ] {
        assert_eq!(
            call(&svc, get("/api/v1/entries.json", &q, h.clone())).await,
            (401, unauthorized.clone()),
            "{q} {h}"
        );
    }
}

#[tokio::test]
async fn entries_in_every_spelling_newest_first_filtered_as_asked() {
    let svc = service().await;
    let t = format!("token={TOKEN}");
    for path in ["/api/v1/entries", "/api/v1/entries.json", "/api/v1/entries/sgv", "/api/v1/entries/sgv.json"] {
        let (status, body) = call(&svc, get(path, &format!("{t}&count=3"), json!({}))).await;
        assert_eq!(status, 200, "{path}");
        let ids: Vec<&str> = body.as_array().unwrap().iter().map(|e| e["_id"].as_str().unwrap()).collect();
        assert_eq!(ids, ["SN1-2000", "SN1-1999", "SN1-1998"], "{path}");
    }
    let (_, current) = call(&svc, get("/api/v1/entries/current.json", &t, json!({}))).await;
    assert_eq!(current.as_array().unwrap().len(), 1);
    assert_eq!(current[0]["_id"], "SN1-2000");

    // Above the old 1,000 cap, as xDrip+ (2880) and nightguard (1440) ask: served.
    let (_, all) = call(&svc, get("/api/v1/entries.json", &format!("{t}&count=2880&rr=17"), json!({}))).await;
    assert_eq!(all.as_array().unwrap().len(), 2_000);
    assert!(all[0].get("delta").is_some() && all[1999].get("delta").is_none(), "no delta for the first reading");

    // find[date] (fractional, as nightguard sends), find[dateString], find[type], find[sgv]
    let at = |i: i64| DAY0 + (i - 1) * MIN3;
    let q = format!("{t}&count=100&find[date][$gt]={}.5&find[date][$lte]={}", at(1990), at(1995));
    let (_, e) = call(&svc, get("/api/v1/entries.json", &q, json!({}))).await;
    let ids: Vec<&str> = e.as_array().unwrap().iter().map(|e| e["_id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["SN1-1995", "SN1-1994", "SN1-1993", "SN1-1992", "SN1-1991"]);
    assert!(e[4].get("delta").is_some(), "the oldest entry's delta uses the reading before the range");
    let iso = chrono::DateTime::from_timestamp_millis(at(1998)).unwrap().to_rfc3339();
    let q = format!("{t}&find[dateString][$gte]={}&find[type][$ne]=cal", iso.replace('+', "%2B"));
    let (_, e) = call(&svc, get("/api/v1/entries.json", &q, json!({}))).await;
    assert_eq!(e.as_array().unwrap().len(), 3);
    let (_, none) = call(&svc, get("/api/v1/entries.json", &format!("{t}&find[type]=mbg"), json!({}))).await;
    assert_eq!(none, json!([]));
    let (_, high) =
        call(&svc, get("/api/v1/entries.json", &format!("{t}&count=0&find[sgv][$gte]=170"), json!({}))).await;
    let high = high.as_array().unwrap();
    assert!(!high.is_empty() && high.iter().all(|e| e["sgv"].as_i64().unwrap() >= 170));

    // What cannot be applied is a 400 naming it, never ignored.
    for q in ["find[noise][$gte]=1", "find[date][$regex]=1", "sort=date", "count=ten"] {
        let (status, body) = call(&svc, get("/api/v1/entries.json", &format!("{t}&{q}"), json!({}))).await;
        assert_eq!(status, 400, "{q}: {body}");
        assert!(!body["message"].as_str().unwrap().contains(TOKEN));
    }
}

#[tokio::test]
async fn if_modified_since_is_answered_304_when_nothing_is_newer() {
    let svc = service().await;
    let t = format!("token={TOKEN}");
    let resp = svc.handle(get("/api/v1/entries.json", &t, json!({}))).await;
    let last = resp.headers()["last-modified"].to_str().unwrap().to_string();
    assert_eq!(last, "Sat, 04 May 2024 19:57:00 GMT", "the newest entry's time");
    let again = svc.handle(get("/api/v1/entries.json", &t, json!({"if-modified-since": last}))).await;
    assert_eq!(again.status().as_u16(), 304);
    assert!(again.body().is_empty());
    let older = json!({"if-modified-since": "Sat, 04 May 2024 19:50:00 GMT"});
    assert_eq!(svc.handle(get("/api/v1/entries.json", &t, older)).await.status().as_u16(), 200);
}

#[tokio::test]
async fn status_and_the_calls_around_the_entries() {
    let svc = service().await;
    let (status, open) = call(&svc, get("/api/v1/status.json", "", json!({}))).await;
    assert_eq!(status, 200);
    assert_eq!((open["status"].as_str(), open["apiEnabled"].as_bool()), (Some("ok"), Some(true)));
    assert_eq!(open["settings"]["units"], "mg/dl");
    assert!(open["serverTimeEpoch"].as_i64().unwrap() > DAY0 && open["authorized"].is_null());
    assert_eq!(open["settings"]["thresholds"]["bgTargetBottom"], 70);
    let (_, mine) = call(&svc, get("/api/v1/status", &format!("token={TOKEN}"), json!({}))).await;
    assert_eq!(mine["authorized"]["sub"], "tid1");
    // The device's own low and high: 4.2 and 9.0 mmol/L.
    assert_eq!(
        (
            mine["settings"]["thresholds"]["bgTargetBottom"].as_i64(),
            mine["settings"]["thresholds"]["bgTargetTop"].as_i64()
        ),
        (Some(76), Some(162))
    );
    assert_eq!(call(&svc, get("/api/v1/status.json", &format!("token={}", "0".repeat(64)), json!({}))).await.0, 401);

    let t = format!("token={TOKEN}");
    for path in [
        "/api/v1/treatments",
        "/api/v1/treatments.json",
        "/api/v1/devicestatus.json",
        "/api/v1/devicestatus",
        "/api/v1/profile.json",
        "/api/v1/profiles.json",
        "/api/v1/profile",
    ] {
        let q = format!("{t}&count=1&find[created_at][$gte]=2024-05-01&find[eventType]=Note");
        assert_eq!(call(&svc, get(path, &q, json!({}))).await, (200, json!([])), "{path}");
        assert_eq!(call(&svc, get(path, "", json!({}))).await.0, 401, "{path} needs the token too");
    }
    let (status, profile) = call(&svc, get("/api/v1/profile/current.json", &t, json!({}))).await;
    assert_eq!(status, 200);
    assert_eq!(profile["store"]["Default"]["timezone"], "Etc/GMT-8");
    assert_eq!(profile["store"]["Default"]["target_low"][0]["value"], 70);

    let (status, body) = call(&svc, get("/socket.io/", "EIO=4&transport=polling", json!({}))).await;
    assert_eq!(status, 501);
    assert!(body["message"].as_str().unwrap().contains("Socket.IO is not served"), "{body}");
}

#[tokio::test]
async fn properties_as_nightguard_reads_them() {
    let svc = service().await;
    let path_req = |path: &str, names: Option<&str>| {
        let route = if names.is_some() { "/api/v2/properties/{names}" } else { "/api/v2/properties" };
        let e = json!({
            "version": "2.0", "routeKey": format!("GET {route}"), "rawPath": path, "rawQueryString": format!("token={TOKEN}"),
            "headers": {}, "queryStringParameters": {"token": TOKEN},
            "pathParameters": names.map_or(json!({}), |n| json!({"names": n})),
            "requestContext": {"accountId": "1", "apiId": "a", "domainName": "d", "domainPrefix": "d",
                "http": {"method": "GET", "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "t"},
                "requestId": "r", "routeKey": format!("GET {route}"), "stage": "$default", "timeEpoch": 1},
            "isBase64Encoded": false,
        });
        lambda_http::request::from_str(&e.to_string()).unwrap()
    };
    let (status, p) = call(&svc, path_req("/api/v2/properties", None)).await;
    assert_eq!(status, 200, "{p}");
    // nightguard reads bgnow.sgvs[0].direction, delta.display and delta.mgdl.
    assert!(p["bgnow"]["sgvs"][0]["direction"].is_string(), "{p}");
    assert!(p["delta"]["display"].is_string() && p["delta"]["mgdl"].is_i64(), "{p}");
    assert!(p.get("iob").is_none() && p.get("upbat").is_none());
    let (_, some) = call(&svc, path_req("/api/v2/properties/bgnow,iob", Some("bgnow,iob"))).await;
    assert_eq!(some.as_object().unwrap().keys().collect::<Vec<_>>(), ["bgnow"]);
}

fn auth_request(token: &str) -> lambda_http::Request {
    let route = "/api/v2/authorization/request/{token}";
    let path = format!("/api/v2/authorization/request/{token}");
    let e = json!({
        "version": "2.0", "routeKey": format!("GET {route}"), "rawPath": path, "rawQueryString": "",
        "headers": {}, "queryStringParameters": {}, "pathParameters": {"token": token},
        "requestContext": {"accountId": "1", "apiId": "a", "domainName": "d", "domainPrefix": "d",
            "http": {"method": "GET", "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "t"},
            "requestId": "r", "routeKey": format!("GET {route}"), "stage": "$default", "timeEpoch": 1},
        "isBase64Encoded": false,
    });
    lambda_http::request::from_str(&e.to_string()).unwrap()
}

#[tokio::test]
async fn a_jwt_from_the_authorization_request_opens_the_feed_until_the_token_is_revoked() {
    let svc = service().await.with_jwt(crate::jwt::JwtKeys::new("a-test-signing-key-of-at-least-32-chars", 8).unwrap());
    let (status, auth) = call(&svc, auth_request(TOKEN)).await;
    assert_eq!(status, 200, "{auth}");
    assert_eq!(auth["sub"], "tid1");
    assert_eq!(auth["permissionGroups"][0][0], "api:entries:read");
    assert_eq!(auth["exp"].as_i64().unwrap() - auth["iat"].as_i64().unwrap(), 8 * 3600);
    let jwt = auth["token"].as_str().unwrap().to_string();
    assert!(!jwt.contains(TOKEN), "the JWT does not carry the follower token");
    let bearer = json!({"authorization": format!("Bearer {jwt}")});
    let (status, e) = call(&svc, get("/api/v1/entries.json", "count=2", bearer.clone())).await;
    assert_eq!((status, e.as_array().map(Vec::len)), (200, Some(2)));
    let (_, st) = call(&svc, get("/api/v1/status.json", "", bearer.clone())).await;
    assert_eq!(st["authorized"]["sub"], "tid1");
    assert!(st["authorized"]["token"].is_string(), "status hands out a JWT as Nightscout's does");

    let forged = json!({"authorization": format!("Bearer {}x", jwt)});
    assert_eq!(call(&svc, get("/api/v1/entries.json", "", forged)).await.0, 401);
    assert_eq!(call(&svc, auth_request(&"0".repeat(64))).await.0, 401);

    // Revoking the follower token ends its JWTs at once.
    assert!(svc.store().delete_follow_token(&"SN1".into(), "tid1").await.unwrap());
    assert_eq!(call(&svc, get("/api/v1/entries.json", "", bearer)).await.0, 401);

    // Without a signing key the route says so and nothing is issued.
    let plain = service().await;
    let (status, body) = call(&plain, auth_request(TOKEN)).await;
    assert_eq!(status, 501);
    assert!(body["message"].as_str().unwrap().contains("JWTs are off"), "{body}");
}

/// A JWT for TOKEN from a service that signs them, and the Bearer header carrying it.
async fn jwt_service() -> (NightscoutService<MemoryReadStore>, Value) {
    let svc = service().await.with_jwt(crate::jwt::JwtKeys::new("a-test-signing-key-of-at-least-32-chars", 8).unwrap());
    let (_, auth) = call(&svc, auth_request(TOKEN)).await;
    let bearer = json!({"authorization": format!("Bearer {}", auth["token"].as_str().unwrap())});
    (svc, bearer)
}

#[tokio::test]
async fn v3_entries_as_xdrips_v3_follower_asks_for_them() {
    let (svc, bearer) = jwt_service().await;
    let last = DAY0 + 1_999 * MIN3;
    // The first run: date$gt=0, newest first, 288.
    let q = "sort$desc=date&type=sgv&fields=date,dateString,sysTime,sgv,unfiltered,filtered,noise,identifier&date$gt=0&limit=288";
    let (status, body) = call(&svc, get("/api/v3/entries", q, bearer.clone())).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], 200);
    let result = body["result"].as_array().unwrap();
    assert_eq!(result.len(), 288);
    assert_eq!(result[0]["date"], last);
    assert_eq!(result[0]["identifier"], "SN1-2000");
    assert!(result.windows(2).all(|w| w[0]["date"].as_i64() > w[1]["date"].as_i64()));
    let keys: Vec<&String> = result[0].as_object().unwrap().keys().collect();
    assert_eq!(keys.len(), 6, "only the fields asked for that exist: {keys:?}");
    // A later run: only what is newer.
    let q = format!("sort$desc=date&type=sgv&date$gt={}&limit=288", last - 2 * MIN3);
    let (_, body) = call(&svc, get("/api/v3/entries", &q, bearer.clone())).await;
    let result = body["result"].as_array().unwrap();
    assert_eq!(result.len(), 2);
    let doc = &result[1];
    for f in ["identifier", "srvModified", "srvCreated", "sgv", "direction", "delta", "utcOffset", "device"] {
        assert!(doc.get(f).is_some(), "{f} in {doc}");
    }
    assert!(doc.get("_id").is_none(), "v3 names a document by identifier");
    // No sort is ascending; skip passes over.
    let (_, body) = call(&svc, get("/api/v3/entries", "limit=2&skip=1", bearer.clone())).await;
    let dates: Vec<i64> = body["result"].as_array().unwrap().iter().map(|d| d["date"].as_i64().unwrap()).collect();
    assert_eq!(dates, vec![DAY0 + MIN3, DAY0 + 2 * MIN3]);
    // Treatments and device status: empty, for xDrip+'s own queries.
    for (path, q) in [
        ("/api/v3/treatments", "sort$desc=date&fields=identifier,eventType,created_at&date$gt=0&limit=100"),
        ("/api/v3/devicestatus", "sort$desc=date&limit=1&fields=uploaderBattery,isCharging,pump,date"),
    ] {
        let (status, body) = call(&svc, get(path, q, bearer.clone())).await;
        assert_eq!((status, body), (200, json!({"status": 200, "result": []})), "{path}");
    }
}

#[tokio::test]
async fn v3_refuses_what_nightscouts_v3_refuses_and_what_the_feed_cannot_apply() {
    let (svc, bearer) = jwt_service().await;
    for (q, says) in [
        ("limit=1001", "limit out of tolerance"),
        ("sort=date&sort$desc=date", "cannot be combined"),
        ("date$between=1", "Unsupported filter operator"),
        ("noise=1", "noise"),
    ] {
        let (status, body) = call(&svc, get("/api/v3/entries", q, bearer.clone())).await;
        assert_eq!(status, 400, "{q}: {body}");
        assert!(body["message"].as_str().unwrap().contains(says), "{q}: {body}");
    }
    // A Bearer JWT only: the follower token itself, in any of v1's places, is not one.
    let (status, body) = call(&svc, get("/api/v3/entries", &format!("token={TOKEN}"), json!({}))).await;
    assert_eq!((status, body), (401, json!({"status": 401, "message": "Missing or bad access token or JWT"})));
    let raw = json!({"authorization": format!("Bearer {TOKEN}")});
    let (status, body) = call(&svc, get("/api/v3/entries", "", raw)).await;
    assert_eq!((status, body["message"].as_str()), (401, Some("Bad access token or JWT")));
    // Version is open; status needs the JWT and says what it grants.
    let (status, v) = call(&svc, get("/api/v3/version", "", json!({}))).await;
    assert_eq!(status, 200);
    assert_eq!(v["result"]["apiVersion"], crate::v3::API_VERSION);
    assert!(v["result"]["srvDate"].as_i64().unwrap() > DAY0);
    assert_eq!(call(&svc, get("/api/v3/status", "", json!({}))).await.0, 401);
    let (status, s) = call(&svc, get("/api/v3/status", "", bearer.clone())).await;
    assert_eq!(status, 200);
    assert_eq!(s["result"]["apiPermissions"]["entries"], "r");
    // Another collection or operation: Nightscout's 404.
    let (status, body) = call(&svc, get("/api/v3/food", "", bearer.clone())).await;
    assert_eq!((status, body), (404, json!({"status": 404, "message": "Bad operation or collection"})));
    // Revocation ends v3 as it ends v1.
    assert!(svc.store().delete_follow_token(&"SN1".into(), "tid1").await.unwrap());
    assert_eq!(call(&svc, get("/api/v3/entries", "", bearer)).await.0, 401);
    // Without a signing key v3 says why it cannot be used.
    let (status, body) =
        call(&service().await, get("/api/v3/entries", "", json!({"authorization": "Bearer x.y.z"}))).await;
    assert_eq!(status, 501);
    assert!(body["message"].as_str().unwrap().contains("JWTs are off"), "{body}");
}
