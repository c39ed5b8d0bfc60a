use super::{BENCH_KEY, BENCH_KEY_PARAM, event, lambda_command};
use cgm_tests::Stack;
use cgm_tests::fake_ssm::FakeSsm;
use cgm_tests::runtime_api::RuntimeApi;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

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
