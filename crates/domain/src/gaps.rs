//! Lost readings: the holes in a device's `serialNo` sequence, with the times the missing
//! readings were due, so a gap in the data can be seen (and chased with Sinocare) at once.
//!
//! A sensor numbers its readings 1, 2, 3, … and takes one every `increMinute` minutes. Two
//! readings next to each other in time whose serial numbers differ by more than one have
//! lost the ones between them. A missing reading was due `increMinute` after the one before
//! it (the reading before the hole anchors the times; the one after closes them). A serial
//! number that goes down means the sensor restarted its count: that is not a loss.
//! Pure functions: no storage, no HTTP.

/// The interval when a reading does not say (the iCan sensor's usual one).
pub const DEFAULT_INCRE_MINUTE: u64 = 3;

/// What gap finding needs of a reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seq {
    pub serial_no: u64,
    pub measured_at_ms: i64,
    pub incre_minute: Option<u64>,
}

/// A received reading next to a hole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Neighbour {
    pub serial_no: u64,
    pub measured_at_ms: i64,
}

/// One run of missing serial numbers, `first..=last`, all due inside the period asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gap {
    pub first_serial_no: u64,
    pub last_serial_no: u64,
    /// When the first and the last missing reading were due (UTC ms).
    pub expected_from_ms: i64,
    pub expected_to_ms: i64,
    pub incre_minute: u64,
    /// The received readings on either side of the hole (possibly outside the period).
    pub after: Neighbour,
    pub before: Neighbour,
}

impl Gap {
    pub fn missing(&self) -> u64 {
        self.last_serial_no - self.first_serial_no + 1
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GapReport {
    pub gaps: Vec<Gap>,
    /// Readings that were due in the period: received plus missing.
    pub expected: u64,
    /// Distinct serial numbers received in the period.
    pub received: u64,
    pub missing: u64,
}

/// The holes among `readings` whose missing readings were due in `from_ms..=to_ms`.
/// `readings` may include the nearest reading before and after the period, so a hole that
/// crosses either end is still seen; they count as anchors, not as received.
pub fn find_gaps(readings: &[Seq], from_ms: i64, to_ms: i64) -> GapReport {
    let mut sorted: Vec<Seq> = readings.to_vec();
    sort(&mut sorted);
    let mut finder = GapFinder::new(from_ms, to_ms);
    for s in sorted {
        finder.push(s);
    }
    finder.finish()
}

/// The order gap finding walks readings in: by time, then serial number.
pub fn sort(readings: &mut [Seq]) {
    readings.sort_by_key(|r| (r.measured_at_ms, r.serial_no));
}

/// [`find_gaps`] fed one reading at a time, in [`sort`]'s order, or a run of them already
/// summarised ([`GapFinder::push_run`], a daily rollup's): both paths meet the same pairs
/// and count the same readings, so they give the same report.
#[derive(Debug, Clone)]
pub struct GapFinder {
    from_ms: i64,
    to_ms: i64,
    prev: Option<Seq>,
    received: u64,
    gaps: Vec<Gap>,
}

/// What [`GapFinder::push_run`] needs of a run of readings it does not see one by one.
#[derive(Debug, Clone, Copy)]
pub struct Run<'a> {
    pub first: Seq,
    pub last: Seq,
    /// The pairs of readings next to each other with a hole between them, in order.
    pub holes: &'a [(Seq, Seq)],
    /// Distinct (serial number, instant) pairs of the run.
    pub received: u64,
}

impl GapFinder {
    pub fn new(from_ms: i64, to_ms: i64) -> Self {
        GapFinder { from_ms, to_ms, prev: None, received: 0, gaps: Vec::new() }
    }

    fn in_period(&self, t: i64) -> bool {
        (self.from_ms..=self.to_ms).contains(&t)
    }

    /// The next reading. A second item for the same serial at the same time is the same
    /// reading; the same serial at another time is a new count after a restart.
    pub fn push(&mut self, s: Seq) {
        let repeat = self.prev.is_some_and(|p| (p.serial_no, p.measured_at_ms) == (s.serial_no, s.measured_at_ms));
        if self.in_period(s.measured_at_ms) && !repeat {
            self.received += 1;
        }
        self.step(s);
    }

    /// A run of readings inside the period, summarised: its holes are taken as they are.
    pub fn push_run(&mut self, run: Run<'_>) {
        self.push(run.first);
        for (p, n) in run.holes {
            self.pair(*p, *n);
        }
        self.received = self.received.saturating_add(run.received.saturating_sub(1));
        self.prev = Some(run.last);
    }

    fn step(&mut self, s: Seq) {
        if let Some(p) = self.prev {
            self.pair(p, s);
        }
        self.prev = Some(s);
    }

    fn pair(&mut self, p: Seq, n: Seq) {
        self.gaps.extend(hole(p, n, self.from_ms, self.to_ms));
    }

    pub fn finish(self) -> GapReport {
        let missing: u64 = self.gaps.iter().map(Gap::missing).fold(0, u64::saturating_add);
        GapReport { gaps: self.gaps, expected: self.received.saturating_add(missing), received: self.received, missing }
    }
}

/// The hole between two readings next to each other, as far as it was due in the period.
pub fn hole(p: Seq, n: Seq, from_ms: i64, to_ms: i64) -> Option<Gap> {
    if n.serial_no <= p.serial_no.saturating_add(1) {
        return None;
    }
    let incre = usable_interval(p.incre_minute).or(usable_interval(n.incre_minute)).unwrap_or(DEFAULT_INCRE_MINUTE);
    let step = i128::from(incre) * 60_000;
    let due = |serial: u64| i128::from(p.measured_at_ms) + i128::from(serial - p.serial_no) * step;
    // Due times rise with the serial number, so the serials due in the period (and before
    // the reading after the hole, give or take half an interval of clock jitter) are one
    // run: its ends by division rather than by walking a possibly huge hole.
    let lo = i128::from(from_ms);
    let hi = i128::from(to_ms).min(i128::from(n.measured_at_ms) - step / 2);
    let offset_lo = (lo - i128::from(p.measured_at_ms) + step - 1).div_euclid(step).max(1);
    let offset_hi = (hi - i128::from(p.measured_at_ms)).div_euclid(step).min(i128::from(n.serial_no - p.serial_no - 1));
    if offset_lo > offset_hi {
        return None;
    }
    let (first, last) = (p.serial_no + offset_lo as u64, p.serial_no + offset_hi as u64);
    let ms = |serial: u64| due(serial).clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64;
    Some(Gap {
        first_serial_no: first,
        last_serial_no: last,
        expected_from_ms: ms(first),
        expected_to_ms: ms(last),
        incre_minute: incre,
        after: Neighbour { serial_no: p.serial_no, measured_at_ms: p.measured_at_ms },
        before: Neighbour { serial_no: n.serial_no, measured_at_ms: n.measured_at_ms },
    })
}

/// A sensor interval the maths can use: within what the spec means (1–60 minutes), else
/// none (a value stored before the push route bounded it).
pub fn usable_interval(incre_minute: Option<u64>) -> Option<u64> {
    incre_minute.filter(|m| crate::push::INCRE_MINUTE_BOUNDS.contains(m))
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_700_000_000_000;
    const MIN: i64 = 60_000;

    fn seq(serials: impl IntoIterator<Item = u64>) -> Vec<Seq> {
        serials
            .into_iter()
            .map(|s| Seq { serial_no: s, measured_at_ms: T0 + (s as i64 - 1) * 3 * MIN, incre_minute: Some(3) })
            .collect()
    }

    #[test]
    fn a_hole_of_three_in_twenty() {
        // Serial 1..=20 every 3 minutes, 8, 9 and 10 lost: 17 received, 3 missing, due at
        // the 7th reading's time + 3, + 6 and + 9 minutes.
        let readings = seq((1..=20).filter(|s| !(8..=10).contains(s)));
        let r = find_gaps(&readings, T0, T0 + 19 * 3 * MIN);
        assert_eq!((r.expected, r.received, r.missing), (20, 17, 3));
        assert_eq!(r.gaps.len(), 1);
        let g = r.gaps[0];
        assert_eq!((g.first_serial_no, g.last_serial_no, g.missing()), (8, 10, 3));
        assert_eq!(g.expected_from_ms, T0 + 7 * 3 * MIN);
        assert_eq!(g.expected_to_ms, T0 + 9 * 3 * MIN);
        assert_eq!((g.after.serial_no, g.before.serial_no), (7, 11));
    }

    #[test]
    fn the_interval_comes_from_the_reading_default_three() {
        let readings = vec![
            Seq { serial_no: 1, measured_at_ms: T0, incre_minute: None },
            Seq { serial_no: 4, measured_at_ms: T0 + 9 * MIN, incre_minute: None },
            Seq { serial_no: 5, measured_at_ms: T0 + 10 * MIN, incre_minute: Some(1) },
            Seq { serial_no: 7, measured_at_ms: T0 + 12 * MIN, incre_minute: Some(1) },
        ];
        let r = find_gaps(&readings, T0, T0 + 12 * MIN);
        assert_eq!(r.gaps.len(), 2);
        assert_eq!((r.gaps[0].incre_minute, r.gaps[0].expected_from_ms), (3, T0 + 3 * MIN));
        assert_eq!((r.gaps[1].incre_minute, r.gaps[1].expected_from_ms), (1, T0 + 11 * MIN));
        assert_eq!((r.expected, r.received, r.missing), (7, 4, 3));
    }

    #[test]
    fn a_hole_across_the_start_counts_only_what_was_due_inside() {
        // Readings 1..=5 and 11..=15; the period starts at reading 8's due time. Reading 5 is
        // outside but anchors the hole: 8, 9, 10 were due inside, 6 and 7 before.
        let readings = seq((1..=5).chain(11..=15));
        let from = T0 + 7 * 3 * MIN;
        let r = find_gaps(&readings, from, T0 + 14 * 3 * MIN);
        assert_eq!(r.gaps.len(), 1);
        assert_eq!((r.gaps[0].first_serial_no, r.gaps[0].last_serial_no), (8, 10));
        assert_eq!((r.expected, r.received, r.missing), (8, 5, 3));
    }

    #[test]
    fn restarts_and_duplicates_are_not_losses() {
        let mut readings = seq(1..=5);
        readings.push(Seq { serial_no: 1, measured_at_ms: T0 + 20 * 3 * MIN, incre_minute: Some(3) });
        readings.push(Seq { serial_no: 2, measured_at_ms: T0 + 21 * 3 * MIN, incre_minute: Some(3) });
        readings.push(readings[2]);
        let r = find_gaps(&readings, T0, T0 + 30 * 3 * MIN);
        assert!(r.gaps.is_empty(), "{:?}", r.gaps);
        assert_eq!((r.expected, r.received, r.missing), (7, 7, 0), "the repeated reading 3 is counted once");
    }

    #[test]
    fn a_wild_serial_jump_counts_only_what_fits_before_the_next_reading() {
        // 5 then 1,000,000 three minutes later: no reading could have been due between them.
        let readings = vec![
            Seq { serial_no: 5, measured_at_ms: T0, incre_minute: Some(3) },
            Seq { serial_no: 1_000_000, measured_at_ms: T0 + 3 * MIN, incre_minute: Some(3) },
            Seq { serial_no: 1_000_003, measured_at_ms: T0 + 15 * MIN, incre_minute: Some(3) },
        ];
        let r = find_gaps(&readings, T0, T0 + 15 * MIN);
        assert_eq!(r.gaps.len(), 1);
        assert_eq!((r.gaps[0].first_serial_no, r.gaps[0].last_serial_no), (1_000_001, 1_000_002));
        assert_eq!((r.expected, r.received, r.missing), (5, 3, 2));
    }

    #[test]
    fn nothing_received_nothing_known_missing() {
        assert_eq!(find_gaps(&[], T0, T0 + MIN), GapReport::default());
    }
}
