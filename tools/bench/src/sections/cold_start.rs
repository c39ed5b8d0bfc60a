use super::{BENCH_KEY, BENCH_KEY_PARAM, event, lambda_command};
use crate::stats::{ms, summarize};
use cgm_tests::Stack;
use cgm_tests::fake_ssm::FakeSsm;
use cgm_tests::runtime_api::RuntimeApi;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

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
