//! Splitting a requested time range into the upstream windows the vendor allows (at most 30
//! days per glucose call).

/// The vendor's largest glucose range, 30 days in milliseconds.
pub const MAX_WINDOW_MS: i64 = 30 * 24 * 3600 * 1000;

/// One upstream call's range: `start_time=start_ms`, `end_time=end_ms`, both inclusive as the
/// vendor treats them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub start_ms: i64,
    pub end_ms: i64,
}

impl Window {
    /// Whether a record measured at `t_ms` belongs to this window. The upstream may return a
    /// record on an edge for two adjacent calls; since windows never overlap, exactly one of
    /// them owns it and the other drops it.
    pub fn owns(&self, t_ms: i64) -> bool {
        self.start_ms <= t_ms && t_ms <= self.end_ms
    }
}

/// Contiguous, ordered, non-overlapping windows covering `[start_ms, end_ms]`, each with
/// `end_ms - start_ms <= max_ms`, the next starting 1 ms after the previous ends.
///
/// `start_ms > end_ms` is a caller bug (asserted in debug builds); release builds return no
/// window rather than guess. A `max_ms` below zero is treated as zero.
pub fn split(start_ms: i64, end_ms: i64, max_ms: i64) -> Vec<Window> {
    debug_assert!(start_ms <= end_ms, "split: start after end");
    if start_ms > end_ms {
        return Vec::new();
    }
    let max_ms = max_ms.max(0);
    let mut windows = Vec::new();
    let mut start = start_ms;
    loop {
        let end = start.saturating_add(max_ms).min(end_ms);
        windows.push(Window { start_ms: start, end_ms: end });
        if end == end_ms {
            return windows;
        }
        // `end < end_ms <= i64::MAX` here, so this cannot overflow.
        start = end + 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 24 * 3600 * 1000;
    const T0: i64 = 1_700_000_000_000;

    fn assert_covers(windows: &[Window], start: i64, end: i64, max: i64) {
        assert!(!windows.is_empty());
        assert_eq!(windows[0].start_ms, start);
        assert_eq!(windows[windows.len() - 1].end_ms, end);
        for w in windows {
            assert!(w.start_ms <= w.end_ms, "{w:?}");
            assert!(w.end_ms - w.start_ms <= max, "{w:?} over {max}");
        }
        for pair in windows.windows(2) {
            assert_eq!(pair[1].start_ms, pair[0].end_ms + 1, "{pair:?}");
        }
    }

    #[test]
    fn seventy_five_days_is_three_windows() {
        let end = T0 + 75 * DAY;
        let windows = split(T0, end, MAX_WINDOW_MS);
        assert_eq!(windows.len(), 3);
        assert_covers(&windows, T0, end, MAX_WINDOW_MS);
    }

    #[test]
    fn exactly_thirty_days_is_one_window() {
        assert_eq!(
            split(T0, T0 + MAX_WINDOW_MS, MAX_WINDOW_MS),
            vec![Window { start_ms: T0, end_ms: T0 + MAX_WINDOW_MS }]
        );
    }

    #[test]
    fn thirty_days_and_one_ms_is_two_windows() {
        let end = T0 + MAX_WINDOW_MS + 1;
        let windows = split(T0, end, MAX_WINDOW_MS);
        assert_eq!(
            windows,
            vec![
                Window { start_ms: T0, end_ms: T0 + MAX_WINDOW_MS },
                Window { start_ms: T0 + MAX_WINDOW_MS + 1, end_ms: end },
            ]
        );
    }

    #[test]
    fn a_single_instant_is_one_window() {
        assert_eq!(split(T0, T0, MAX_WINDOW_MS), vec![Window { start_ms: T0, end_ms: T0 }]);
    }

    #[test]
    fn many_ranges_are_covered_without_overlap_or_oversize() {
        let max = MAX_WINDOW_MS;
        let starts = [i64::MIN, -1, 0, 1, T0, i64::MAX - 10 * max - 7];
        let lens = [0, 1, 2, max - 1, max, max + 1, 2 * max, 2 * max + 1, 75 * DAY, 10 * max + 7];
        for start in starts {
            for len in lens {
                let end = start + len;
                let windows = split(start, end, max);
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
                assert_covers(&split(5, 5 + len, max), 5, 5 + len, max);
            }
        }
    }

    #[test]
    fn a_window_owns_its_inclusive_edges_only() {
        let w = Window { start_ms: 10, end_ms: 20 };
        assert!(w.owns(10));
        assert!(w.owns(20));
        assert!(!w.owns(9));
        assert!(!w.owns(21));
    }

    #[test]
    fn every_instant_is_owned_by_exactly_one_window() {
        let windows = split(0, 100, 9);
        for t in 0..=100 {
            assert_eq!(windows.iter().filter(|w| w.owns(t)).count(), 1, "t={t}");
        }
    }

    #[cfg(debug_assertions)]
    #[test]
    #[should_panic(expected = "start after end")]
    fn start_after_end_is_caught_in_debug() {
        split(2, 1, MAX_WINDOW_MS);
    }

    #[cfg(not(debug_assertions))]
    #[test]
    fn start_after_end_gives_no_window_in_release() {
        assert!(split(2, 1, MAX_WINDOW_MS).is_empty());
    }
}

#[cfg(test)]
mod props {
    use super::*;
    use proptest::prelude::*;

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
            let windows = split(start, end, max);
            prop_assert_eq!(windows.first().map(|w| w.start_ms), Some(start));
            prop_assert_eq!(windows.last().map(|w| w.end_ms), Some(end));
            for w in &windows {
                prop_assert!(w.start_ms <= w.end_ms && w.end_ms - w.start_ms <= max, "{:?} over {}", w, max);
            }
            for pair in windows.windows(2) {
                prop_assert_eq!(pair[1].start_ms, pair[0].end_ms + 1, "contiguous, no overlap");
            }
            prop_assert_eq!(windows.len() as i64, (len + max + 1) / (max + 1));
            if max == MAX_WINDOW_MS {
                prop_assert!(windows.iter().all(|w| w.end_ms - w.start_ms <= 30 * DAY));
            }
        }

        /// Every instant of the range is owned by exactly one window.
        #[test]
        fn every_instant_has_one_owner(start in -1_000i64..1_000, len in 0i64..400, max in 0i64..60, t in 0i64..400) {
            let windows = split(start, start + len, max);
            let t = start + t % (len + 1);
            prop_assert_eq!(windows.iter().filter(|w| w.owns(t)).count(), 1);
        }
    }
}
