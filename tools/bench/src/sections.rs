//! One function per figure in BENCHMARKS.md; each returns its markdown.

use crate::stats::{ms, summarize, us};
use aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure;
use cgm_domain::push::parse_push;
use cgm_domain::store::push::Arrival;
use cgm_edge::HttpService;
use cgm_shared::store::push::dynamodb::reading_item;
use cgm_tests::fake_partner::{FakePartner, T0};
use cgm_tests::fake_ssm::FakeSsm;
use cgm_tests::runtime_api::RuntimeApi;
use cgm_tests::{Stack, api_request, push_request, seed_with};
use serde_json::{Value, json};
use std::fmt::Write as _;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const DAY: i64 = 86_400_000;

fn body(test_id: &str, serial: u64) -> String {
    seed_with(json!({"testId": test_id, "serialNo": serial, "status": "0"}))
}

fn release_binary(name: &str) -> anyhow::Result<std::path::PathBuf> {
    let p = cgm_local::repo_root().join("target/release").join(name);
    anyhow::ensure!(
        p.is_file(),
        "{} is missing: run `cargo build --release -p cgm-push -p cgm-read -p cgm-report -p cgm-local --bins` first",
        p.display()
    );
    Ok(p)
}

/// The release `cgm-dev` on a free port against the bench's DynamoDB Local, with the
/// bench's push key, logging at `level` to `stderr` (stdout discarded unless the caller
/// changes it): the command, for the caller to add settings and spawn, and its base URL.
fn cgm_dev(level: &str, stderr: impl Into<Stdio>) -> anyhow::Result<(tokio::process::Command, String)> {
    let port = cgm_local::dynamodb_local::free_port()?;
    let mut cmd = tokio::process::Command::new(release_binary("cgm-dev")?);
    cmd.env("PORT", port.to_string())
        .env("DYNAMODB_ENDPOINT", cgm_tests::endpoint())
        .env("PUSH_KEY", BENCH_KEY)
        .env("AWS_LAMBDA_LOG_LEVEL", level)
        .stdout(Stdio::null())
        .stderr(stderr)
        .kill_on_drop(true);
    Ok((cmd, format!("http://127.0.0.1:{port}")))
}

/// Waits, up to a minute, until cgm-dev answers on its push route.
async fn until_serving(http: &reqwest::Client, push_url: &str) -> anyhow::Result<()> {
    let ready = Instant::now();
    while http.post(push_url).body("{}").send().await.is_err() {
        anyhow::ensure!(ready.elapsed() < Duration::from_secs(60), "cgm-dev did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

/// Figure 1: the push handler with a `lambda_http` request vs a bare conditional PutItem
/// of the same kind of item, interleaved, same process, client and table.
pub async fn overhead(n: usize) -> anyhow::Result<String> {
    let stack = Stack::new().await;
    let cfg = stack.config(&[("PUSH_KEY", BENCH_KEY)]);
    let svc = cgm_push::from_config(&cfg).await?;
    let client = svc.store().client().clone();
    let table = stack.table("READINGS_TABLE").to_string();
    let (mut handler, mut bare) = (Vec::with_capacity(n), Vec::with_capacity(n));
    let zone = cfg.source_timezone;
    for i in 0..(n + 200) {
        let a = body(&format!("h-{i}"), i as u64);
        let req = push_request(&a, &format!("key={BENCH_KEY}"), "203.0.113.10");
        let t = Instant::now();
        let resp = svc.handle(req).await;
        let dh = t.elapsed();
        anyhow::ensure!(resp.status() == 200, "handler answered {}", resp.status());

        let b = body(&format!("b-{i}"), i as u64);
        let t = Instant::now();
        // What the handler cannot avoid doing either: parse, map, one conditional write.
        let reading = parse_push(b.as_bytes(), &zone).map_err(|e| anyhow::anyhow!("{e}"))?;
        let item = reading_item(&reading, &Arrival { received_at_ms: 0, request_id: String::new() });
        client
            .put_item()
            .table_name(&table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(testId)")
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await?;
        let db = t.elapsed();
        if i >= 200 {
            handler.push(dh);
            bare.push(db);
        }
    }
    let (h, b) = (summarize(&handler), summarize(&bare));
    let ratio = |x: Duration, y: Duration| x.as_secs_f64() / y.as_secs_f64();
    let mut o = String::new();
    writeln!(o, "### 1. Handler overhead (N = {n} each, interleaved, after 200 warm-up pairs)\n")?;
    writeln!(o, "| | median | p99 |\n|---|---|---|")?;
    writeln!(o, "| push handler (lambda_http request → reply) | {} | {} |", ms(h.median), ms(h.p99))?;
    writeln!(o, "| parse + item + bare conditional PutItem | {} | {} |", ms(b.median), ms(b.p99))?;
    writeln!(
        o,
        "| **ratio** (target ≤ 1.10 / ≤ 1.25) | **{:.3}** | **{:.3}** |\n",
        ratio(h.median, b.median),
        ratio(h.p99, b.p99)
    )?;
    Ok(o)
}

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

/// A push key as long as the push function requires inside Lambda.
const BENCH_KEY: &str = "bench-key-0123456789abcdef0123456789";
const BENCH_KEY_PARAM: &str = "/cgm-bench/push-key";

/// The release push binary as Lambda runs it: its key read at cold start from an SSM
/// stand-in (part of what a cold start costs).
fn lambda_command(api: &RuntimeApi, stack: &Stack, ssm: &FakeSsm) -> anyhow::Result<tokio::process::Command> {
    let mut cmd = tokio::process::Command::new(release_binary("push")?);
    cmd.env_clear()
        .env("AWS_LAMBDA_RUNTIME_API", api.addr.to_string())
        .env("AWS_LAMBDA_FUNCTION_NAME", "push")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_LOG_FORMAT", "JSON")
        .env("PUSH_KEY_PARAM", BENCH_KEY_PARAM)
        .env("AWS_ENDPOINT_URL_SSM", &ssm.url)
        .env("DYNAMODB_ENDPOINT", &stack.endpoint)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    for (k, v) in &stack.table_vars {
        cmd.env(k, v);
    }
    Ok(cmd)
}

fn event(i: usize) -> String {
    let mut e: Value = serde_json::from_str(cgm_tests::PUSH_EVENT).expect("fixture");
    e["body"] = json!(body(&format!("lambda-{}-{i}", uuid::Uuid::new_v4().simple()), i as u64));
    e["rawQueryString"] = json!(&format!("key={BENCH_KEY}"));
    e.to_string()
}

/// Figure 3: exec → first `next` (init) and exec → first response with its DynamoDB write.
pub async fn cold_start(runs: usize) -> anyhow::Result<String> {
    let stack = Stack::new().await;
    let ssm = FakeSsm::start(&[(BENCH_KEY_PARAM, BENCH_KEY)]).await;
    let (mut init, mut first) = (Vec::new(), Vec::new());
    for r in 0..runs {
        let api = RuntimeApi::start().await?;
        api.push(format!("req-{r}"), event(r));
        let t0 = Instant::now();
        let mut child = lambda_command(&api, &stack, &ssm)?.spawn()?;
        tokio::time::timeout(Duration::from_secs(20), api.wait_for(1)).await?;
        let _ = child.kill().await;
        anyhow::ensure!(api.errors().is_empty(), "the function reported errors: {:?}", api.errors());
        let resp = api.responses();
        anyhow::ensure!(resp[0].2.contains(r#"\"code\":0"#), "unexpected reply {}", resp[0].2);
        init.push(api.first_next().unwrap_or(t0) - t0);
        first.push(resp[0].1 - t0);
    }
    let (i, f) = (summarize(&init), summarize(&first));
    let mut o = String::new();
    writeln!(o, "### 3. Cold start: release `push` binary, Runtime API stand-in on loopback, {runs} runs\n")?;
    // The slowest run, not p99: of 20 runs an interpolated p99 lies between the two slowest.
    writeln!(o, "| | median | max of {runs} |\n|---|---|---|")?;
    writeln!(o, "| exec → first `GET …/invocation/next` (init; target ≤ 20 ms) | {} | {} |", ms(i.median), ms(i.max))?;
    writeln!(
        o,
        "| exec → first response, DynamoDB write included (target ≤ 30 ms) | {} | {} |\n",
        ms(f.median),
        ms(f.max)
    )?;
    Ok(o)
}

/// Figure 4: peak RSS of one `push` process over `n` invocations.
pub async fn memory(n: usize) -> anyhow::Result<String> {
    let stack = Stack::new().await;
    let ssm = FakeSsm::start(&[(BENCH_KEY_PARAM, BENCH_KEY)]).await;
    let api = RuntimeApi::start().await?;
    for i in 0..n {
        api.push(format!("m-{i}"), event(i));
    }
    let t0 = Instant::now();
    let mut child = lambda_command(&api, &stack, &ssm)?.spawn()?;
    let pid = child.id().unwrap_or_default();
    tokio::time::timeout(Duration::from_secs(600), api.wait_for(n)).await?;
    let took = t0.elapsed();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |k: &str| {
        status.lines().find(|l| l.starts_with(k)).and_then(|l| l.split_whitespace().nth(1)).unwrap_or("?").to_string()
    };
    let (hwm, rss) = (field("VmHWM:"), field("VmRSS:"));
    let _ = child.kill().await;
    let errors = api.errors().len();
    let mut o = String::new();
    writeln!(o, "### 4. Memory: one `push` process, {n} invocations in a row\n")?;
    writeln!(
        o,
        "| peak RSS (VmHWM; target ≤ 32 MB) | RSS at the end | invocations/s (sequential) | errors |\n|---|---|---|---|"
    )?;
    writeln!(
        o,
        "| {:.1} MB | {:.1} MB | {:.0} | {errors} |\n",
        hwm.parse::<f64>().unwrap_or(0.0) / 1024.0,
        rss.parse::<f64>().unwrap_or(0.0) / 1024.0,
        n as f64 / took.as_secs_f64()
    )?;
    Ok(o)
}

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

/// Figure 5: sizes of the arm64 `bootstrap` files `sam build` left, and their zips.
pub fn size() -> anyhow::Result<String> {
    let root = cgm_local::repo_root();
    let out =
        std::process::Command::new(root.join("tools/check-build.sh")).arg(root.join(".aws-sam/build")).output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    anyhow::ensure!(out.status.success(), "tools/check-build.sh failed (run `make sam-build` first): {text}");
    let mut o = String::from(
        "### 5. Size of the arm64 artifacts (`sam build`; targets: bootstrap ≤ 8 MB, zip ≤ 4 MB)\n\n| function | bootstrap | zip |\n|---|---|---|\n",
    );
    for l in text.lines() {
        // check-build: <Fn> bootstrap <n> bytes, zip <m> bytes (arm64)
        let w: Vec<&str> = l.split_whitespace().collect();
        if w.len() >= 7 && w[2] == "bootstrap" {
            let mb = |s: &str| s.trim_end_matches(',').parse::<f64>().unwrap_or(0.0) / 1_048_576.0;
            writeln!(o, "| {} | {:.2} MB | {:.2} MB |", w[1], mb(w[3]), mb(w[6]))?;
        }
    }
    o.push('\n');
    Ok(o)
}

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

/// Pushes `readings` of one sensor, 3 minutes apart and ending at `last_at`, through the
/// push route at concurrency 32, each body with `extra` fields laid over it.
async fn push_sensor(
    http: &reqwest::Client,
    push_url: &str,
    sn: &'static str,
    readings: usize,
    last_at: i64,
    extra: Value,
) -> anyhow::Result<()> {
    const MIN3: i64 = 180_000;
    let next = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..32)
        .map(|_| {
            let (http, url, next, extra) = (http.clone(), push_url.to_string(), next.clone(), extra.clone());
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= readings {
                        return anyhow::Ok(());
                    }
                    let at = last_at - (readings - 1 - i) as i64 * MIN3;
                    let local =
                        chrono::DateTime::from_timestamp_millis(at).expect("an instant") + chrono::Duration::hours(8);
                    let mut fields = json!({
                        "testId": format!("{sn}-{i}"), "deviceSn": sn, "serialNo": i + 1, "status": "0",
                        "testTime": local.format("%Y-%m-%d %H:%M:%S").to_string(),
                        "testResult": format!("{:.1}", 4.0 + (i * 7 % 80) as f64 / 10.0), "increMinute": 3,
                    });
                    if let (Some(f), Some(e)) = (fields.as_object_mut(), extra.as_object()) {
                        f.extend(e.clone());
                    }
                    let r = http
                        .post(&url)
                        .header("content-type", "application/json")
                        .body(seed_with(fields))
                        .send()
                        .await?;
                    anyhow::ensure!(r.status() == 200, "push {i}: {}", r.status());
                }
            })
        })
        .collect();
    for w in workers {
        w.await??;
    }
    Ok(())
}

/// Figure 11: the FHIR read API on the local stack with one 15-day sensor (7,200 readings,
/// its session naming a patient): a search page of 1,000 readings, the page after it, a
/// poll of the last hour, a 14-day summary computed from the rollups, and the sensor.
pub async fn fhir(runs: usize) -> anyhow::Result<String> {
    const SN: &str = "BENCH-FHIR-15D";
    const READINGS: usize = 15 * 480;
    const MIN3: i64 = 180_000;
    let log = std::fs::File::create(cgm_local::repo_root().join("target/bench-fhir-cgm-dev.log"))?;
    let (mut cmd, base) = cgm_dev("warn", log)?;
    let mut child = cmd.spawn()?;
    let push_url = format!("{base}/sinocare/cgm?key={BENCH_KEY}");
    let http = reqwest::Client::builder().pool_max_idle_per_host(32).build()?;
    until_serving(&http, &push_url).await?;
    let last_at = chrono::Utc::now().timestamp_millis() / MIN3 * MIN3;
    push_sensor(&http, &push_url, SN, READINGS, last_at, json!({"patientId": "BENCH-MPI-1"})).await?;
    // The session (which names the patient) and the rollups come from the stream consumer.
    let zone = cgm_domain::time::SourceZone::default();
    let today = zone.local_date(cgm_domain::time::Timestamp(last_at)).ok_or_else(|| anyhow::anyhow!("a day"))?;
    let (first, last) = (today - chrono::Duration::days(14), today - chrono::Duration::days(1));
    let summary = format!("/fhir/Observation?device={SN}&code=107931-8&date=ge{first}&date=le{last}");
    let waited = Instant::now();
    loop {
        let r = http.get(format!("{base}{summary}")).send().await?;
        let b: Value = if r.status() == 200 { r.json().await? } else { Value::Null };
        let days = b["entry"]
            .as_array()
            .and_then(|e| e.iter().map(|e| &e["resource"]).find(|o| o["code"]["coding"][0]["code"] == "104636-6"));
        if days.is_some_and(|o| o["valueQuantity"]["value"] == 14) {
            break;
        }
        anyhow::ensure!(waited.elapsed() < Duration::from_secs(300), "the stream consumer did not catch up");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let first_page = format!("{base}/fhir/Observation?device={SN}&_count=1000");
    let r: Value = http.get(&first_page).send().await?.json().await?;
    let second_page = r["link"]
        .as_array()
        .and_then(|l| l.iter().find(|l| l["relation"] == "next"))
        .and_then(|l| l["url"].as_str())
        .ok_or_else(|| anyhow::anyhow!("the first page has no next link"))?
        .to_string();
    let hour_ago = chrono::DateTime::from_timestamp_millis(last_at - 3_600_000)
        .ok_or_else(|| anyhow::anyhow!("an instant"))?
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let cases = [
        ("`Observation?device=…&_count=1000` (the first page)", first_page),
        ("the page after it (its `next` link)", second_page),
        (
            "`Observation?device=…&date=gt<1 h ago>` (a poll)",
            format!("{base}/fhir/Observation?device={SN}&date=gt{hour_ago}"),
        ),
        ("`Observation?code=107931-8` over 14 whole days (summary and members)", format!("{base}{summary}")),
        (
            "`DiagnosticReport?…` over the same 14 days (the summary's PDF report and the summary)",
            format!("{base}/fhir/DiagnosticReport?device={SN}&date=ge{first}&date=le{last}"),
        ),
        ("`Device/{id}`", format!("{base}/fhir/Device/{SN}")),
    ];
    let mut rows = Vec::new();
    for (name, url) in &cases {
        let mut lat = Vec::new();
        let (mut entries, mut bytes) = (0, 0);
        for i in 0..=runs {
            let t = Instant::now();
            let r = http.get(url).send().await?;
            anyhow::ensure!(r.status() == 200, "{name}: {}", r.status());
            let body = r.bytes().await?;
            if i > 0 {
                lat.push(t.elapsed());
            }
            bytes = body.len();
            let v: Value = serde_json::from_slice(&body)?;
            entries = v["entry"].as_array().map_or(1, Vec::len);
        }
        let s = summarize(&lat);
        rows.push(format!(
            "| {name} | {entries} | {:.0} KB | {} | {} |",
            bytes as f64 / 1024.0,
            ms(s.median),
            ms(s.p99)
        ));
    }
    let submissions = submit_runs(SN, 3).await?;
    let _ = child.kill().await;
    let mut o = String::new();
    writeln!(o, "### 11. FHIR read API: one 15-day sensor, release `cgm-dev`\n")?;
    writeln!(
        o,
        "{READINGS} readings pushed through the push route (its session naming a patient, its days rolled up), then \
         each request {runs} times after one warm-up, one at a time over HTTP/1.1 keep-alive; latency to the whole body.\n"
    )?;
    writeln!(o, "| request | entries | body | p50 | p99 |")?;
    writeln!(o, "|---|---|---|---|---|")?;
    for r in rows {
        writeln!(o, "{r}")?;
    }
    writeln!(o)?;
    writeln!(o, "### 12. FHIR submission: the same sensor to a stand-in EHR, end to end\n")?;
    writeln!(
        o,
        "The submitter (release, in the bench's process) from its cold start: SMART discovery, a token for an ES384 \
         client assertion, then every valid reading in bundles of 500 with `ifNoneExist`, and the one whole 14-day \
         summary with its PDF, to the stand-in EHR (`cgm-ehr`, in-process, conditional create) on loopback; checkpoints in \
         DynamoDB Local. Each run starts with no checkpoint and an empty EHR.\n"
    )?;
    writeln!(o, "| run | readings accepted | bundles | wall time | readings/s |")?;
    writeln!(o, "|---|---|---|---|---|")?;
    for r in submissions {
        writeln!(o, "{r}")?;
    }
    writeln!(o)?;
    Ok(o)
}

/// `runs` submissions of device `sn` (already pushed and rolled up in cgm-dev's tables) to a
/// fresh stand-in EHR each, from the submitter's cold start: one row each.
async fn submit_runs(sn: &str, runs: usize) -> anyhow::Result<Vec<String>> {
    use cgm_fhir_submit::checkpoints::{CheckpointStore, Kind};
    let mut rows = Vec::new();
    // Between runs the checkpoints are deleted with one client, made once.
    let local = cgm_shared::Config::from_lookup(|k| (k == "DYNAMODB_ENDPOINT").then(cgm_tests::endpoint))?;
    let client = cgm_shared::aws::dynamodb(
        &cgm_shared::aws::sdk_config(&local).await,
        Some(&cgm_tests::endpoint()),
        cgm_shared::aws::CallLimits::READ,
    );
    for run in 1..=runs {
        let ehr = cgm_tests::fake_ehr::FakeEhr::start(cgm_tests::fake_ehr::TestKey::es384()).await;
        let base = ehr.base();
        let env: std::collections::HashMap<&str, String> = [
            ("DYNAMODB_ENDPOINT", cgm_tests::endpoint()),
            ("FHIR_EHR_BASE_URL", base),
            ("FHIR_CLIENT_ID", cgm_tests::fake_ehr::CLIENT_ID.to_string()),
            ("FHIR_CLIENT_KEY_ID", cgm_tests::fake_ehr::KEY_ID.to_string()),
            ("FHIR_CLIENT_SIGNING_ALG", "ES384".to_string()),
            ("FHIR_CLIENT_PRIVATE_KEY", ehr.private_pem().to_string()),
            ("FHIR_PATIENT_IDENTIFIER_SYSTEM", "urn:bench:mpi".to_string()),
            ("AGP_FONT_DIR", cgm_local::font_dir().display().to_string()),
        ]
        .into_iter()
        .collect();
        let cfg = cgm_shared::Config::from_lookup(|k| env.get(k).cloned())?;
        let t = Instant::now();
        let submitter = cgm_fhir_submit::from_config(&cfg).await?;
        let sn_id = cgm_domain::ids::DeviceSn::from(sn);
        let until = Instant::now() + Duration::from_secs(600);
        let report = submitter.run_device(&sn_id, cgm_domain::time::Timestamp::now(), until).await?;
        let took = t.elapsed();
        anyhow::ensure!(report.unfinished == 0, "run {run} left work: {report:?}");
        let readings = submitter.checkpoints().get(&sn_id, Kind::Readings).await?.accepted;
        rows.push(format!(
            "| {run} | {readings} | {} | {} | {:.0} |",
            report.bundles,
            ms(took),
            readings as f64 / took.as_secs_f64()
        ));
        // The next run starts from nothing.
        for kind in [Kind::Readings, Kind::Summary] {
            let c = submitter.checkpoints().get(&sn_id, kind).await?;
            anyhow::ensure!(kind == Kind::Summary || c.accepted > 0, "run {run} moved no readings checkpoint");
            client
                .delete_item()
                .table_name(&cfg.tables.submissions)
                .key("deviceSn", aws_sdk_dynamodb::types::AttributeValue::S(sn.to_string()))
                .key("kind", aws_sdk_dynamodb::types::AttributeValue::S(kind.as_str().to_string()))
                .send()
                .await?;
        }
    }
    Ok(rows)
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

/// Figure 9: alerts on the local stack. Release `cgm-dev` (its stream consumer reads
/// DynamoDB Local's stream every 250 ms, as Lambda's poller does about four times a second)
/// takes `rate` pushes a second for `seconds` from `sensors` sensors, each sensor's readings
/// 3 minutes apart and ending now, every other one below 3.0 mmol/L: each reading opens an
/// urgent low or resolves it, so each one has an event to wait for. The lag is from the push's
/// acknowledgement to the event's line on cgm-dev's stdout (its printing sink).
pub async fn alerts(rate: usize, seconds: usize, sensors: usize) -> anyhow::Result<String> {
    use cgm_shared::store::attr;
    use std::collections::HashMap;
    use std::sync::Mutex;
    use tokio::io::AsyncBufReadExt;

    const MIN3: i64 = 180_000;
    let endpoint = cgm_tests::endpoint();
    let log = cgm_local::repo_root().join("target/bench-alerts-cgm-dev.log");
    let (mut cmd, base) = cgm_dev("info", std::fs::File::create(&log)?)?;
    let mut child = cmd
        // The readings are 3 minutes apart and end now, so most were measured long before
        // they arrive: with the default 10 minutes they would all be late and raise nothing.
        .env("ALERT_MAX_AGE_MINUTES", "1440")
        .stdout(Stdio::piped())
        .spawn()?;
    let seen: Arc<Mutex<HashMap<(String, i64), Instant>>> = Arc::default();
    let events = Arc::new(AtomicUsize::new(0));
    let batch_lines: Arc<Mutex<Vec<Value>>> = Arc::default();
    let stdout = child.stdout.take().ok_or_else(|| anyhow::anyhow!("cgm-dev's stdout"))?;
    let reader = {
        let (seen, events, batch_lines) = (seen.clone(), events.clone(), batch_lines.clone());
        tokio::spawn(async move {
            let mut lines = tokio::io::BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                // Its log lines (JSON, on stdout as in Lambda) and the printed events.
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    if v["message"] == "stream batch" {
                        batch_lines.lock().expect("lock").push(v);
                    }
                    continue;
                }
                let Some(rest) = line.strip_prefix("event cgm.alert.") else { continue };
                let Some((_, detail)) = rest.split_once(' ') else { continue };
                let Ok(d) = serde_json::from_str::<Value>(detail) else { continue };
                if let (Some(sn), Some(at)) = (d["device_sn"].as_str(), d["at"].as_i64()) {
                    seen.lock().expect("lock").entry((sn.to_string(), at)).or_insert_with(Instant::now);
                    events.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
    };
    let push_url = format!("{base}/sinocare/cgm?key={BENCH_KEY}");
    let http = reqwest::Client::builder().pool_max_idle_per_host(64).build()?;
    until_serving(&http, &push_url).await?;

    let total = rate * seconds;
    let per_sensor = total.div_ceil(sensors);
    let last_at = chrono::Utc::now().timestamp_millis() / MIN3 * MIN3;
    let run = uuid::Uuid::new_v4().simple().to_string()[..6].to_string();
    let acked: Arc<Mutex<Vec<(String, i64, Instant)>>> = Arc::default();
    let failed = Arc::new(AtomicUsize::new(0));
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let started = Instant::now();
    let mut sends = Vec::with_capacity(total);
    for i in 0..total {
        tick.tick().await;
        // Round robin over the sensors: reading k of each sensor goes out in round k.
        let (sensor, k) = (i % sensors, i / sensors);
        let sn = format!("BA{run}{sensor:04}");
        let at = last_at - (per_sensor - 1 - k) as i64 * MIN3;
        let local = chrono::DateTime::from_timestamp_millis(at).expect("an instant") + chrono::Duration::hours(8);
        let mmol = if k % 2 == 0 { "2.5" } else { "6.0" };
        let b = seed_with(json!({
            "testId": format!("{sn}-{k}"), "deviceSn": sn, "serialNo": k + 1, "status": "0", "cgmStatus": "2",
            "testTime": local.format("%Y-%m-%d %H:%M:%S").to_string(), "testResult": mmol, "increMinute": 3,
            "cgmDay": 15,
        }));
        let (http, url, acked, failed) = (http.clone(), push_url.clone(), acked.clone(), failed.clone());
        sends.push(tokio::spawn(async move {
            let ok = match http.post(&url).header("content-type", "application/json").body(b).send().await {
                Ok(r) => r.status() == 200 && r.json::<Value>().await.map(|v| v["code"] == 0).unwrap_or(false),
                Err(_) => false,
            };
            if ok {
                acked.lock().expect("lock").push((sn, at, Instant::now()));
            } else {
                failed.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for s in sends {
        s.await?;
    }
    let offered = started.elapsed();
    anyhow::ensure!(failed.load(Ordering::Relaxed) == 0, "{} pushes failed", failed.load(Ordering::Relaxed));
    let drained_from = Instant::now();
    let missing = || {
        let seen = seen.lock().expect("lock");
        acked.lock().expect("lock").iter().filter(|(sn, at, _)| !seen.contains_key(&(sn.clone(), *at))).count()
    };
    loop {
        let left = missing();
        if left == 0 {
            break;
        }
        anyhow::ensure!(
            drained_from.elapsed() < Duration::from_secs(300),
            "{left} of {total} readings had no alert event after 300 s ({} events in all)",
            events.load(Ordering::Relaxed)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let drain = drained_from.elapsed();
    let _ = child.kill().await;
    reader.abort();

    let seen = seen.lock().expect("lock").clone();
    let mut lag = Vec::new();
    for (sn, at, t) in acked.lock().expect("lock").iter() {
        let e = seen.get(&(sn.clone(), *at)).ok_or_else(|| anyhow::anyhow!("no event for {sn} at {at}"))?;
        lag.push(e.saturating_duration_since(*t));
    }
    let lag = summarize(&lag);

    // The consumer's own account of its batches (its "stream batch" lines).
    let (mut batches, mut records, mut devices, mut busy_ms) = (0u64, 0u64, 0u64, 0.0f64);
    for f in batch_lines.lock().expect("lock").iter() {
        batches += 1;
        records += f["records"].as_u64().unwrap_or(0);
        devices += f["devices"].as_u64().unwrap_or(0);
        busy_ms += f["latency_ms"].as_f64().unwrap_or(0.0);
    }
    anyhow::ensure!(batches > 0, "cgm-dev logged no stream batch line (its stderr: {})", log.display());

    // What one session update costs: the consistent GetItem and the versioned PutItem of a
    // session item as the run left it.
    let stack = Stack::new_at(&endpoint).await;
    let key = |sn: &str| HashMap::from([(attr::DEVICE_SN.to_string(), attr::s(sn))]);
    let sn = format!("BA{run}0000");
    let got = stack
        .client
        .get_item()
        .table_name("SensorsTable")
        .set_key(Some(key(&sn)))
        .consistent_read(true)
        .return_consumed_capacity(aws_sdk_dynamodb::types::ReturnConsumedCapacity::Total)
        .send()
        .await?;
    let rcu = got.consumed_capacity().and_then(|c| c.capacity_units()).unwrap_or(0.0);
    let mut item = got.item.ok_or_else(|| anyhow::anyhow!("no session item for {sn}"))?;
    let bytes = attr::item_bytes(&item);
    item.insert(attr::DEVICE_SN.to_string(), attr::s(&format!("{sn}-COST")));
    let put = stack
        .client
        .put_item()
        .table_name("SensorsTable")
        .set_item(Some(item))
        .return_consumed_capacity(aws_sdk_dynamodb::types::ReturnConsumedCapacity::Total)
        .send()
        .await?;
    let wcu = put.consumed_capacity().and_then(|c| c.capacity_units()).unwrap_or(0.0);
    let per_device = records as f64 / devices.max(1) as f64;

    let mut o = String::new();
    writeln!(o, "### 9. Alerts: push to alert event, release `cgm-dev` on DynamoDB Local's stream\n")?;
    writeln!(
        o,
        "{total} pushes offered at {rate}/s ({:.1} s) from {sensors} sensors, each sensor's readings 3 minutes apart \
         and ending now, every other one 2.5 mmol/L: each reading opens an urgent low or resolves it. The lag runs \
         from the push's `code` 0 at the client to the event's line on cgm-dev's stdout. The last event came {:.2} s \
         after the last push.\n",
        offered.as_secs_f64(),
        drain.as_secs_f64()
    )?;
    writeln!(o, "| push acknowledged → alert event | p50 | p95 | p99 | max |")?;
    writeln!(o, "|---|---|---|---|---|")?;
    writeln!(o, "| lag | {} | {} | {} | {} |\n", ms(lag.median), ms(lag.p95), ms(lag.p99), ms(lag.max))?;
    writeln!(
        o,
        "The consumer handled {records} records in {batches} batches ({:.1} records and {:.1} devices a batch), \
         busy {:.0} ms in all: **{:.0} records/s** while busy (every step: rollups, sessions, events). \
         One session update is a consistent GetItem ({rcu} RCU) and a versioned PutItem ({wcu} WCU: the item and its entries in the sensors \
         table's indexes) of a {:.1} KB item, once per device per batch: {:.2} RCU + {:.2} WCU per reading at {per_device:.1} readings of \
         a device a batch, as here; one sensor pushing live (one reading a batch) pays the whole {rcu} + {wcu}.\n",
        records as f64 / batches as f64,
        devices as f64 / batches as f64,
        busy_ms,
        records as f64 / (busy_ms / 1e3),
        bytes as f64 / 1024.0,
        rcu / per_device,
        wcu / per_device,
    )?;
    writeln!(
        o,
        "Before alerts were evaluated independently of arrival order (issue 25; measured 2026-12-02 on this machine): \
         lag p50 138.59 ms, p99 845.82 ms; 242 records/s; a 0.3 KB session. The order-independent evaluation adds no \
         read: the alert window (the readings of the last `ALERT_MAX_AGE_MINUTES` + `ALERT_STREAM_LAG_MINUTES` by \
         measured time, about 30 bytes each) and the outbox live in the session item the consumer already reads and \
         writes, so it costs item size, not requests: at the defaults (10 + 30 minutes, 14 readings 3 minutes apart) \
         about 0.7 KB, one RCU and one WCU per 4 KB and 1 KB of it. This run's window is {} minutes \
         (`ALERT_MAX_AGE_MINUTES` 1440, so backlog readings count), the costliest case.\n",
        1440 + cgm_domain::alerts::AlertSettings::default().stream_lag_minutes,
    )?;
    Ok(o)
}

/// Figure 10: the Nightscout feed on the local stack. Release `cgm-dev` holding one 15-day
/// sensor (7,200 readings 3 minutes apart, ending now, pushed through the push route); the
/// entries a follower asks for, `runs` times each after a warm-up.
pub async fn nightscout(runs: usize) -> anyhow::Result<String> {
    const SN: &str = "BENCH-NS-15D";
    const READINGS: usize = 15 * 480;
    const MIN3: i64 = 180_000;
    let log = std::fs::File::create(cgm_local::repo_root().join("target/bench-nightscout-cgm-dev.log"))?;
    let (mut cmd, base) = cgm_dev("warn", log)?;
    let mut child = cmd.spawn()?;
    let push_url = format!("{base}/sinocare/cgm?key={BENCH_KEY}");
    let http = reqwest::Client::builder().pool_max_idle_per_host(32).build()?;
    until_serving(&http, &push_url).await?;
    let last_at = chrono::Utc::now().timestamp_millis() / MIN3 * MIN3;
    push_sensor(&http, &push_url, SN, READINGS, last_at, json!({})).await?;
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
