//! Real Nightscout clients, run unchanged against the local stack (the handlers `make dev`
//! serves, on loopback HTTP): py-nightscout from PyPI (`tools/install.sh sam` puts it in
//! `.tools/venv`), through `tests/clients/py_nightscout_follow.py`; and the request sequences
//! of xDrip+ (v1 and v3), LoopFollow and nightguard, replayed from their sources (each test
//! names the files and lines; fetched 2026-12).

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
    // JWTs on, as in a stack with NightscoutJwtKeyParameterName set (and under make dev).
    let base =
        serve_locally(&stack.config(&[("NIGHTSCOUT_JWT_KEY", "a-local-test-key-of-at-least-32-characters")])).await;
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

/// xDrip+'s v1 Nightscout follower: NightscoutFoundation/xDrip (master c2a0ba1a8f)
/// `app/src/main/java/com/eveningoutpost/dexdrip/cgm/nsfollow/NightscoutFollow.java`, the
/// Retrofit interface (l. 47-63) and `work()` (l. 110-141): `api-secret: sha1(secret)` and
/// `User-Agent: xDrip+ …`; `count=10&rr=<now>` on the first run, then
/// `count=2880&find[date][$gt]=<last ms>&rr=<now>` with the brackets unencoded
/// (`encoded = true`); `/api/v1/treatments` (no extension) and
/// `/api/v1/devicestatus.json?count=1`. It reads `sgv` (a Java int), `date` (else `sysTime`,
/// `dateString`), `filtered`, `unfiltered`, `noise` (`messages/Entry.java`,
/// `EntryProcessor.java`); it does not use `direction` or `delta`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xdrip_v1_follower_sequence() {
    let (f, token, last_at) = follower_stack("SN-XDRIP").await;
    let secret = cgm_domain::follow::sha1_hex(&token);
    let h = [("api-secret", secret.as_str()), ("user-agent", "xDrip+ 2026.08.08")];
    let now = chrono::Utc::now().timestamp_millis();
    let (status, first) = f.get(&format!("/api/v1/entries.json?count=10&rr={now}"), &h).await;
    assert_eq!(status, 200, "{first}");
    assert_xdrip_reads(&first, "first run");
    assert_eq!(first.as_array().unwrap().len(), 10);
    let since = last_at - 3 * 3 * MIN;
    let q = format!("/api/v1/entries.json?count=2880&find[date][$gt]={since}&rr={now}");
    let (status, newer) = f.get(&q, &h).await;
    assert_eq!(status, 200, "{newer}");
    assert_xdrip_reads(&newer, "since the last");
    let dates: Vec<i64> = newer.as_array().unwrap().iter().map(|e| e["date"].as_i64().unwrap()).collect();
    assert_eq!(dates, vec![last_at, last_at - 3 * MIN, last_at - 6 * MIN], "only entries after the last one it has");
    assert_eq!(f.get("/api/v1/treatments", &h).await, (200, json!([])));
    assert_eq!(f.get("/api/v1/devicestatus.json?count=1", &h).await, (200, json!([])));
    // Without a secret in its URL xDrip+ sends no header: refused, as Nightscout refuses it.
    assert_eq!(f.get("/api/v1/entries.json?count=10", &[]).await.0, 401);
}

/// What xDrip+'s `Entry` needs of each entry: an integer `sgv`, a `date` above 1e6 (else it
/// drops the entry), and `noise`.
fn assert_xdrip_reads(entries: &Value, what: &str) {
    let list = entries.as_array().unwrap_or_else(|| panic!("{what}: not a list: {entries}"));
    assert!(!list.is_empty(), "{what}: no entries");
    for e in list {
        assert!(e["sgv"].is_i64() && e["date"].as_i64().is_some_and(|d| d > 1_000_000), "{what}: {e}");
        assert!(e["noise"].is_i64(), "{what}: {e}");
    }
}

/// xDrip+'s API v3 follower, not merged: NightscoutFoundation/xDrip pull request #4469
/// (`refs/pull/4469/head`, eded1155da)
/// `app/src/main/java/com/eveningoutpost/dexdrip/cgm/nsfollow/NightscoutFollowV3.java`:
/// `work()` (l. 144-188) exchanges the access token (the URL's user part) for a JWT at
/// `/api/v2/authorization/request/{token}` (l. 212-242: reads `token`, `sub`, `exp` in
/// seconds), then with `Authorization: Bearer <jwt>` (l. 260-263) asks the interfaces of
/// l. 63-89: entries `sort$desc=date&type=sgv&fields=…&date$gt=<last or 0>&limit=288`,
/// treatments `…&date$gt=<last or 0>&limit=100`, devicestatus `sort$desc=date&limit=1&fields=…`;
/// it reads `result` of the `{status, result}` envelope (l. 113, 180).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xdrip_v3_follower_sequence() {
    let (f, token, last_at) = follower_stack("SN-XDRIP3").await;
    let (status, auth) = f.get(&format!("/api/v2/authorization/request/{token}"), &[]).await;
    assert_eq!(status, 200, "{auth}");
    let jwt = auth["token"].as_str().expect("token: the JWT").to_string();
    assert!(auth["sub"].is_string() && auth["exp"].as_i64().unwrap() > chrono::Utc::now().timestamp(), "{auth}");
    let bearer = format!("Bearer {jwt}");
    let h = [("authorization", bearer.as_str())];
    const ENTRY_FIELDS: &str = "date,dateString,sysTime,sgv,unfiltered,filtered,noise,identifier";
    let entries =
        |since: i64| format!("/api/v3/entries?sort$desc=date&type=sgv&fields={ENTRY_FIELDS}&date$gt={since}&limit=288");
    let (status, first) = f.get(&entries(0), &h).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["status"], 200);
    let result = &first["result"];
    assert_xdrip_reads(result, "v3 first run");
    let docs = result.as_array().unwrap();
    assert_eq!(docs.len(), 20, "every reading of the sensor");
    assert_eq!(docs[0]["date"], last_at, "newest first");
    for d in docs {
        assert!(d["identifier"].is_string() && d["dateString"].is_string() && d["sysTime"].is_string(), "{d}");
        let keys = d.as_object().unwrap().keys().filter(|k| !ENTRY_FIELDS.split(',').any(|f| f == k.as_str())).count();
        assert_eq!(keys, 0, "only the fields asked for: {d}");
    }
    let (status, later) = f.get(&entries(last_at - 2 * 3 * MIN), &h).await;
    assert_eq!((status, later["result"].as_array().map(Vec::len)), (200, Some(2)), "{later}");
    let treatments = "/api/v3/treatments?sort$desc=date&fields=identifier,eventType,uuid,enteredBy,glucoseType,created_at,glucose,units,carbs,insulin,insulinInjections,notes&date$gt=0&limit=100";
    assert_eq!(f.get(treatments, &h).await, (200, json!({"status": 200, "result": []})));
    let devicestatus = "/api/v3/devicestatus?sort$desc=date&limit=1&fields=uploaderBattery,isCharging,pump,date";
    assert_eq!(f.get(devicestatus, &h).await, (200, json!({"status": 200, "result": []})));
    // If the exchange failed xDrip+ sends no header: Nightscout's v3 401.
    assert_eq!(
        f.get(&entries(0), &[]).await,
        (401, json!({"status": 401, "message": "Missing or bad access token or JWT"}))
    );
    let (status, version) = f.get("/api/v3/version", &[]).await;
    assert_eq!((status, version["result"]["apiVersion"].as_str()), (200, Some(cgm_nightscout::v3::API_VERSION)));
}

/// LoopFollow: loopandlearn/LoopFollow (89183a494b). `LoopFollow/Helpers/NightscoutUtils.swift`
/// (l. 152-241) puts `?token=` on every call and reads `authorized.token` (a string) and
/// `authorized.permissionGroups` (`[[String]]`) from `status.json`; `Controllers/Nightscout/`
/// `BGData.swift` (l. 70-78): entries `count=1152&find[date][$gte]=<now − 1 day, ms>&find[type][$ne]=cal`;
/// `Profile.swift` (l. 11-15): `profiles.json?count=1&find[startDate][$lte]=<now + 60 s, ISO>`
/// (an empty list is "no profile records returned", l. 17-20);
/// `DeviceStatus.swift` (l. 10-11): `count=1`; `Treatments.swift` (l. 12-20): `created_at`
/// between −1 day and +6 h as `yyyy-MM-ddTHH:mm:ss`, `count=5000`; `CAge.swift`, `SAge.swift`,
/// `IAge.swift`: one treatment by `eventType`; `DBSize.swift`: `/api/v2/properties/dbsize`;
/// `NightscoutSocketManager.swift` (l. 108-119): Socket.IO with `token`, refused at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loopfollow_sequence() {
    let (f, token, last_at) = follower_stack("SN-LOOPF").await;
    let t = format!("token={token}");
    let (status, st) = f.get(&format!("/api/v1/status.json?{t}"), &[]).await;
    assert_eq!(status, 200);
    assert!(st["authorized"]["token"].is_string(), "LoopFollow reads authorized.token as a string: {st}");
    let groups = st["authorized"]["permissionGroups"].as_array().unwrap_or_else(|| panic!("{st}"));
    assert!(groups.iter().all(|g| g.as_array().is_some_and(|g| g.iter().all(Value::is_string))), "[[String]]: {st}");
    let now = chrono::Utc::now();
    let day_ago = now.timestamp_millis() - 1440 * MIN;
    let q = format!(
        "/api/v1/entries.json?{t}&{}&{}&count=1152",
        find("date", Some("$gte"), &day_ago.to_string()),
        find("type", Some("$ne"), "cal")
    );
    let (status, entries) = f.get(&q, &[]).await;
    assert_eq!(status, 200, "{entries}");
    assert_followable(&entries, "entries");
    assert_eq!(entries.as_array().unwrap().len(), 20);
    assert_eq!(entries[0]["date"], last_at);
    let soon = (now + chrono::Duration::seconds(60)).to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let q = format!("/api/v1/profiles.json?{t}&count=1&{}", find("startDate", Some("$lte"), &soon));
    assert_eq!(f.get(&q, &[]).await, (200, json!([])));
    assert_eq!(f.get(&format!("/api/v1/devicestatus.json?{t}&count=1"), &[]).await, (200, json!([])));
    let local = |d: chrono::DateTime<chrono::Utc>| d.format("%Y-%m-%dT%H:%M:%S").to_string();
    let (from, to) = (local(now - chrono::Duration::days(1)), local(now + chrono::Duration::hours(6)));
    let bounds = format!("{}&{}", find("created_at", Some("$gte"), &from), find("created_at", Some("$lte"), &to));
    assert_eq!(f.get(&format!("/api/v1/treatments.json?{t}&{bounds}&count=5000"), &[]).await, (200, json!([])));
    for event in ["Site Change", "Sensor Start", "Insulin Change"] {
        let q = format!(
            "/api/v1/treatments.json?{t}&{}&{bounds}&count=1",
            find("eventType", None, &event.replace(' ', "%20"))
        );
        assert_eq!(f.get(&q, &[]).await, (200, json!([])), "{event}");
    }
    let (status, dbsize) = f.get(&format!("/api/v2/properties/dbsize?{t}"), &[]).await;
    assert_eq!((status, dbsize), (200, json!({})), "every key of dbsize is optional to LoopFollow");
    let (status, sock) = f.get(&format!("/socket.io/?EIO=4&transport=polling&{t}"), &[]).await;
    assert_eq!(status, 501, "{sock}");
}

/// nightguard: nightscout/nightguard (4d82879b2a) `nightguard/external/NightscoutService.swift`,
/// with `?token=` last on every call: `status.json` (l. 84-136: reads `settings.units`);
/// `/api/v2/properties` (l. 416-562: needs `bgnow.last`, reads `bgnow.mills`,
/// `bgnow.sgvs[0].direction`, `delta.display`, `delta.mgdl`; `upbat`, `iob`, `cob` optional);
/// entries (l. 170-188, 355-372) `find[date][$gt]=<ms as a Swift Double>&find[date][$lte]=<start
/// of tomorrow>.0&count=1440`, skipping an entry without `direction` (l. 240-270); treatments
/// by `eventType` since a date (l. 608-716, `yyyy-MM-dd`, `count=1`); `devicestatus.json?count=5`
/// (l. 1188-1202); and `treatments.json` unfiltered (l. 1321-1330).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nightguard_sequence() {
    let (f, token, last_at) = follower_stack("SN-NGUARD").await;
    let t = format!("token={token}");
    let (status, st) = f.get(&format!("/api/v1/status.json?{t}"), &[]).await;
    assert_eq!((status, st["settings"]["units"].as_str()), (200, Some("mg/dl")), "{st}");
    let (status, p) = f.get(&format!("/api/v2/properties?{t}"), &[]).await;
    assert_eq!(status, 200, "{p}");
    assert!(p["bgnow"]["last"].is_i64() && p["bgnow"]["mills"].as_i64() == Some(last_at), "{p}");
    assert!(p["bgnow"]["sgvs"][0]["direction"].is_string(), "{p}");
    assert!(p["delta"]["display"].is_string() && p["delta"]["mgdl"].is_i64(), "{p}");
    let from = format!("{}.123", last_at - 30 * MIN);
    let today = chrono::DateTime::from_timestamp_millis(last_at).unwrap().date_naive();
    let tomorrow = today.succ_opt().unwrap().and_hms_opt(0, 0, 0).unwrap().and_utc().timestamp_millis();
    let q = format!(
        "/api/v1/entries.json?{}&{}&count=1440&{t}",
        find("date", Some("$gt"), &from),
        find("date", Some("$lte"), &format!("{tomorrow}.0"))
    );
    let (status, entries) = f.get(&q, &[]).await;
    assert_eq!(status, 200, "{entries}");
    assert_followable(&entries, "nightguard's entries");
    assert_eq!(entries.as_array().unwrap().len(), 10, "30 minutes of 3-minute readings");
    let since = |days: i64| (today - chrono::Duration::days(days)).format("%Y-%m-%d").to_string();
    for (event, days) in
        [("Site Change", 5), ("Sensor Change", 14), ("Pump Battery Change", 40), ("Temporary Target", 1)]
    {
        let q = format!(
            "/api/v1/treatments?{}&{}&count=1&{t}",
            find("eventType", None, &event.replace(' ', "%20")),
            find("created_at", Some("$gte"), &since(days))
        );
        assert_eq!(f.get(&q, &[("content-length", "0")]).await, (200, json!([])), "{event}");
    }
    assert_eq!(f.get(&format!("/api/v1/devicestatus.json?count=5&{t}"), &[]).await, (200, json!([])));
    assert_eq!(f.get(&format!("/api/v1/treatments.json?{t}"), &[]).await, (200, json!([])));
}
