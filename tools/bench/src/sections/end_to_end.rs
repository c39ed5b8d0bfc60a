use super::{BENCH_KEY, body, cgm_dev, until_serving};
use crate::stats::{ms, summarize};
use serde_json::Value;
use std::fmt::Write as _;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

/// Figure 2: the release local server under load, concurrency `c`, unique readings.
pub async fn end_to_end(n: usize, c: usize) -> anyhow::Result<String> {
    let (mut cmd, base) = cgm_dev("warn", Stdio::null())?;
    let mut child = cmd.spawn()?;
    let url = format!("{base}/sinocare/cgm?key={BENCH_KEY}");
    let http = reqwest::Client::builder().pool_max_idle_per_host(c).build()?;
    until_serving(&http, &url).await?;
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..c)
        .map(|_| {
            let (http, url, next) = (http.clone(), url.clone(), next.clone());
            tokio::spawn(async move {
                let (mut lat, mut errors) = (Vec::new(), 0usize);
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        return (lat, errors);
                    }
                    let b = body(&format!("e2e-{i}"), i as u64);
                    let t = Instant::now();
                    let ok = match http.post(&url).header("content-type", "application/json").body(b).send().await {
                        Ok(r) => r.status() == 200 && r.json::<Value>().await.map(|v| v["code"] == 0).unwrap_or(false),
                        Err(_) => false,
                    };
                    lat.push(t.elapsed());
                    errors += usize::from(!ok);
                }
            })
        })
        .collect();
    let (mut lat, mut errors) = (Vec::new(), 0);
    for w in workers {
        let (l, e) = w.await?;
        lat.extend(l);
        errors += e;
    }
    let took = started.elapsed();
    let _ = child.kill().await;
    let s = summarize(&lat);
    let mut o = String::new();
    writeln!(o, "### 2. End to end: release `cgm-dev` + DynamoDB Local, {n} unique pushes, concurrency {c}\n")?;
    writeln!(o, "| throughput | p50 | p95 | p99 | max | errors |\n|---|---|---|---|---|---|")?;
    writeln!(
        o,
        "| {:.0} pushes/s | {} | {} | {} | {} | {errors} |\n",
        n as f64 / took.as_secs_f64(),
        ms(s.median),
        ms(s.p95),
        ms(s.p99),
        ms(s.max)
    )?;
    Ok(o)
}
