//! `cgm-sim`: Sinocare's cloud against a push URL. See the README's "Simulator" section.
//!
//! Exit status: 0 when every reading was acknowledged, 1 when any never was, 2 for a usage
//! error.

use anyhow::Context;
use cgm_sim::send::{self, Counters, SendConfig};
use cgm_sim::{FULL_WEAR_READINGS, Plan, generate};
use chrono::{NaiveDateTime, Timelike, Utc};
use clap::Parser;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// Behaves like Sinocare's IoT cloud against a push URL: N sensors over their wear period,
/// one reading every 3 minutes, re-sent until `code` 0 comes back within 5 s.
#[derive(Debug, Parser)]
#[command(name = "cgm-sim", version)]
struct Args {
    /// The push URL, with `?key=<push key>` when the route needs one.
    #[arg(long)]
    url: String,
    /// Sensors to simulate.
    #[arg(long, default_value_t = 10)]
    sensors: usize,
    /// Readings per sensor; a full 15-day wear period is 7200.
    #[arg(long, default_value_t = 480)]
    readings_per_sensor: usize,
    /// Share of readings (0–1) sent once more after they were acknowledged.
    #[arg(long, default_value_t = 0.02)]
    duplicate_rate: f64,
    /// Requests in flight at most.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Readings held back (sensors out of reach) and sent in one burst after the live stream.
    #[arg(long, default_value_t = 0)]
    backlog: usize,
    /// Attempts per delivery, the first included.
    #[arg(long, default_value_t = 10)]
    max_attempts: u32,
    /// Seed for the readings and the jitter; the same seed and start give the same bodies.
    /// Default: from the clock (printed in the report).
    #[arg(long)]
    seed: Option<u64>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// Live-stream requests per second at most (0: as fast as --concurrency allows).
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// The first sensor's first `testTime` (China Standard Time, `yyyy-MM-dd HH:mm:ss`).
    /// Default: so that the last readings are about now.
    #[arg(long, value_parser = parse_time)]
    start: Option<NaiveDateTime>,
    /// Client timeout per request, ms (Sinocare: 5000).
    #[arg(long, default_value_t = 5000)]
    timeout_ms: u64,
    /// Wait before the first re-send, ms; doubled for each further one.
    #[arg(long, default_value_t = 1000)]
    backoff_ms: u64,
    /// Longest wait between re-sends, ms.
    #[arg(long, default_value_t = 60_000)]
    backoff_max_ms: u64,
    /// No re-send starts later than this many seconds after a delivery's first attempt.
    #[arg(long, default_value_t = 900)]
    give_up_after_s: u64,
    /// No progress line on stderr.
    #[arg(long)]
    quiet: bool,
}

fn parse_time(s: &str) -> Result<NaiveDateTime, String> {
    NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").map_err(|_| "expected yyyy-MM-dd HH:mm:ss".to_string())
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cgm-sim: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(run(args)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("cgm-sim: {e:#}");
            ExitCode::from(2)
        }
    }
}

async fn run(args: Args) -> anyhow::Result<bool> {
    if !(args.url.starts_with("http://") || args.url.starts_with("https://")) {
        anyhow::bail!("--url must be an http:// or https:// URL");
    }
    let seed = args.seed.unwrap_or_else(|| Utc::now().timestamp_nanos_opt().unwrap_or_default() as u64);
    let start = args.start.unwrap_or_else(|| {
        // China Standard Time now, less the simulated period, to the minute.
        let china_now = (Utc::now() + chrono::Duration::hours(8)).naive_utc();
        let period = chrono::Duration::minutes(args.readings_per_sensor as i64 * cgm_sim::INCRE_MINUTE);
        let t = china_now - period;
        t.with_second(0).and_then(|t| t.with_nanosecond(0)).unwrap_or(t)
    });
    let plan = Plan {
        sensors: args.sensors,
        readings_per_sensor: args.readings_per_sensor,
        duplicate_rate: args.duplicate_rate,
        backlog: args.backlog,
        seed,
        start,
    };
    let work = generate(&plan).context("the plan")?;
    let mut cfg = SendConfig::new(&args.url);
    cfg.concurrency = args.concurrency;
    cfg.rate = (args.rate > 0.0).then_some(args.rate);
    cfg.timeout = Duration::from_millis(args.timeout_ms);
    cfg.max_attempts = args.max_attempts.max(1);
    cfg.backoff_base = Duration::from_millis(args.backoff_ms);
    cfg.backoff_max = Duration::from_millis(args.backoff_max_ms.max(args.backoff_ms));
    cfg.give_up_after = Duration::from_secs(args.give_up_after_s);
    cfg.seed = seed;

    if !args.quiet {
        eprintln!(
            "cgm-sim: {} readings from {} sensors ({} per sensor; a full wear is {}), {} duplicates, {} in the backlog, to {} (seed {seed}, start {start})",
            work.readings.len(),
            plan.sensors,
            plan.readings_per_sensor,
            FULL_WEAR_READINGS,
            work.duplicates(),
            work.readings.len() - work.live,
            send::redact_url(&args.url),
        );
    }
    let counters = Arc::new(Counters::default());
    let progress = (!args.quiet).then(|| send::progress(counters.clone(), work.readings.len() as u64));
    let report = send::send_all(&work, &cfg, counters).await?;
    if let Some(p) = progress {
        p.abort();
        eprintln!();
    }
    if args.json {
        let mut v = serde_json::to_value(&report)?;
        v["seed"] = seed.into();
        v["sensors"] = plan.sensors.into();
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        print!("{}", report.text());
        println!("  seed            {seed} (start {start})");
    }
    Ok(report.complete())
}
