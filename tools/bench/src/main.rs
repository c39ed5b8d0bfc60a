//! `cgm-bench` (what `make bench` runs): measures the push path's overhead over a bare
//! DynamoDB write, end-to-end throughput of the local server, the release binaries' cold
//! start and memory against a Lambda Runtime API stand-in, the partner proxy's added
//! latency and paging cost, and the deployed artifacts' sizes; then rewrites the figures
//! in BENCHMARKS.md between its markers.
//!
//! Needs `DYNAMODB_ENDPOINT` (the Makefile runs it under `with-dynamodb-local`) and the
//! release binaries (`target/release/push`, `target/release/cgm-dev`).

mod runtime_api;
mod sections;
mod stats;

use std::fmt::Write as _;

const START: &str = "<!-- bench:start -->";
const END: &str = "<!-- bench:end -->";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let only = |name: &str| args.is_empty() || args.iter().any(|a| a == name);
    let mut out = String::new();
    let machine = machine();
    writeln!(out, "Measured {} on {machine}.\n", chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"))?;

    if only("overhead") {
        out += &sections::overhead(2_000).await?;
    }
    if only("e2e") {
        out += &sections::end_to_end(20_000, 32).await?;
    }
    if only("cold-start") {
        out += &sections::cold_start(20).await?;
    }
    if only("memory") {
        out += &sections::memory(10_000).await?;
    }
    if only("proxy") {
        out += &sections::proxy(2_000).await?;
    }
    if only("size") {
        out += &sections::size()?;
    }
    print!("{out}");
    if args.iter().any(|a| a == "--no-write") {
        return Ok(());
    }
    let path = cgm_local::repo_root().join("BENCHMARKS.md");
    let doc = std::fs::read_to_string(&path)?;
    let (Some(a), Some(b)) = (doc.find(START), doc.find(END)) else {
        anyhow::bail!("BENCHMARKS.md lacks the {START} / {END} markers");
    };
    let new = format!("{}{START}\n{out}{}", &doc[..a], &doc[b..]);
    std::fs::write(&path, new)?;
    eprintln!("cgm-bench: figures written to BENCHMARKS.md");
    Ok(())
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    format!("{cores} cores ({cpu}), {}", std::env::consts::ARCH)
}
