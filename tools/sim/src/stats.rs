//! Percentiles for the report.

/// The `p`th percentile (0–100) of `sorted` (ascending) by the nearest-rank method: the
/// smallest value with at least `p`% of the values at or below it. `None` when empty.
pub fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let n = sorted.len();
    let rank = ((p.clamp(0.0, 100.0) / 100.0) * n as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, n) - 1])
}

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
    fn nearest_rank_percentiles() {
        let hundred: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&hundred, 50.0), Some(50.0));
        assert_eq!(percentile(&hundred, 95.0), Some(95.0));
        assert_eq!(percentile(&hundred, 99.0), Some(99.0));
        assert_eq!(percentile(&hundred, 100.0), Some(100.0));
        assert_eq!(percentile(&hundred, 0.0), Some(1.0));
        assert_eq!(percentile(&[7.0], 99.0), Some(7.0));
        assert_eq!(percentile(&[], 50.0), None);
        // 10 values: p95 and p99 are both the largest (rank 10), p50 the 5th.
        let ten: Vec<f64> = (1..=10).map(f64::from).collect();
        assert_eq!(
            (percentile(&ten, 50.0), percentile(&ten, 95.0), percentile(&ten, 99.0)),
            (Some(5.0), Some(10.0), Some(10.0))
        );
    }

    #[test]
    fn summary_sorts_its_samples() {
        let s = Summary::of(vec![3.0, 1.0, 2.0, 100.0]);
        assert_eq!(s, Summary { count: 4, p50: 2.0, p95: 100.0, p99: 100.0, max: 100.0 });
        assert_eq!(Summary::of(vec![]), Summary::default());
    }
}
