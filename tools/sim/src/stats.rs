//! The report's latency summaries. Percentiles are [`cgm_domain::stats::percentile`]:
//! linear interpolation between closest ranks, the project's one definition.

use cgm_domain::stats::percentile;

/// p50, p95, p99 and max of some samples (in any order).
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct Summary {
    pub count: usize,
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
}

impl Summary {
    pub fn of(mut samples: Vec<f64>) -> Summary {
        samples.sort_by(f64::total_cmp);
        let at = |p| percentile(&samples, p).map_or(0.0, round3);
        Summary { count: samples.len(), p50: at(50.0), p95: at(95.0), p99: at(99.0), max: at(100.0) }
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interpolated_percentiles_rounded_to_microseconds() {
        let hundred: Vec<f64> = (1..=100).map(f64::from).collect();
        // h = 99 · p / 100: 49.5, 94.05, 98.01
        assert_eq!(Summary::of(hundred), Summary { count: 100, p50: 50.5, p95: 95.05, p99: 99.01, max: 100.0 });
        // h = 9 · p / 100: 4.5, 8.55, 8.91
        let ten: Vec<f64> = (1..=10).map(f64::from).collect();
        assert_eq!(Summary::of(ten), Summary { count: 10, p50: 5.5, p95: 9.55, p99: 9.91, max: 10.0 });
        assert_eq!(Summary::of(vec![7.0]), Summary { count: 1, p50: 7.0, p95: 7.0, p99: 7.0, max: 7.0 });
    }

    #[test]
    fn summary_sorts_its_samples() {
        // Sorted: 1, 2, 3, 100; h = 3 · p / 100: 1.5, 2.85, 2.97
        let s = Summary::of(vec![3.0, 1.0, 2.0, 100.0]);
        assert_eq!(s, Summary { count: 4, p50: 2.5, p95: 85.45, p99: 97.09, max: 100.0 });
        assert_eq!(Summary::of(vec![]), Summary::default());
    }
}
