//! One function per figure in BENCHMARKS.md; each returns its markdown. One file per section;
//! what several sections share (the release `cgm-dev`, the push Lambda's command, pushing a
//! sensor's readings) lives here.

mod alerts;
mod cold_start;
mod end_to_end;
mod fhir;
mod memory;
mod nightscout;
mod overhead;
mod proxy;
mod reads;
mod size;

pub use alerts::alerts;
pub use cold_start::cold_start;
pub use end_to_end::end_to_end;
pub use fhir::fhir;
pub use memory::memory;
pub use nightscout::nightscout;
pub use overhead::overhead;
pub use proxy::proxy;
pub use reads::reads_at_scale;
pub use size::size;

use cgm_tests::fake_ssm::FakeSsm;
use cgm_tests::runtime_api::RuntimeApi;
use cgm_tests::{Stack, seed_with};
use serde_json::{Value, json};
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

/// A 15-day sensor on a release `cgm-dev` of its own: the server, its base URL, a client,
/// and when its last reading was measured (ms).
struct LiveSensor {
    child: tokio::process::Child,
    base: String,
    http: reqwest::Client,
    last_at: i64,
}

/// The readings of a 15-day sensor, one every 3 minutes.
const SENSOR_READINGS: usize = 15 * 480;

/// Starts `cgm-dev` (stderr in `target/bench-<tag>-cgm-dev.log`) and pushes it
/// [`SENSOR_READINGS`] readings of `sn`, 3 minutes apart and ending now, through the push
/// route, with `extra` laid over each body.
async fn live_sensor(tag: &str, sn: &'static str, extra: Value) -> anyhow::Result<LiveSensor> {
    const MIN3: i64 = 180_000;
    let log = std::fs::File::create(cgm_local::repo_root().join(format!("target/bench-{tag}-cgm-dev.log")))?;
    let (mut cmd, base) = cgm_dev("warn", log)?;
    let child = cmd.spawn()?;
    let push_url = format!("{base}/sinocare/cgm?key={BENCH_KEY}");
    let http = reqwest::Client::builder().pool_max_idle_per_host(32).build()?;
    until_serving(&http, &push_url).await?;
    let last_at = chrono::Utc::now().timestamp_millis() / MIN3 * MIN3;
    push_sensor(&http, &push_url, sn, SENSOR_READINGS, last_at, extra).await?;
    Ok(LiveSensor { child, base, http, last_at })
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
