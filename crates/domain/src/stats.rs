//! The project's one percentile definition, for latency figures and glucose reports alike.
//!
//! Linear interpolation between closest ranks: Hyndman & Fan's type 7, the definition that
//! numpy's default (`method="linear"`), R's `quantile(type = 7)` and Excel's
//! `PERCENTILE.INC` use. For ascending `x[0..n)` and `p` in 0–100:
//!
//! ```text
//! h = (n - 1) · p / 100
//! Q(p) = x[⌊h⌋] + (h - ⌊h⌋) · (x[⌊h⌋ + 1] - x[⌊h⌋])
//! ```
//!
//! so `Q(0)` is the minimum, `Q(100)` the maximum, and the median of an even count is the
//! mean of the middle two. It is offered over a sorted slice ([`percentile`]) and over
//! counted values ([`percentile_of_counts`], for daily rollups); both locate the two ranks
//! and interpolate with the same code, so the same multiset gives the same bits either way.

/// The `p`th percentile (0–100) of `sorted`, which must be in ascending order, by linear
/// interpolation between closest ranks (see the module). `None` when `sorted` is empty or
/// `p` is outside 0–100 or NaN.
pub fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    let (lo, frac) = rank(sorted.len() as u64, p)?;
    let lo = lo as usize;
    Some(interpolate(sorted[lo], sorted.get(lo + 1).copied(), frac))
}

/// The same percentile as [`percentile`] of the slice in which each `(value, count)` appears
/// `count` times, without building that slice: `counts` must be ascending by value (equal
/// values may repeat; zero counts are skipped). `None` when the counts add up to zero or
/// overflow `u64`, or `p` is outside 0–100 or NaN.
pub fn percentile_of_counts(counts: &[(f64, u64)], p: f64) -> Option<f64> {
    let n = counts.iter().try_fold(0u64, |sum, &(_, c)| sum.checked_add(c))?;
    let (lo, frac) = rank(n, p)?;
    // Walk the cumulative counts to the value at rank `lo` and the one after it.
    let mut present = counts.iter().filter(|(_, c)| *c > 0);
    let mut below = 0u64;
    for &(value, count) in present.by_ref() {
        if lo < below + count {
            let next = if lo + 1 < below + count { Some(value) } else { present.next().map(|&(v, _)| v) };
            return Some(interpolate(value, next, frac));
        }
        below += count;
    }
    None
}

/// `h = (n - 1) · p / 100` as its whole part (a 0-based rank) and fraction. The product is
/// taken before the division so that a whole-number `p` lands exactly on a rank when it
/// should (0.95 has no exact binary form; 95 does).
fn rank(n: u64, p: f64) -> Option<(u64, f64)> {
    if n == 0 || !(0.0..=100.0).contains(&p) {
        return None;
    }
    let h = (n - 1) as f64 * p / 100.0;
    let whole = h.floor();
    Some(((whole as u64).min(n - 1), h - whole))
}

fn interpolate(at: f64, next: Option<f64>, frac: f64) -> f64 {
    match next {
        // An exact rank needs no neighbour (and must not turn ±∞ into NaN through 0 · ∞).
        Some(next) if frac > 0.0 => at + frac * (next - at),
        _ => at,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(got: Option<f64>, want: f64) {
        let got = got.expect("a percentile");
        assert!((got - want).abs() < 1e-9, "got {got}, want {want}");
    }

    #[test]
    fn hand_computed_values() {
        let four = [1.0, 2.0, 3.0, 4.0];
        // h = 3 · p / 100: 0.75, 1.5, 2.25
        close(percentile(&four, 25.0), 1.75);
        close(percentile(&four, 50.0), 2.5);
        close(percentile(&four, 75.0), 3.25);
        assert_eq!(percentile(&four, 0.0), Some(1.0));
        assert_eq!(percentile(&four, 100.0), Some(4.0));

        let hundred: Vec<f64> = (1..=100).map(f64::from).collect();
        // h = 99 · p / 100: 49.5, 94.05, 98.01
        close(percentile(&hundred, 50.0), 50.5);
        close(percentile(&hundred, 95.0), 95.05);
        close(percentile(&hundred, 99.0), 99.01);

        let ten: Vec<f64> = (1..=10).map(f64::from).collect();
        // h = 9 · 0.95 = 8.55: between the 9th and the 10th value
        close(percentile(&ten, 95.0), 9.55);
        assert_eq!(percentile(&ten, 50.0), Some(5.5));

        // Ties: h = 3 · 0.9 = 2.7, between 5 and 10
        close(percentile(&[5.0, 5.0, 5.0, 10.0], 90.0), 8.5);
        assert_eq!(percentile(&[5.0, 5.0, 5.0, 10.0], 50.0), Some(5.0));
        assert_eq!(percentile(&[7.0], 99.0), Some(7.0));
    }

    #[test]
    fn counts_give_the_same_hand_computed_values() {
        close(percentile_of_counts(&[(5.0, 3), (10.0, 1)], 90.0), 8.5);
        assert_eq!(percentile_of_counts(&[(5.0, 3), (10.0, 1)], 50.0), Some(5.0));
        // [2, 2, 4, 4] with empty bins around and between: h = 1.5, between the 2s and 4s
        let sparse = [(1.0, 0), (2.0, 2), (3.0, 0), (4.0, 2), (5.0, 0)];
        assert_eq!(percentile_of_counts(&sparse, 50.0), Some(3.0));
        assert_eq!(percentile_of_counts(&sparse, 0.0), Some(2.0));
        assert_eq!(percentile_of_counts(&sparse, 100.0), Some(4.0));
        // A day of 3-minute readings in 0.1 mmol/L bins: 480 readings, h = 479 · p / 100
        let day = [(4.4, 120), (5.6, 240), (7.8, 100), (11.1, 20)];
        assert_eq!(percentile_of_counts(&day, 5.0), Some(4.4), "h = 23.95, inside the first bin");
        close(percentile_of_counts(&day, 25.0), 4.4 + 0.75 * (5.6 - 4.4)); // h = 119.75
        assert_eq!(percentile_of_counts(&day, 95.0), Some(7.8), "h = 455.05, inside the third bin");
        close(percentile_of_counts(&day, 95.9), 7.8 + 0.361 * (11.1 - 7.8)); // h = 459.361
        assert_eq!(percentile_of_counts(&[(6.0, u64::MAX)], 50.0), Some(6.0));
    }

    #[test]
    fn nothing_to_rank_or_no_such_percentile_is_none() {
        assert_eq!(percentile(&[], 50.0), None);
        assert_eq!(percentile_of_counts(&[], 50.0), None);
        assert_eq!(percentile_of_counts(&[(1.0, 0), (2.0, 0)], 50.0), None);
        assert_eq!(percentile_of_counts(&[(1.0, u64::MAX), (2.0, 1)], 50.0), None, "overflow");
        for p in [-0.1, 100.1, f64::NAN, f64::INFINITY] {
            assert_eq!(percentile(&[1.0, 2.0], p), None, "p = {p}");
            assert_eq!(percentile_of_counts(&[(1.0, 1), (2.0, 1)], p), None, "p = {p}");
        }
    }

    #[test]
    fn an_exact_rank_is_its_value_even_next_to_infinity() {
        assert_eq!(percentile(&[1.0, f64::INFINITY], 0.0), Some(1.0));
        assert_eq!(percentile_of_counts(&[(1.0, 1), (f64::INFINITY, 1)], 0.0), Some(1.0));
    }
}

#[cfg(test)]
mod props {
    use super::*;
    use proptest::prelude::*;

    /// A multiset as counts ascending by value, the bins empty ones included, and the same
    /// multiset expanded into a sorted slice.
    fn multiset() -> impl Strategy<Value = (Vec<(f64, u64)>, Vec<f64>)> {
        // Glucose-like values on a 0.1 grid, so bins repeat, with counts up to a day's worth.
        proptest::collection::vec((22u32..=222, 0u64..=480), 1..40).prop_map(|bins| {
            let mut bins: Vec<(f64, u64)> = bins.into_iter().map(|(v, c)| (f64::from(v) / 10.0, c)).collect();
            bins.sort_by(|a, b| a.0.total_cmp(&b.0));
            let expanded = bins.iter().flat_map(|&(v, c)| std::iter::repeat_n(v, c as usize)).collect();
            (bins, expanded)
        })
    }

    fn any_p() -> impl Strategy<Value = f64> {
        prop_oneof![
            0.0..=100.0f64,
            // The ones reports ask for, which often land exactly on a rank.
            prop::sample::select(vec![0.0, 5.0, 10.0, 25.0, 50.0, 75.0, 90.0, 95.0, 99.0, 100.0]),
        ]
    }

    proptest! {
        #[test]
        fn counts_and_the_expanded_slice_agree_exactly((counts, sorted) in multiset(), p in any_p()) {
            let a = percentile(&sorted, p);
            let b = percentile_of_counts(&counts, p);
            prop_assert_eq!(a.map(f64::to_bits), b.map(f64::to_bits), "slice {:?}, counts {:?}", a, b);
        }

        #[test]
        fn arbitrary_values_agree_too(mut values in proptest::collection::vec(-1e6..1e6f64, 1..200), p in any_p()) {
            values.sort_by(f64::total_cmp);
            let mut counts: Vec<(f64, u64)> = Vec::new();
            for &v in &values {
                match counts.last_mut() {
                    Some((last, c)) if *last == v => *c += 1,
                    _ => counts.push((v, 1)),
                }
            }
            prop_assert_eq!(
                percentile(&values, p).map(f64::to_bits),
                percentile_of_counts(&counts, p).map(f64::to_bits)
            );
        }
    }
}
