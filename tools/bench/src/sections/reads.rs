use super::{BENCH_KEY, DAY, cgm_dev, release_binary, until_serving};
use crate::stats::summarize;
use cgm_tests::runtime_api::RuntimeApi;
use cgm_tests::{Stack, seed_with};
use serde_json::json;
use std::fmt::Write as _;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Figure 8: summary, gaps and the AGP (JSON, SVG, PDF) over long ranges of one sensor holding 90 days of 3-minute
/// readings (43,200, pushed through the release `cgm-dev`'s push route), once the stream
/// consumer has rolled every day up, and again with the rollups deleted (every reading read,
/// as before rollups existed); then the capacity units keeping a day's rollup costs.
pub async fn reads_at_scale(runs: usize) -> anyhow::Result<String> {
    use cgm_domain::rollup::DayRollup;
    use cgm_domain::time::SourceZone;
    use cgm_shared::store::attr::{self, DEVICE_TIME_INDEX};
    use cgm_shared::store::rollups::dynamodb::{rollup_item, rollup_of};

    const SN: &str = "BENCH-90D";
    const READINGS: usize = 90 * 480;
    const MIN3: i64 = 180_000;
    let endpoint = cgm_tests::endpoint();
    let log = std::fs::File::create(cgm_local::repo_root().join("target/bench-reads-cgm-dev.log"))?;
    let (mut cmd, base) = cgm_dev("warn", log)?;
    let mut child = cmd.spawn()?;
    let push_url = format!("{base}/sinocare/cgm?key={BENCH_KEY}");
    let http = reqwest::Client::builder().pool_max_idle_per_host(32).build()?;
    until_serving(&http, &push_url).await?;
    // 90 days of readings ending now; the sensor's count runs 1..=43,200, one lost in 500.
    let zone = SourceZone::default();
    let last_at = chrono::Utc::now().timestamp_millis() / MIN3 * MIN3;
    let first_at = last_at - (READINGS as i64 - 1) * MIN3;
    let next = Arc::new(AtomicUsize::new(0));
    let pushed_from = Instant::now();
    let workers: Vec<_> = (0..32)
        .map(|_| {
            let (http, url, next) = (http.clone(), push_url.clone(), next.clone());
            tokio::spawn(async move {
                let mut errors = 0usize;
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= READINGS {
                        return errors;
                    }
                    if i % 500 == 250 {
                        continue;
                    }
                    let local = chrono::DateTime::from_timestamp_millis(first_at + i as i64 * MIN3)
                        .expect("an instant")
                        + chrono::Duration::hours(8);
                    let b = seed_with(json!({
                        "testId": format!("{SN}-{i}"), "deviceSn": SN, "serialNo": i + 1, "status": "0",
                        "testTime": local.format("%Y-%m-%d %H:%M:%S").to_string(),
                        "testResult": format!("{:.1}", 3.0 + (i * 7 % 120) as f64 / 10.0), "increMinute": 3,
                    }));
                    let ok = match http.post(&url).header("content-type", "application/json").body(b).send().await {
                        Ok(r) if r.status() == 200 => true,
                        Ok(r) => {
                            if errors == 0 {
                                eprintln!("reads: push {i}: {} {}", r.status(), r.text().await.unwrap_or_default());
                            }
                            false
                        }
                        Err(e) => {
                            if errors == 0 {
                                eprintln!("reads: push {i}: {e}");
                            }
                            false
                        }
                    };
                    errors += usize::from(!ok);
                }
            })
        })
        .collect();
    let mut errors = 0;
    for w in workers {
        errors += w.await?;
    }
    anyhow::ensure!(errors == 0, "{errors} pushes failed");
    let push_took = pushed_from.elapsed();
    let stored = (0..READINGS).filter(|i| i % 500 != 250).count();

    // Wait for the stream consumer to roll every day up.
    let stack = Stack::new_at(&endpoint).await;
    let rollups_of = || async {
        let mut out = Vec::new();
        let mut start = None;
        loop {
            let page = stack
                .client
                .query()
                .table_name("RollupsTable")
                .key_condition_expression("deviceSn = :d")
                .expression_attribute_values(":d", aws_sdk_dynamodb::types::AttributeValue::S(SN.into()))
                .set_exclusive_start_key(start)
                .send()
                .await?;
            out.extend(page.items().iter().cloned());
            start = page.last_evaluated_key().cloned();
            if start.is_none() {
                return anyhow::Ok(out);
            }
        }
    };
    let drained_from = Instant::now();
    loop {
        let n: u64 = rollups_of().await?.iter().filter_map(rollup_of).map(|r| r.readings).sum();
        if n as usize == stored {
            break;
        }
        anyhow::ensure!(
            drained_from.elapsed() < Duration::from_secs(900),
            "the stream was not drained: {n} of {stored}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let drain_took = drained_from.elapsed();

    let days = [7i64, 14, 30, 60, 90];
    let time = |route: &'static str, days: i64, runs: usize| {
        let (http, base) = (http.clone(), base.clone());
        async move {
            let url = format!("{base}/devices/{SN}/{route}?from={}&to={last_at}", last_at - days * DAY);
            let mut lat = Vec::new();
            for i in 0..=runs {
                let t = Instant::now();
                let r = http.get(&url).send().await?;
                anyhow::ensure!(r.status() == 200, "{route} {days} d: {}", r.status());
                let _ = r.bytes().await?;
                if i > 0 {
                    lat.push(t.elapsed());
                }
            }
            anyhow::Ok(summarize(&lat).median)
        }
    };
    let mut with = Vec::new();
    let mut agp = Vec::new();
    for d in days {
        with.push((time("summary", d, runs).await?, time("gaps", d, runs).await?));
        agp.push((time("agp.json", d, runs).await?, time("agp.svg", d, runs).await?, time("agp.pdf", d, runs).await?));
    }
    // Each function's own memory: the release read and report binaries under the Runtime
    // API stand-in, answering the AGP over 14 and 89 days `runs` times each.
    let agp_event = |name: &str, days: i64| {
        let route = format!("/devices/{{device_sn}}/{name}");
        let path = format!("/devices/{SN}/{name}");
        let query = format!("from={}&to={last_at}", last_at - days * DAY);
        cgm_tests::api_event("GET", &route, &path, &[("device_sn", SN)], &query, None).to_string()
    };
    let mut peaks = Vec::new();
    for (binary, route) in [("read", "agp.svg"), ("report", "agp.pdf")] {
        let events: Vec<String> =
            [14, 90].iter().flat_map(|&d| (0..runs).map(move |_| d)).map(|d| agp_event(route, d)).collect();
        peaks.push((binary, route, peak_rss(binary, &stack, &events).await?));
    }
    // The capacity a day's recompute costs: the day's Query on the index, the rollup's write.
    let items = rollups_of().await?;
    let full_day = items
        .iter()
        .filter_map(rollup_of)
        .filter(|r| r.readings >= 479)
        .max_by_key(|r| r.day)
        .ok_or_else(|| anyhow::anyhow!("no full day"))?;
    let span = zone.local_day(full_day.day).ok_or_else(|| anyhow::anyhow!("a day"))?;
    let (mut rcu, mut start) = (0.0, None);
    loop {
        let page = stack
            .client
            .query()
            .table_name("ReadingsTable")
            .index_name(DEVICE_TIME_INDEX)
            .key_condition_expression("#d = :d AND #at BETWEEN :a AND :b")
            .expression_attribute_names("#d", attr::DEVICE_SN)
            .expression_attribute_names("#at", attr::MEASURED_AT)
            .expression_attribute_values(":d", attr::s(SN))
            .expression_attribute_values(":a", attr::n(span.start().ms()))
            .expression_attribute_values(":b", attr::n(span.end().ms() - 1))
            .return_consumed_capacity(aws_sdk_dynamodb::types::ReturnConsumedCapacity::Total)
            .set_exclusive_start_key(start)
            .send()
            .await?;
        rcu += page.consumed_capacity().and_then(|c| c.capacity_units()).unwrap_or(0.0);
        start = page.last_evaluated_key().cloned();
        if start.is_none() {
            break;
        }
    }
    let mut copy: DayRollup = full_day.clone();
    copy.device_sn = "BENCH-COST".into();
    let put = stack
        .client
        .put_item()
        .table_name("RollupsTable")
        .set_item(Some(rollup_item(&copy)))
        .return_consumed_capacity(aws_sdk_dynamodb::types::ReturnConsumedCapacity::Total)
        .send()
        .await?;
    let wcu = put.consumed_capacity().and_then(|c| c.capacity_units()).unwrap_or(0.0);
    let rollup_bytes = attr::item_bytes(&rollup_item(&copy));

    // Without rollups: every reading of the range read, as before.
    for item in &items {
        let key = item.iter().filter(|(k, _)| *k == "deviceSn" || *k == "day").map(|(k, v)| (k.clone(), v.clone()));
        stack.client.delete_item().table_name("RollupsTable").set_key(Some(key.collect())).send().await?;
    }
    let slow_runs = runs.min(3);
    let mut without = Vec::new();
    for d in days {
        without.push((time("summary", d, slow_runs).await?, time("gaps", d, slow_runs).await?));
    }
    let _ = child.kill().await;

    let secs = |d: Duration| {
        if d >= Duration::from_secs(1) {
            format!("{:.2} s", d.as_secs_f64())
        } else {
            format!("{:.0} ms", d.as_secs_f64() * 1e3)
        }
    };
    let mut o = String::new();
    writeln!(o, "### 8. Reads at scale: one sensor, 90 days of 3-minute readings, release `cgm-dev`\n")?;
    writeln!(
        o,
        "{stored} readings pushed through the push route in {} (concurrency 32); the stream consumer had rolled \
         every day up {} after the last push. Ranges end at the newest reading, so both ends are partial days. \
         Median of {runs} requests with rollups, of {slow_runs} without.\n",
        secs(push_took),
        secs(drain_took)
    )?;
    writeln!(o, "| route | {} |", days.map(|d| format!("{d} d")).join(" | "))?;
    writeln!(o, "|---|{}", "---|".repeat(days.len()))?;
    let row = |name: &str, v: Vec<Duration>| {
        format!("| {name} | {} |", v.into_iter().map(secs).collect::<Vec<_>>().join(" | "))
    };
    writeln!(o, "{}", row("`summary`, whole days from rollups", with.iter().map(|p| p.0).collect()))?;
    writeln!(o, "{}", row("`gaps`, whole days from rollups", with.iter().map(|p| p.1).collect()))?;
    writeln!(o, "{}", row("`agp.json`, whole days from rollups", agp.iter().map(|p| p.0).collect()))?;
    writeln!(o, "{}", row("`agp.svg`, whole days from rollups", agp.iter().map(|p| p.1).collect()))?;
    writeln!(o, "{}", row("`agp.pdf`, whole days from rollups", agp.iter().map(|p| p.2).collect()))?;
    writeln!(o, "{}", row("`summary`, every reading (no rollups)", without.iter().map(|p| p.0).collect()))?;
    writeln!(o, "{}", row("`gaps`, every reading (no rollups)", without.iter().map(|p| p.1).collect()))?;
    writeln!(
        o,
        "\nEach function on its own (the release binary under the Runtime API stand-in, as in figure 4), \
         after {n} AGPs over 14 days and {n} over 90:\n",
        n = runs
    )?;
    writeln!(o, "| function | route | peak RSS (VmHWM) |\n|---|---|---|")?;
    for (binary, route, kb) in &peaks {
        writeln!(o, "| `{binary}` | `{route}` | {:.1} MB |", *kb as f64 / 1024.0)?;
    }
    writeln!(
        o,
        "\nKeeping a day's rollup, for a day of {} readings: its recompute Queries the day on the index \
         ({rcu} RCU, eventually consistent) and writes the rollup ({wcu} WCU; the item is about {:.1} KB). \
         The consumer recomputes each device-day once per batch, so per stored reading that is {:.2} RCU + {:.2} WCU \
         when each batch holds one reading of the day (one sensor pushing live), and {:.3} RCU + {:.3} WCU in a \
         backlog burst of 100 readings of the day per batch; storing the reading itself is 1 WCU plus its index \
         writes.\n",
        full_day.readings,
        rollup_bytes as f64 / 1024.0,
        rcu,
        wcu,
        rcu / 100.0,
        wcu / 100.0
    )?;
    Ok(o)
}

/// Runs the release `binary` under a Runtime API stand-in on `events` (API Gateway events
/// for routes that must answer 200) and returns its peak RSS (`VmHWM`) in KiB.
async fn peak_rss(binary: &str, stack: &Stack, events: &[String]) -> anyhow::Result<u64> {
    let api = RuntimeApi::start().await?;
    for (i, e) in events.iter().enumerate() {
        api.push(format!("{binary}-{i}"), e.clone());
    }
    let mut cmd = tokio::process::Command::new(release_binary(binary)?);
    cmd.env_clear()
        .env("AWS_LAMBDA_RUNTIME_API", api.addr.to_string())
        .env("AWS_LAMBDA_FUNCTION_NAME", binary)
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_LOG_FORMAT", "JSON")
        .env("AWS_LAMBDA_LOG_LEVEL", "WARN")
        .env("DYNAMODB_ENDPOINT", &stack.endpoint)
        .env("AGP_FONT_DIR", cgm_local::font_dir())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    for (k, v) in &stack.table_vars {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn()?;
    let pid = child.id().unwrap_or_default();
    tokio::time::timeout(Duration::from_secs(600), api.wait_for(events.len())).await?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let _ = child.kill().await;
    anyhow::ensure!(api.errors().is_empty(), "{binary} reported errors: {:?}", api.errors());
    for (id, _, body) in api.responses() {
        anyhow::ensure!(body.contains(r#""statusCode":200"#), "{binary} {id}: {}", &body[..body.len().min(300)]);
    }
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no VmHWM for {binary}"))
}
