//! Summaries of a set of durations. Percentiles are [`cgm_domain::stats::percentile`]:
//! linear interpolation between closest ranks, the project's one definition.

use cgm_domain::stats::percentile;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    pub median: Duration,
    pub p95: Duration,
    pub p99: Duration,
    pub max: Duration,
}

/// All zero for no samples.
pub fn summarize(samples: &[Duration]) -> Summary {
    // Nanoseconds as f64 are exact up to 2^53 ns (104 days); an interpolated percentile
    // is rounded back to the nanosecond.
    let mut ns: Vec<f64> = samples.iter().map(|d| d.as_nanos() as f64).collect();
    ns.sort_by(f64::total_cmp);
    let at = |p: f64| percentile(&ns, p).map_or(Duration::ZERO, |v| Duration::from_nanos(v.round() as u64));
    Summary { median: at(50.0), p95: at(95.0), p99: at(99.0), max: at(100.0) }
}

pub fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

pub fn us(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interpolated_percentiles() {
        let us = Duration::from_micros;
        let s: Vec<Duration> = (1..=100).rev().map(Duration::from_millis).collect();
        // h = 99 · p / 100: 49.5, 94.05, 98.01
        assert_eq!(summarize(&s), Summary { median: us(50_500), p95: us(95_050), p99: us(99_010), max: us(100_000) });
        // Twenty cold starts: p99 (h = 18.81) is no longer the slowest run.
        let twenty: Vec<Duration> = (1..=20).map(Duration::from_millis).collect();
        let t = summarize(&twenty);
        assert_eq!((t.median, t.p99, t.max), (us(10_500), us(19_810), us(20_000)));
        let zero = Duration::ZERO;
        assert_eq!(summarize(&[]), Summary { median: zero, p95: zero, p99: zero, max: zero });
    }
}
