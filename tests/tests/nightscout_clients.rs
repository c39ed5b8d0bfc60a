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
    let stack = Stack::new().await;
    let base = serve_locally(&stack.config(&[])).await;
    let http = reqwest::Client::new();
    let last_at = chrono::Utc::now().timestamp_millis() / 1000 * 1000 - 2 * MIN;
    push_series(&http, &base, "SN-PYNS", last_at).await;
    let token = follower_token(&http, &base, "SN-PYNS").await;

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
