use crate::stats::{ms, summarize};
use serde_json::{Value, json};
use std::fmt::Write as _;
use std::time::Instant;

/// Figure 10: the Nightscout feed on the local stack. Release `cgm-dev` holding one 15-day
/// sensor (7,200 readings 3 minutes apart, ending now, pushed through the push route); the
/// entries a follower asks for, `runs` times each after a warm-up.
pub async fn nightscout(runs: usize) -> anyhow::Result<String> {
    const SN: &str = "BENCH-NS-15D";
    const READINGS: usize = super::SENSOR_READINGS;
    let super::LiveSensor { mut child, base, http, last_at } = super::live_sensor("nightscout", SN, json!({})).await?;
    let r = http.post(format!("{base}/devices/{SN}/follow-tokens")).send().await?;
    anyhow::ensure!(r.status() == 201, "creating a follower token: {}", r.status());
    let token = r.json::<Value>().await?["token"].as_str().unwrap_or_default().to_string();

    // API v3 takes a JWT: cgm-dev signs with a key made for its run.
    let r = http.get(format!("{base}/api/v2/authorization/request/{token}")).send().await?;
    anyhow::ensure!(r.status() == 200, "exchanging the token for a JWT: {}", r.status());
    let bearer = format!("Bearer {}", r.json::<Value>().await?["token"].as_str().unwrap_or_default());
    let hour_ago = last_at - 3_600_000;
    let cases = [
        (
            "`entries.json?count=288` (a day at 5 minutes)",
            format!("/api/v1/entries.json?token={token}&count=288"),
            false,
        ),
        ("`entries.json?count=2880` (xDrip+'s ask)", format!("/api/v1/entries.json?token={token}&count=2880"), false),
        (
            "`entries.json?find[date][$gt]=<1 h ago>&count=2880` (xDrip+'s poll)",
            format!("/api/v1/entries.json?token={token}&find[date][$gt]={hour_ago}&count=2880"),
            false,
        ),
        (
            "v3 `entries?sort$desc=date&limit=288`",
            "/api/v3/entries?sort$desc=date&type=sgv&limit=288".to_string(),
            true,
        ),
        (
            "v3 `entries?sort$desc=date&date$gt=<1 h ago>&limit=288` (xDrip+ v3's poll)",
            format!("/api/v3/entries?sort$desc=date&type=sgv&date$gt={hour_ago}&limit=288"),
            true,
        ),
        ("`/api/v2/properties` (nightguard)", format!("/api/v2/properties?token={token}"), false),
        ("`/api/v1/status.json`", format!("/api/v1/status.json?token={token}"), false),
    ];
    let mut rows = Vec::new();
    for (name, path, jwt) in &cases {
        let mut lat = Vec::new();
        let mut items = 0;
        for i in 0..=runs {
            let t = Instant::now();
            let mut req = http.get(format!("{base}{path}"));
            if *jwt {
                req = req.header("authorization", &bearer);
            }
            let r = req.send().await?;
            anyhow::ensure!(r.status() == 200, "{name}: {}", r.status());
            let body: Value = r.json().await?;
            if i > 0 {
                lat.push(t.elapsed());
            }
            items = body.as_array().or_else(|| body["result"].as_array()).map_or(1, Vec::len);
        }
        let s = summarize(&lat);
        rows.push(format!("| {name} | {items} | {} | {} |", ms(s.median), ms(s.p99)));
    }
    let _ = child.kill().await;
    let mut o = String::new();
    writeln!(o, "### 10. Nightscout feed: one 15-day sensor, release `cgm-dev`\n")?;
    writeln!(
        o,
        "{READINGS} readings pushed through the push route, then each request {runs} times after one warm-up \
         (a follower token in `?token=`; v3 with the Bearer JWT it was exchanged for).\n"
    )?;
    writeln!(o, "| request | entries | p50 | p99 |")?;
    writeln!(o, "|---|---|---|---|")?;
    for r in rows {
        writeln!(o, "{r}")?;
    }
    writeln!(o)?;
    Ok(o)
}
