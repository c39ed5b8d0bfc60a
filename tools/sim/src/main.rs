//! `cgm-sim`: Sinocare's cloud against a push URL. See the README's "Simulator" section.
//!
//! Exit status: 0 when every reading was acknowledged, 1 when any never was, 2 for a usage
//! error.
//!
//! The push key comes either in the URL (`?key=`) or from `CGM_SIM_PUSH_KEY`, sent as the
//! `x-api-key` header so it need not be on the command line. Not `PUSH_KEY`: that is the
//! server's setting, which may hold two keys during a rotation, and one exported for
//! `make dev` would otherwise go to whatever URL the simulator is pointed at.

use anyhow::Context;
use cgm_sim::send::{self, Counters, SendConfig};
use cgm_sim::{FULL_WEAR_READINGS, Plan, Stretch, generate};
use chrono::{NaiveDateTime, Timelike, Utc};
use clap::Parser;
use reqwest::header::HeaderValue;
use std::ffi::OsString;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// Behaves like Sinocare's IoT cloud against a push URL: N sensors over their wear period,
/// one reading every 3 minutes, re-sent until `code` 0 comes back within 5 s.
#[derive(Debug, Parser)]
#[command(name = "cgm-sim", version, after_help = ENVIRONMENT)]
struct Args {
    /// The push URL, with `?key=<push key>` when the route needs one and CGM_SIM_PUSH_KEY
    /// is not set.
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
    /// Make every sensor go low: FROM+MINUTES after its first reading, glucose falls below
    /// 3.0 mmol/L (urgent low) and comes back (a stretch of 30 minutes or more reaches the
    /// full depth).
    #[arg(long, value_parser = Stretch::parse, value_name = "FROM+MINUTES")]
    low: Option<Stretch>,
    /// Make every sensor go silent: the readings FROM+MINUTES after its first reading are
    /// never sent. Reaching past the end, the sensor stays silent (signal lost).
    #[arg(long, value_parser = Stretch::parse, value_name = "FROM+MINUTES")]
    silent: Option<Stretch>,
    /// No progress line on stderr.
    #[arg(long)]
    quiet: bool,
}

const PUSH_KEY_VAR: &str = "CGM_SIM_PUSH_KEY";

const ENVIRONMENT: &str = "\
Environment:
  CGM_SIM_PUSH_KEY  the push key, sent in the x-api-key header, so it need not be on the
                    command line; instead of, not as well as, a key= in --url. Never
                    printed.";

/// The key for the `x-api-key` header: `from_env` (CGM_SIM_PUSH_KEY's value) unless it is
/// unset or empty. Refused together with a `key=` in the URL: the push route would take the
/// header's and ignore the other, so a mismatch would look like a wrong key.
fn push_key(url: &str, from_env: Option<OsString>) -> anyhow::Result<Option<HeaderValue>> {
    let Some(key) = from_env.filter(|k| !k.is_empty()) else { return Ok(None) };
    let Some(key) = key.to_str() else { anyhow::bail!("{PUSH_KEY_VAR} is not valid UTF-8") };
    if send::url_has_key(url) {
        anyhow::bail!("the push key is given twice, in --url (key=) and in {PUSH_KEY_VAR}: give it in one place");
    }
    Ok(Some(send::api_key(key).context(PUSH_KEY_VAR)?))
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
    let api_key = push_key(&args.url, std::env::var_os(PUSH_KEY_VAR))?;
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
        low: args.low,
        silent: args.silent,
    };
    let work = generate(&plan).context("the plan")?;
    let mut cfg = SendConfig::new(&args.url);
    let key_note = if api_key.is_some() { format!(" with the key from {PUSH_KEY_VAR}") } else { String::new() };
    cfg.api_key = api_key;
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
            "cgm-sim: {} readings from {} sensors ({} per sensor; a full wear is {}), {} duplicates, {} in the backlog, to {}{key_note} (seed {seed}, start {start})",
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_comes_from_the_environment_or_the_url_not_both() {
        let url = "http://127.0.0.1:3000/sinocare/cgm";
        let key = push_key(url, Some("k-env".into())).unwrap().expect("a header key");
        assert_eq!(key.to_str().unwrap(), "k-env");
        assert!(key.is_sensitive());
        assert_eq!(format!("{key:?}"), "Sensitive", "a {{:?}} of the config shows no key");
        assert_eq!(push_key(url, None).unwrap(), None);
        assert_eq!(push_key(url, Some("".into())).unwrap(), None, "empty is unset");
        assert_eq!(push_key(&format!("{url}?key=k-url"), None).unwrap(), None, "the URL's key is left to the URL");

        let e = push_key(&format!("{url}?key=k-url"), Some("k-env".into())).unwrap_err().to_string();
        assert!(e.contains("given twice") && !e.contains("k-env") && !e.contains("k-url"), "{e}");
        let e = format!("{:#}", push_key(url, Some("k\nv".into())).unwrap_err());
        assert!(e.contains(PUSH_KEY_VAR) && !e.contains('\n'), "{e}");
    }
}
