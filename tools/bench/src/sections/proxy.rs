use super::DAY;
use crate::stats::{ms, summarize, us};
use cgm_edge::HttpService;
use cgm_tests::fake_partner::{FakePartner, T0};
use cgm_tests::{Stack, api_request};
use serde_json::Value;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

/// Figure 6: the proxy's added latency over a zero-latency upstream, and a 90-day query
/// paged to the end against an upstream with 50 ms per call.
pub async fn proxy(n: usize) -> anyhow::Result<String> {
    let stack = Stack::new().await;
    let fake = FakePartner::start(DAY).await;
    let env = fake.env();
    let kv: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let cfg = stack.config(&kv);
    let svc = cgm_partner::from_config(&cfg).await?;
    let reg = svc
        .handle(api_request("POST", "/partner/users", "/partner/users", &[], "", Some(r#"{"partner_uid":"bench"}"#)))
        .await;
    let reg: Value = serde_json::from_slice(reg.body())?;
    let open_id = reg["data"]["open_id"].as_str().unwrap_or_default().to_string();
    let token = reg["data"]["access_token"].as_str().unwrap_or_default().to_string();
    let signer = cgm_partner::sign::Signer::new(
        cgm_tests::fake_partner::APP_ID,
        cgm_domain::sensitive::Sensitive::new(cgm_tests::fake_partner::APP_SECRET.to_string()),
    );
    let http = reqwest::Client::new();
    let (mut via, mut direct) = (Vec::new(), Vec::new());
    for i in 0..(n + 100) {
        let q = format!("open_id={open_id}");
        let t = Instant::now();
        let r = svc
            .handle(api_request(
                "GET",
                "/partner/devices/{device_sn}",
                "/partner/devices/DEV-1",
                &[("device_sn", "DEV-1")],
                &q,
                None,
            ))
            .await;
        let dv = t.elapsed();
        anyhow::ensure!(r.status() == 200, "proxy answered {}", r.status());

        let t = Instant::now();
        let now = chrono::Utc::now().timestamp_millis();
        let nonce = cgm_partner::sign::new_nonce().expect("the OS random source");
        let h = signer.sign("GET", "/partner/v1/device/info", &[("device_sn", "DEV-1")], b"", now, &nonce);
        let r = http
            .get(format!("{}/partner/v1/device/info?device_sn=DEV-1", fake.uri()))
            .header("X-App-Id", h.app_id)
            .header("X-Timestamp", h.timestamp)
            .header("X-Nonce", h.nonce)
            .header("X-Signature", h.signature)
            .bearer_auth(&token)
            .send()
            .await?;
        let _ = r.bytes().await?;
        let dd = t.elapsed();
        if i >= 100 {
            via.push(dv);
            direct.push(dd);
        }
    }
    let (v, d) = (summarize(&via), summarize(&direct));
    let added = v.median.saturating_sub(d.median);

    // 90 days of 3-minute records, 50 ms per upstream call.
    let slow = FakePartner::start(90 * DAY).await;
    let env = slow.env();
    let kv: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let svc = cgm_partner::from_config(&stack.config(&kv)).await?;
    let reg = svc
        .handle(api_request("POST", "/partner/users", "/partner/users", &[], "", Some(r#"{"partner_uid":"bench90"}"#)))
        .await;
    let reg: Value = serde_json::from_slice(reg.body())?;
    let open_id = reg["data"]["open_id"].as_str().unwrap_or_default().to_string();
    slow.set(|b| b.delay = Some(Duration::from_millis(50)));
    let mut rows = String::new();
    for limit in [2_000usize, 5_000] {
        let before = slow.glucose_windows().len();
        let (mut pages, mut records, mut cursor, mut biggest) = (0, 0, None::<String>, 0usize);
        let t = Instant::now();
        loop {
            let mut q = format!("start_time={T0}&end_time={}&limit={limit}", T0 + 90 * DAY - 1);
            if let Some(c) = &cursor {
                q += &format!("&cursor={c}");
            }
            let path = format!("/partner/users/{open_id}/glucose");
            let r = svc
                .handle(api_request(
                    "GET",
                    "/partner/users/{open_id}/glucose",
                    &path,
                    &[("open_id", &open_id)],
                    &q,
                    None,
                ))
                .await;
            anyhow::ensure!(r.status() == 200, "page answered {}", r.status());
            biggest = biggest.max(r.body().len());
            let v: Value = serde_json::from_slice(r.body())?;
            pages += 1;
            records += v["data"]["records"].as_array().map_or(0, Vec::len);
            match v["data"]["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => break,
            }
        }
        let took = t.elapsed();
        let windows = slow.glucose_windows()[before..].to_vec();
        let mut distinct = windows.clone();
        distinct.sort();
        distinct.dedup();
        let most = distinct.iter().map(|w| windows.iter().filter(|x| *x == w).count()).max().unwrap_or(0);
        writeln!(
            rows,
            "| {limit} | {pages} | {records} | {:.2} s | {} | {} | {most} | {:.2} MB |",
            took.as_secs_f64(),
            windows.len(),
            distinct.len(),
            biggest as f64 / 1e6
        )?;
    }
    let mut o = String::new();
    writeln!(o, "### 6. Partner proxy\n")?;
    writeln!(
        o,
        "Device information through the proxy vs the same signed call made directly, zero-latency loopback stand-in, N = {n} each, interleaved:\n"
    )?;
    writeln!(o, "| | median | p99 |\n|---|---|---|")?;
    writeln!(o, "| through the proxy handler | {} | {} |", ms(v.median), ms(v.p99))?;
    writeln!(o, "| direct signed call | {} | {} |", ms(d.median), ms(d.p99))?;
    writeln!(o, "| **added by the proxy** (target ≤ 1 ms) | **{}** | |\n", us(added))?;
    writeln!(o, "A 90-day query of 3-minute records (43,200) paged to the end, 50 ms per upstream call:\n")?;
    writeln!(
        o,
        "| limit | pages | records | total time | upstream glucose calls | distinct windows | most fetches of one window | largest page |"
    )?;
    writeln!(o, "|---|---|---|---|---|---|---|---|\n{rows}")?;
    Ok(o)
}
