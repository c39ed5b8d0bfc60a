//! Splitting a requested time range into the upstream windows the vendor allows (at most 30
//! days per glucose call).

use cgm_domain::time::{Included, TimeRange, Timestamp};

/// The vendor's largest glucose range, 30 days in milliseconds.
pub const MAX_WINDOW_MS: i64 = 30 * 24 * 3600 * 1000;

/// One upstream call's range: `start_time` and `end_time`, both inclusive as the vendor
/// treats them. The upstream may return a record on an edge for two adjacent calls; since
/// windows never overlap, exactly one of them contains it and the other drops it.
pub type Window = TimeRange<Included>;

/// Contiguous, ordered, non-overlapping windows covering `range`, each spanning at most
/// `max_ms`, the next starting 1 ms after the previous ends. A `max_ms` below zero is
/// treated as zero.
pub fn split(range: TimeRange<Included>, max_ms: i64) -> Vec<Window> {
    let (start_ms, end_ms) = (range.start().ms(), range.end().ms());
    let max_ms = max_ms.max(0);
    let mut windows = Vec::new();
    let mut start = start_ms;
    loop {
        let end = start.saturating_add(max_ms).min(end_ms);
        windows.extend(window(start, end));
        if end == end_ms {
            return windows;
        }
        // `end < end_ms <= i64::MAX` here, so this cannot overflow.
        start = end + 1;
    }
}

/// The window from `start_ms` to `end_ms`, both included; `None` when start is after end.
pub fn window(start_ms: i64, end_ms: i64) -> Option<Window> {
    TimeRange::new(Timestamp::from_ms(start_ms), Timestamp::from_ms(end_ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sp(start: i64, end: i64, max: i64) -> Vec<Window> {
        window(start, end).map_or_else(Vec::new, |r| split(r, max))
    }

    const DAY: i64 = 24 * 3600 * 1000;
    const T0: i64 = 1_700_000_000_000;

    fn assert_covers(windows: &[Window], start: i64, end: i64, max: i64) {
        assert!(!windows.is_empty());
        assert_eq!(windows[0].start().ms(), start);
        assert_eq!(windows[windows.len() - 1].end().ms(), end);
        for w in windows {
            assert!(w.start().ms() <= w.end().ms(), "{w:?}");
            assert!(w.end().ms() - w.start().ms() <= max, "{w:?} over {max}");
        }
        for pair in windows.windows(2) {
            assert_eq!(pair[1].start().ms(), pair[0].end().ms() + 1, "{pair:?}");
        }
    }

    #[test]
    fn seventy_five_days_is_three_windows() {
        let end = T0 + 75 * DAY;
        let windows = sp(T0, end, MAX_WINDOW_MS);
        assert_eq!(windows.len(), 3);
        assert_covers(&windows, T0, end, MAX_WINDOW_MS);
    }

    #[test]
    fn exactly_thirty_days_is_one_window() {
        assert_eq!(sp(T0, T0 + MAX_WINDOW_MS, MAX_WINDOW_MS), vec![window(T0, T0 + MAX_WINDOW_MS).unwrap()]);
    }

    #[test]
    fn thirty_days_and_one_ms_is_two_windows() {
        let end = T0 + MAX_WINDOW_MS + 1;
        let windows = sp(T0, end, MAX_WINDOW_MS);
        assert_eq!(
            windows,
            vec![window(T0, T0 + MAX_WINDOW_MS).unwrap(), window(T0 + MAX_WINDOW_MS + 1, end).unwrap(),]
        );
    }

    #[test]
    fn a_single_instant_is_one_window() {
        assert_eq!(sp(T0, T0, MAX_WINDOW_MS), vec![window(T0, T0).unwrap()]);
    }

    #[test]
    fn many_ranges_are_covered_without_overlap_or_oversize() {
        let max = MAX_WINDOW_MS;
        let starts = [i64::MIN, -1, 0, 1, T0, i64::MAX - 10 * max - 7];
        let lens = [0, 1, 2, max - 1, max, max + 1, 2 * max, 2 * max + 1, 75 * DAY, 10 * max + 7];
        for start in starts {
            for len in lens {
                let end = start + len;
                let windows = sp(start, end, max);
                assert_covers(&windows, start, end, max);
                // Each window holds at most `max + 1` instants of the `len + 1` in the range.
                let expected = (len + max + 1) / (max + 1);
                assert_eq!(windows.len() as i64, expected, "start {start} len {len}");
            }
        }
    }

    #[test]
    fn small_max_still_covers() {
        for max in [0, 1, 2, 3, 7] {
            for len in 0..40 {
                assert_covers(&sp(5, 5 + len, max), 5, 5 + len, max);
            }
        }
    }

    #[test]
    fn a_window_owns_its_inclusive_edges_only() {
        let w = window(10, 20).unwrap();
        assert!(w.contains(Timestamp::from_ms(10)));
        assert!(w.contains(Timestamp::from_ms(20)));
        assert!(!w.contains(Timestamp::from_ms(9)));
        assert!(!w.contains(Timestamp::from_ms(21)));
    }

    #[test]
    fn every_instant_is_owned_by_exactly_one_window() {
        let windows = sp(0, 100, 9);
        for t in 0..=100 {
            assert_eq!(windows.iter().filter(|w| w.contains(Timestamp::from_ms(t))).count(), 1, "t={t}");
        }
    }

    #[test]
    fn start_after_end_is_no_range() {
        assert!(window(2, 1).is_none(), "the type cannot hold it, so split never sees one");
    }
}

#[cfg(test)]
mod props {
    use super::*;
    use proptest::prelude::*;

    fn sp(start: i64, end: i64, max: i64) -> Vec<Window> {
        window(start, end).map_or_else(Vec::new, |r| split(r, max))
    }

    const DAY: i64 = 24 * 3600 * 1000;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// The windows cover the range exactly, in order, none longer than the maximum,
        /// none overlapping, and no more of them than needed.
        #[test]
        fn windows_cover_the_range_exactly(
            start in -4_000_000_000_000i64..4_000_000_000_000,
            len in 0i64..400 * DAY,
            small in any::<bool>(),
            small_max in 0i64..50,
        ) {
            let (max, len) = if small { (small_max, len % 3_000) } else { (MAX_WINDOW_MS, len) };
            let end = start + len;
            let windows = sp(start, end, max);
            prop_assert_eq!(windows.first().map(|w| w.start().ms()), Some(start));
            prop_assert_eq!(windows.last().map(|w| w.end().ms()), Some(end));
            for w in &windows {
                prop_assert!(w.start().ms() <= w.end().ms() && w.end().ms() - w.start().ms() <= max, "{:?} over {}", w, max);
            }
            for pair in windows.windows(2) {
                prop_assert_eq!(pair[1].start().ms(), pair[0].end().ms() + 1, "contiguous, no overlap");
            }
            prop_assert_eq!(windows.len() as i64, (len + max + 1) / (max + 1));
            if max == MAX_WINDOW_MS {
                prop_assert!(windows.iter().all(|w| w.end().ms() - w.start().ms() <= 30 * DAY));
            }
        }

        /// Every instant of the range is owned by exactly one window.
        #[test]
        fn every_instant_has_one_owner(start in -1_000i64..1_000, len in 0i64..400, max in 0i64..60, t in 0i64..400) {
            let windows = sp(start, start + len, max);
            let t = start + t % (len + 1);
            prop_assert_eq!(windows.iter().filter(|w| w.contains(Timestamp::from_ms(t))).count(), 1);
        }
    }
}
