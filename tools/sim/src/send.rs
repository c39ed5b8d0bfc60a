//! Delivering a [`Workload`] the way Sinocare's cloud does: a bounded number of requests in
//! flight, a reading re-sent when no `code` 0 came back within the client timeout (5 s),
//! with exponential backoff and jitter, within a bounded number of attempts and time; some
//! acknowledged readings sent once more as duplicates.

use crate::rng::{Rng, mix};
use crate::stats::Summary;
use crate::{SimReading, Workload};
use reqwest::header::{HeaderMap, HeaderValue};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;

/// How to send.
#[derive(Debug, Clone)]
pub struct SendConfig {
    /// The push URL, with `?key=` when the route needs one and `api_key` is not used.
    pub url: String,
    /// The push key for the `x-api-key` header, from [`api_key`] (marked sensitive, so a
    /// `{:?}` of the config shows no key).
    pub api_key: Option<HeaderValue>,
    /// Requests in flight at most.
    pub concurrency: usize,
    /// Live-stream requests per second at most; `None` sends as fast as `concurrency` allows.
    /// Re-sends, duplicates and the backlog burst are not paced.
    pub rate: Option<f64>,
    /// Sinocare waits 5 s for `code` 0, then re-sends.
    pub timeout: Duration,
    /// Attempts per delivery, the first included.
    pub max_attempts: u32,
    /// No re-send starts later than this after a delivery's first attempt.
    pub give_up_after: Duration,
    /// The wait before the first re-send; doubled for each further one, up to `backoff_max`.
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// Seeds the backoff jitter.
    pub seed: u64,
}

impl SendConfig {
    /// Sinocare-like settings for `url`.
    pub fn new(url: impl Into<String>) -> Self {
        SendConfig {
            url: url.into(),
            api_key: None,
            concurrency: 16,
            rate: None,
            timeout: Duration::from_secs(5),
            max_attempts: 10,
            give_up_after: Duration::from_secs(15 * 60),
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
            seed: 0,
        }
    }

    /// The wait after failed attempt `attempt` (1-based): half the exponential step fixed,
    /// half random ("equal jitter"), so re-sends spread out but always back off.
    pub fn backoff(&self, attempt: u32, rng: &mut Rng) -> Duration {
        let step = self.backoff_base.saturating_mul(1u32 << attempt.saturating_sub(1).min(20)).min(self.backoff_max);
        step / 2 + step.mul_f64(0.5 * rng.unit())
    }
}

/// Running totals, readable while a run goes on (the progress line, tests).
#[derive(Debug, Default)]
pub struct Counters {
    /// Requests sent (first sends, re-sends and duplicates).
    pub sent: AtomicU64,
    /// Readings acknowledged (their first delivery).
    pub acked: AtomicU64,
    /// Requests that repeated an unacknowledged delivery.
    pub resends: AtomicU64,
    /// Failed requests of any kind.
    pub errors: AtomicU64,
    /// Of the errors: answers with HTTP 503.
    pub unavailable: AtomicU64,
    pub duplicates_sent: AtomicU64,
    pub in_flight: AtomicU64,
}

impl Counters {
    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }

    fn add(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }
}

/// Failed requests by kind.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Errors {
    /// No answer within the client timeout.
    pub timeout: u64,
    /// The connection could not be made (refused, unreachable).
    pub connect: u64,
    /// The connection broke (reset, closed early) after it was made.
    pub transport: u64,
    /// Answers with an HTTP status other than 2xx, by status.
    pub http_status: BTreeMap<u16, u64>,
    /// 2xx answers with a `code` other than 0, by code.
    pub nonzero_code: BTreeMap<i64, u64>,
    /// 2xx answers that are not `{"code": …}` JSON.
    pub bad_reply: u64,
}

impl Errors {
    pub fn total(&self) -> u64 {
        self.timeout
            + self.connect
            + self.transport
            + self.bad_reply
            + self.http_status.values().sum::<u64>()
            + self.nonzero_code.values().sum::<u64>()
    }
}

/// What a run did.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The push URL with its key hidden.
    pub url: String,
    pub readings: u64,
    /// Requests of every kind.
    pub sent: u64,
    /// Readings that got `code` 0.
    pub acknowledged: u64,
    /// Readings that never got `code` 0: lost, as far as Sinocare would know.
    pub unacknowledged: u64,
    /// Requests repeating an unacknowledged delivery.
    pub resends: u64,
    pub duplicates_sent: u64,
    pub duplicates_acknowledged: u64,
    pub backlog: u64,
    pub elapsed_s: f64,
    pub requests_per_s: f64,
    /// Time from a request to its answer, over every answered request (503s included).
    pub latency_ms: Summary,
    /// Time from a reading's first send to its acknowledgement, re-sends included.
    pub time_to_ack_ms: Summary,
    pub errors: Errors,
    /// The first unacknowledged testIds (at most 20).
    pub unacknowledged_test_ids: Vec<String>,
}

impl Report {
    pub fn complete(&self) -> bool {
        self.unacknowledged == 0
    }

    /// The report for people.
    pub fn text(&self) -> String {
        let l = &self.latency_ms;
        let t = &self.time_to_ack_ms;
        let mut out = format!(
            "cgm-sim report: {url}\n\
             \x20 readings        {readings} ({backlog} in the backlog burst)\n\
             \x20 sent            {sent} requests in {elapsed:.1} s ({rps:.0}/s)\n\
             \x20 acknowledged    {acked} of {readings} readings{missing}\n\
             \x20 re-sends        {resends}\n\
             \x20 duplicates      {dups} sent, {dups_acked} acknowledged\n\
             \x20 latency ms      p50 {lp50:.1}  p95 {lp95:.1}  p99 {lp99:.1}  max {lmax:.1}  ({lcount} answers)\n\
             \x20 time to ack ms  p50 {tp50:.1}  p95 {tp95:.1}  p99 {tp99:.1}  max {tmax:.1}\n",
            url = self.url,
            readings = self.readings,
            backlog = self.backlog,
            sent = self.sent,
            elapsed = self.elapsed_s,
            rps = self.requests_per_s,
            acked = self.acknowledged,
            missing = if self.unacknowledged > 0 {
                format!("  ({} NEVER ACKNOWLEDGED)", self.unacknowledged)
            } else {
                String::new()
            },
            resends = self.resends,
            dups = self.duplicates_sent,
            dups_acked = self.duplicates_acknowledged,
            lp50 = l.p50,
            lp95 = l.p95,
            lp99 = l.p99,
            lmax = l.max,
            lcount = l.count,
            tp50 = t.p50,
            tp95 = t.p95,
            tp99 = t.p99,
            tmax = t.max,
        );
        let e = &self.errors;
        if e.total() == 0 {
            out.push_str("  errors          none\n");
        } else {
            out.push_str(&format!("  errors          {}\n", e.total()));
            let mut line = |what: &str, n: u64| {
                if n > 0 {
                    out.push_str(&format!("    {what:<22} {n}\n"));
                }
            };
            line("timeout (5 s)", e.timeout);
            line("connect", e.connect);
            line("transport", e.transport);
            line("bad reply", e.bad_reply);
            for (status, n) in &e.http_status {
                line(&format!("http status {status}"), *n);
            }
            for (code, n) in &e.nonzero_code {
                line(&format!("code {code}"), *n);
            }
        }
        if !self.unacknowledged_test_ids.is_empty() {
            out.push_str(&format!("  never acknowledged: {}\n", self.unacknowledged_test_ids.join(", ")));
        }
        out
    }
}

/// The push key as the `x-api-key` header value, marked sensitive.
pub fn api_key(key: &str) -> Result<HeaderValue, SendError> {
    let mut v = HeaderValue::from_str(key).map_err(|_| SendError::KeyNotAHeader)?;
    v.set_sensitive(true);
    Ok(v)
}

/// Whether `url` has a `key=` query parameter (of any case, as [`redact_url`] hides).
pub fn url_has_key(url: &str) -> bool {
    let query = url.split_once('?').map_or("", |(_, q)| q);
    let query = query.split_once('#').map_or(query, |(q, _)| q);
    query.split('&').any(|p| p.split_once('=').map_or(p, |(k, _)| k).eq_ignore_ascii_case("key"))
}

/// The URL with the value of `key=` hidden, for printing.
pub fn redact_url(url: &str) -> String {
    let Some((base, query)) = url.split_once('?') else { return url.to_string() };
    let parts: Vec<String> = query
        .split('&')
        .map(|p| match p.split_once('=') {
            Some((k, _)) if k.eq_ignore_ascii_case("key") => format!("{k}=***"),
            _ => p.to_string(),
        })
        .collect();
    format!("{base}?{}", parts.join("&"))
}

#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("cannot build the HTTP client: {0}")]
    Client(#[source] reqwest::Error),
    #[error("concurrency must be at least 1")]
    Concurrency,
    #[error("the push key holds characters an HTTP header cannot carry")]
    KeyNotAHeader,
}

/// What one request came to.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Attempt {
    Ack,
    Timeout,
    Connect,
    Transport,
    Status(u16),
    Code(i64),
    BadReply,
}

struct Shared {
    client: reqwest::Client,
    cfg: SendConfig,
    counters: Arc<Counters>,
    permits: Arc<Semaphore>,
    latencies: Mutex<Vec<f64>>,
    errors: Mutex<Errors>,
}

/// One delivery's end: acknowledged or given up, and when.
struct Delivered {
    acked: bool,
    time_to_ack: Option<Duration>,
}

/// One reading's end.
struct ReadingEnd {
    test_id: String,
    acked: bool,
    time_to_ack: Option<Duration>,
    duplicate_acked: Option<bool>,
}

/// Sends every reading of `work` and reports. `counters` may be watched while it runs.
pub async fn send_all(work: &Workload, cfg: &SendConfig, counters: Arc<Counters>) -> Result<Report, SendError> {
    if cfg.concurrency == 0 {
        return Err(SendError::Concurrency);
    }
    let mut headers = HeaderMap::new();
    if let Some(key) = &cfg.api_key {
        headers.insert("x-api-key", key.clone());
    }
    let client = reqwest::Client::builder()
        .default_headers(headers)
        .timeout(cfg.timeout)
        .pool_max_idle_per_host(cfg.concurrency)
        .user_agent(concat!("cgm-sim/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(SendError::Client)?;
    let shared = Arc::new(Shared {
        client,
        cfg: cfg.clone(),
        counters: counters.clone(),
        permits: Arc::new(Semaphore::new(cfg.concurrency)),
        latencies: Mutex::new(Vec::with_capacity(work.readings.len())),
        errors: Mutex::new(Errors::default()),
    });

    let started = Instant::now();
    let mut pacer = cfg.rate.filter(|r| *r > 0.0).map(|r| {
        let mut i = tokio::time::interval(Duration::from_secs_f64(1.0 / r));
        i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        i
    });
    let mut tasks = JoinSet::new();
    for (i, r) in work.readings.iter().enumerate() {
        if i < work.live
            && let Some(p) = pacer.as_mut()
        {
            p.tick().await;
        }
        // Taken here so readings start in order; released by the task after its request.
        let Ok(permit) = shared.permits.clone().acquire_owned().await else { break };
        tasks.spawn(deliver_reading(shared.clone(), r.clone(), i as u64, permit));
    }
    let mut ends = Vec::with_capacity(work.readings.len());
    while let Some(end) = tasks.join_next().await {
        // A task panicking is a bug in this tool; it must not pass for a lost reading.
        ends.push(end.expect("a delivery task panicked"));
    }
    let elapsed = started.elapsed();

    let sent = Counters::get(&counters.sent);
    let acked = ends.iter().filter(|e| e.acked).count() as u64;
    let unacked: Vec<&ReadingEnd> = ends.iter().filter(|e| !e.acked).collect();
    let latencies = std::mem::take(&mut *shared.latencies.lock().unwrap_or_else(|p| p.into_inner()));
    let errors = shared.errors.lock().unwrap_or_else(|p| p.into_inner()).clone();
    Ok(Report {
        url: redact_url(&cfg.url),
        readings: work.readings.len() as u64,
        sent,
        acknowledged: acked,
        unacknowledged: unacked.len() as u64,
        resends: Counters::get(&counters.resends),
        duplicates_sent: Counters::get(&counters.duplicates_sent),
        duplicates_acknowledged: ends.iter().filter(|e| e.duplicate_acked == Some(true)).count() as u64,
        backlog: (work.readings.len() - work.live) as u64,
        elapsed_s: (elapsed.as_secs_f64() * 1000.0).round() / 1000.0,
        requests_per_s: (sent as f64 / elapsed.as_secs_f64().max(1e-9) * 10.0).round() / 10.0,
        latency_ms: Summary::of(latencies),
        time_to_ack_ms: Summary::of(
            ends.iter().filter_map(|e| e.time_to_ack).map(|d| d.as_secs_f64() * 1000.0).collect(),
        ),
        errors,
        unacknowledged_test_ids: unacked.iter().take(20).map(|e| e.test_id.clone()).collect(),
    })
}

async fn deliver_reading(shared: Arc<Shared>, r: SimReading, index: u64, permit: OwnedSemaphorePermit) -> ReadingEnd {
    let mut rng = Rng::new(shared.cfg.seed ^ mix(index));
    let first = deliver(&shared, &r.body, Some(permit), false, &mut rng).await;
    if first.acked {
        Counters::add(&shared.counters.acked);
    }
    // Sinocare does not guarantee a single send: an acknowledged reading may come again.
    let duplicate_acked = if r.duplicate && first.acked {
        Some(deliver(&shared, &r.body, None, true, &mut rng).await.acked)
    } else {
        None
    };
    ReadingEnd { test_id: r.test_id, acked: first.acked, time_to_ack: first.time_to_ack, duplicate_acked }
}

async fn deliver(
    shared: &Shared,
    body: &str,
    mut permit: Option<OwnedSemaphorePermit>,
    duplicate: bool,
    rng: &mut Rng,
) -> Delivered {
    let cfg = &shared.cfg;
    let c = &shared.counters;
    let started = Instant::now();
    for attempt in 1..=cfg.max_attempts.max(1) {
        let held = match permit.take() {
            Some(p) => p,
            None => match shared.permits.clone().acquire_owned().await {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        Counters::add(&c.sent);
        if attempt > 1 {
            Counters::add(&c.resends);
        } else if duplicate {
            Counters::add(&c.duplicates_sent);
        }
        c.in_flight.fetch_add(1, Ordering::Relaxed);
        let (result, latency) = attempt_once(&shared.client, &cfg.url, body).await;
        c.in_flight.fetch_sub(1, Ordering::Relaxed);
        drop(held);
        if let Some(l) = latency {
            shared.latencies.lock().unwrap_or_else(|p| p.into_inner()).push(l.as_secs_f64() * 1000.0);
        }
        if result == Attempt::Ack {
            return Delivered { acked: true, time_to_ack: Some(started.elapsed()) };
        }
        record_error(shared, result);
        if attempt == cfg.max_attempts {
            break;
        }
        let wait = cfg.backoff(attempt, rng);
        if started.elapsed() + wait > cfg.give_up_after {
            break;
        }
        tokio::time::sleep(wait).await;
    }
    Delivered { acked: false, time_to_ack: None }
}

fn record_error(shared: &Shared, a: Attempt) {
    let c = &shared.counters;
    Counters::add(&c.errors);
    let mut e = shared.errors.lock().unwrap_or_else(|p| p.into_inner());
    match a {
        Attempt::Ack => {}
        Attempt::Timeout => e.timeout += 1,
        Attempt::Connect => e.connect += 1,
        Attempt::Transport => e.transport += 1,
        Attempt::BadReply => e.bad_reply += 1,
        Attempt::Status(s) => {
            if s == 503 {
                Counters::add(&c.unavailable);
            }
            *e.http_status.entry(s).or_default() += 1;
        }
        Attempt::Code(code) => *e.nonzero_code.entry(code).or_default() += 1,
    }
}

/// One POST; the latency is that of an answer, `None` when none came.
async fn attempt_once(client: &reqwest::Client, url: &str, body: &str) -> (Attempt, Option<Duration>) {
    let t0 = Instant::now();
    let resp = match client
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body.to_string())
        .send()
        .await
    {
        Ok(r) => r,
        Err(e) => return (classify(&e), None),
    };
    let status = resp.status();
    let bytes = match resp.bytes().await {
        Ok(b) => b,
        Err(e) => return (classify(&e), None),
    };
    let latency = Some(t0.elapsed());
    if !status.is_success() {
        return (Attempt::Status(status.as_u16()), latency);
    }
    (judge_reply(&bytes), latency)
}

/// A 2xx body: `code` 0 (a number or `"0"`) acknowledges.
fn judge_reply(bytes: &[u8]) -> Attempt {
    let code = serde_json::from_slice::<serde_json::Value>(bytes).ok().and_then(|v| match v.get("code")? {
        serde_json::Value::Number(n) => n.as_i64(),
        serde_json::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    });
    match code {
        Some(0) => Attempt::Ack,
        Some(c) => Attempt::Code(c),
        None => Attempt::BadReply,
    }
}

fn classify(e: &reqwest::Error) -> Attempt {
    if e.is_timeout() {
        Attempt::Timeout
    } else if e.is_connect() {
        Attempt::Connect
    } else {
        Attempt::Transport
    }
}

/// Prints one line a second to stderr while `counters` move: sent, acknowledged, re-sends,
/// errors. Stop it by aborting the task.
pub fn progress(counters: Arc<Counters>, readings: u64) -> tokio::task::JoinHandle<()> {
    use std::io::IsTerminal;
    let tty = std::io::stderr().is_terminal();
    tokio::spawn(async move {
        let started = Instant::now();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.tick().await;
        loop {
            tick.tick().await;
            let line = format!(
                "cgm-sim {:>5.0}s  sent {}  acked {}/{}  resends {}  errors {}  in flight {}",
                started.elapsed().as_secs_f64(),
                Counters::get(&counters.sent),
                Counters::get(&counters.acked),
                readings,
                Counters::get(&counters.resends),
                Counters::get(&counters.errors),
                Counters::get(&counters.in_flight),
            );
            if tty {
                eprint!("\r{line}\x1b[K");
            } else {
                eprintln!("{line}");
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_up_to_the_cap() {
        let mut cfg = SendConfig::new("http://127.0.0.1:1/");
        cfg.backoff_base = Duration::from_millis(1000);
        cfg.backoff_max = Duration::from_millis(8000);
        let mut rng = Rng::new(3);
        for (attempt, step) in [(1, 1000), (2, 2000), (3, 4000), (4, 8000), (5, 8000), (30, 8000)] {
            for _ in 0..50 {
                let d = cfg.backoff(attempt, &mut rng).as_millis() as u64;
                assert!((step / 2..=step).contains(&d), "attempt {attempt}: {d} ms");
            }
        }
    }

    #[test]
    fn replies_are_judged_by_code() {
        assert_eq!(judge_reply(br#"{"code":0,"msg":""}"#), Attempt::Ack);
        assert_eq!(judge_reply(br#"{"code":"0"}"#), Attempt::Ack);
        assert_eq!(judge_reply(br#"{"code":503,"msg":"x"}"#), Attempt::Code(503));
        assert_eq!(judge_reply(b"<html>ok</html>"), Attempt::BadReply);
        assert_eq!(judge_reply(br#"{"msg":""}"#), Attempt::BadReply);
    }

    #[test]
    fn a_key_in_the_url_is_found_whatever_its_case() {
        assert!(url_has_key("https://x/sinocare/cgm?key=s3cr3t"));
        assert!(url_has_key("http://h/p?a=1&KEY=z#frag"));
        assert!(!url_has_key("http://h/p?keys=1&monkey=2"));
        assert!(!url_has_key("http://h/p#key=1"));
        assert!(!url_has_key("http://h/p"));
    }

    #[test]
    fn the_key_is_hidden_when_printed() {
        assert_eq!(redact_url("https://x/sinocare/cgm?key=s3cr3t"), "https://x/sinocare/cgm?key=***");
        assert_eq!(redact_url("http://h/p?a=1&KEY=z&b=2"), "http://h/p?a=1&KEY=***&b=2");
        assert_eq!(redact_url("http://h/p"), "http://h/p");
    }
}
