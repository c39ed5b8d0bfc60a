//! Real Nightscout clients, run unchanged against the local stack (the handlers `make dev`
//! serves, on loopback HTTP): py-nightscout from PyPI (`tools/install.sh sam` puts it in
//! `.tools/venv`), through `tests/clients/py_nightscout_follow.py`.

use cgm_tests::{Stack, seed_with, serve_locally};
use serde_json::{Value, json};

const MIN: i64 = 60_000;

/// 20 readings of `sn` 3 minutes apart, the newest `5.0 + 19 × 0.1` = 6.9 mmol/L.
async fn push_series(http: &reqwest::Client, base: &str, sn: &str, last_at: i64) {
    for i in 0..20u64 {
        let at = last_at - (19 - i as i64) * 3 * MIN;
        let local = chrono::DateTime::from_timestamp_millis(at).unwrap() + chrono::Duration::hours(8);
        let body = seed_with(json!({
            "testId": format!("{sn}-{i:02}"), "deviceSn": sn, "serialNo": i + 1, "status": "0",
            "testTime": local.format("%Y-%m-%d %H:%M:%S").to_string(),
            "testResult": format!("{:.1}", 5.0 + i as f64 / 10.0), "increMinute": 3,
        }));
        let r = http.post(format!("{base}/sinocare/cgm")).body(body).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 200);
    }
}

async fn follower_token(http: &reqwest::Client, base: &str, sn: &str) -> String {
    let r = http.post(format!("{base}/devices/{sn}/follow-tokens")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 201);
    r.json::<Value>().await.unwrap()["token"].as_str().unwrap().to_string()
}

fn python() -> std::path::PathBuf {
    let p = cgm_local::repo_root().join(".tools/venv/bin/python");
    assert!(
        p.is_file(),
        "{} is missing: `tools/install.sh sam` makes the venv with py-nightscout (make test does)",
        p.display()
    );
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn py_nightscout_reads_entries_status_treatments_profiles_and_device_status() {
    let (f, token, last_at) = follower_stack("SN-PYNS").await;
    let base = f.base;

    let script = cgm_local::repo_root().join("tests/clients/py_nightscout_follow.py");
    let out = tokio::process::Command::new(python()).arg(&script).arg(&base).arg(&token).output().await.unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "py-nightscout failed:\n{stderr}{stdout}");
    let got: Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"));

    for form in ["token_form", "sha1_form"] {
        let f = &got[form];
        assert_eq!(f["count"], 10, "{form}: the default count: {got}");
        // 6.9 mmol/L × 18.016 = 124.3 → 124 mg/dL, 6.9 back in the library's mmol/L.
        assert_eq!((f["first"]["sgv"].as_i64(), f["first"]["sgv_mmol"].as_f64()), (Some(124), Some(6.9)), "{form}");
        // +0.1 mmol/L in 3 minutes: 0.6 mg/dL a minute, 3.0 over 5: Flat.
        assert_eq!(f["first"]["direction"], "Flat", "{form}");
        assert_eq!(f["first"]["delta"].as_f64(), Some(3.003), "{form}");
        assert_eq!(f["first"]["delta_mmol"].as_f64(), Some(0.2), "{form}");
        let date = chrono::DateTime::parse_from_rfc3339(f["first"]["date"].as_str().unwrap()).unwrap();
        assert_eq!(date.timestamp_millis(), last_at, "{form}: the newest reading's instant");
    }
    assert_eq!(got["status"], json!({"status": "ok", "name": "cgm-bridge", "apiEnabled": true, "units": "mg/dl"}));
    assert_eq!(
        (got["treatments"].as_i64(), got["profiles"].as_i64(), got["devicestatus"].as_i64()),
        (Some(0), Some(0), Some(0))
    );
}

/// `find[a][$b]` as clients put it in a URL, percent-encoded.
fn find(field: &str, op: Option<&str>, value: &str) -> String {
    let key = match op {
        Some(op) => format!("find[{field}][{op}]"),
        None => format!("find[{field}]"),
    };
    let enc =
        |s: &str| s.replace('[', "%5B").replace(']', "%5D").replace('$', "%24").replace('+', "%2B").replace(':', "%3A");
    format!("{}={}", enc(&key), enc(value))
}

struct Follower {
    http: reqwest::Client,
    base: String,
}

impl Follower {
    async fn get(&self, path_and_query: &str, headers: &[(&str, &str)]) -> (u16, Value) {
        let mut req = self.http.get(format!("{}{path_and_query}", self.base));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json::<Value>().await.unwrap_or(Value::Null))
    }
}

async fn follower_stack(sn: &str) -> (Follower, String, i64) {
    let stack = Stack::new().await;
    let base = serve_locally(&stack.config(&[])).await;
    let http = reqwest::Client::new();
    let last_at = chrono::Utc::now().timestamp_millis() / 1000 * 1000 - 2 * MIN;
    push_series(&http, &base, sn, last_at).await;
    let token = follower_token(&http, &base, sn).await;
    drop(stack); // its tables stay: each test's are its own
    (Follower { http, base }, token, last_at)
}

fn assert_followable(entries: &Value, what: &str) {
    let list = entries.as_array().unwrap_or_else(|| panic!("{what}: not a list: {entries}"));
    assert!(!list.is_empty(), "{what}: no entries");
    for e in list {
        assert!(e["sgv"].is_i64() && e["date"].is_i64() && e["direction"].is_string(), "{what}: {e}");
        assert!(e["dateString"].is_string() && e["sysTime"].is_string(), "{what}: {e}");
    }
}

/// xDrip+'s v1 Nightscout follower, as `../shared/reference/nightscout.md` records it from
/// NightscoutFoundation/xDrip `…/cgm/nsfollow/NightscoutFollow.java`: `api-secret: sha1(secret)`; `count=10` on the first run, then
/// `find[date][$gt]=<last ms>&count=2880&rr=<ms>`; `/api/v1/treatments` (no extension) and
/// `/api/v1/devicestatus.json?count=1`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xdrip_v1_follower_sequence() {
    let (f, token, last_at) = follower_stack("SN-XDRIP").await;
    let secret = cgm_shared::follow::sha1_hex(&token);
    let h = [("api-secret", secret.as_str())];
    let (status, first) = f.get("/api/v1/entries.json?count=10", &h).await;
    assert_eq!(status, 200, "{first}");
    assert_followable(&first, "first run");
    assert_eq!(first.as_array().unwrap().len(), 10);
    let since = last_at - 3 * 3 * MIN;
    let q = format!("/api/v1/entries.json?{}&count=2880&rr={}", find("date", Some("$gt"), &since.to_string()), last_at);
    let (status, newer) = f.get(&q, &h).await;
    assert_eq!(status, 200, "{newer}");
    assert_followable(&newer, "since the last");
    assert_eq!(newer.as_array().unwrap().len(), 3, "only entries after the last one it has");
    assert!(newer[2]["delta"].is_number(), "delta: xDrip+ reads it");
    assert_eq!(f.get("/api/v1/treatments", &h).await, (200, json!([])));
    assert_eq!(f.get("/api/v1/devicestatus.json?count=1", &h).await, (200, json!([])));
}

/// LoopFollow, as the reference records it from loopandlearn/LoopFollow `BGData.swift`,
/// `Profile.swift`, `NightscoutUtils.swift`: `?token=` on every call; `status.json` (reads
/// `authorized`), entries since an instant without calibrations, `profiles.json` at an ISO
/// instant, device status and treatments; its Socket.IO connection is refused at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loopfollow_sequence() {
    let (f, token, last_at) = follower_stack("SN-LOOPF").await;
    let t = format!("token={token}");
    let (status, st) = f.get(&format!("/api/v1/status.json?{t}"), &[]).await;
    assert_eq!(status, 200);
    assert!(st["authorized"]["permissionGroups"].is_array(), "{st}");
    let since = last_at - 60 * MIN;
    let q = format!(
        "/api/v1/entries.json?{t}&{}&{}&count=288",
        find("date", Some("$gte"), &since.to_string()),
        find("type", Some("$ne"), "cal")
    );
    let (status, entries) = f.get(&q, &[]).await;
    assert_eq!(status, 200, "{entries}");
    assert_followable(&entries, "entries");
    assert_eq!(entries.as_array().unwrap().len(), 20);
    let now_iso = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let q = format!("/api/v1/profiles.json?{t}&count=1&{}", find("startDate", Some("$lte"), &now_iso));
    assert_eq!(f.get(&q, &[]).await, (200, json!([])));
    assert_eq!(f.get(&format!("/api/v1/devicestatus.json?{t}&count=288"), &[]).await, (200, json!([])));
    let q = format!("/api/v1/treatments.json?{t}&{}", find("created_at", Some("$gte"), &now_iso));
    assert_eq!(f.get(&q, &[]).await, (200, json!([])));
    let (status, sock) = f.get("/socket.io/?EIO=4&transport=polling", &[]).await;
    assert_eq!(status, 501, "{sock}");
}

/// nightguard, as the reference records it from its `external/NightscoutService.swift`: `?token=`; `status.json`;
/// `/api/v2/properties` (reads `bgnow.sgvs[0].direction`, `delta.display`, `delta.mgdl`);
/// entries with a fractional `find[date][$gt]` and `find[date][$lte]`, `count=1440`,
/// skipping any entry without `direction`; treatments by event type and time; device status.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nightguard_sequence() {
    let (f, token, last_at) = follower_stack("SN-NGUARD").await;
    let t = format!("token={token}");
    assert_eq!(f.get(&format!("/api/v1/status.json?{t}"), &[]).await.0, 200);
    let (status, p) = f.get(&format!("/api/v2/properties?{t}"), &[]).await;
    assert_eq!(status, 200, "{p}");
    assert!(p["bgnow"]["sgvs"][0]["direction"].is_string(), "{p}");
    assert!(p["delta"]["display"].is_string() && p["delta"]["mgdl"].is_i64(), "{p}");
    let from = format!("{}.123", last_at - 30 * MIN);
    let q = format!(
        "/api/v1/entries.json?{t}&{}&{}&count=1440",
        find("date", Some("$gt"), &from),
        find("date", Some("$lte"), &last_at.to_string())
    );
    let (status, entries) = f.get(&q, &[]).await;
    assert_eq!(status, 200, "{entries}");
    assert_followable(&entries, "nightguard's entries");
    assert_eq!(entries.as_array().unwrap().len(), 10, "30 minutes of 3-minute readings");
    let q = format!(
        "/api/v1/treatments?{t}&{}&{}",
        find("eventType", None, "Temporary Target"),
        find("created_at", Some("$gte"), "2026-01-01T00:00:00.000Z")
    );
    assert_eq!(f.get(&q, &[]).await, (200, json!([])));
    assert_eq!(f.get(&format!("/api/v1/devicestatus.json?{t}&count=1"), &[]).await, (200, json!([])));
}
