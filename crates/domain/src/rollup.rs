//! Daily rollups: one device's readings of one local day, summarised without losing anything
//! a report needs, so a 90-day summary reads 90 small items instead of 43,200 readings.
//!
//! A rollup counts the day's valid readings per distinct value ([`GlucoseCounts`]), the same
//! per time-of-day bin of [`BIN_MINUTES`] (the AGP's 15-minute bins are three of them), the
//! invalid (warm-up) readings, the readings per sensor interval, the first and last reading
//! with a `serialNo` (so a hole across midnight is still one gap), and the holes in the
//! `serialNo` sequence inside the day, as the pairs of readings on either side of each, so a
//! range's gaps come from rollups exactly as from its readings ([`DayRollup::gap_run`]). It is always made from the day's own readings ([`DayRollup::of_day`]), never
//! incremented, so a redelivered or duplicated reading cannot count twice; `readings` only
//! grows as late readings arrive, which a store can use as its write condition. It records
//! the zone and bin width it was made with: a change of `SOURCE_TIMEZONE` makes it stale
//! ([`DayRollup::made_with`]).
//!
//! [`Period`] combines whole-day rollups with the readings of the partial days at a range's
//! ends into one [`GlucoseCounts`]: the summary of a range is then the same function of the
//! same counts whichever way they were gathered. Pure: no storage, no HTTP.

use crate::gaps::{self, GapFinder, Run, Seq};
use crate::ids::DeviceSn;
use crate::metrics::{GlucoseCounts, Summary, summarize_counts};
use crate::reading::StoredReading;
use crate::time::{SourceZone, Timestamp};
use chrono::{NaiveDate, Timelike};
use std::collections::{BTreeMap, BTreeSet};

/// Width of a time-of-day bin, minutes.
pub const BIN_MINUTES: u32 = 5;
/// Bins in a wall-clock day (a 25-hour day folds its repeated hour into the same bins).
pub const BINS_PER_DAY: u16 = (24 * 60 / BIN_MINUTES) as u16;
/// The largest rollup item the store must hold: a day of one-minute readings, every value
/// distinct, or every other one lost (a hole after each reading), stays under this as a
/// DynamoDB item (a test in `store::rollups::dynamodb` holds it: about 23 KB and 38 KB),
/// far inside DynamoDB's 400 KB item limit. A 3-minute day is about 6.5 KB.
pub const MAX_ROLLUP_BYTES: usize = 100 * 1024;

#[derive(Debug, Clone, PartialEq)]
pub struct DayRollup {
    pub device_sn: DeviceSn,
    pub day: NaiveDate,
    /// The zone the day's bounds and bins were taken in (`SourceZone::label`).
    pub zone: String,
    pub bin_minutes: u32,
    /// Every distinct reading of the day, valid or not.
    pub readings: u64,
    pub invalid: u64,
    /// Valid readings per value.
    pub glucose: GlucoseCounts,
    /// Valid readings per value, per time-of-day bin (local wall clock).
    pub bins: BTreeMap<u16, GlucoseCounts>,
    /// Readings per reported interval (minutes, within the spec's bounds).
    pub intervals: BTreeMap<u64, u64>,
    /// The day's first and last reading with a `serialNo`, in gap finding's order.
    pub first: Option<Seq>,
    pub last: Option<Seq>,
    /// The readings next to each other with a hole in the `serialNo` sequence between them.
    pub holes: Vec<(Seq, Seq)>,
    /// Distinct (`serialNo`, instant) pairs: what gap finding counts as received.
    pub serials_received: u64,
    /// Readings without a `serialNo` (gap finding cannot place them).
    pub without_serial: u64,
}

impl DayRollup {
    /// The rollup of `day` from its readings (any order; a `testId` seen twice counts once;
    /// readings outside the day are ignored).
    pub fn of_day(device_sn: &DeviceSn, day: NaiveDate, zone: &SourceZone, readings: &[StoredReading]) -> Self {
        let span = zone.local_day(day);
        let mut seen = BTreeSet::new();
        let mut of_day: Vec<&StoredReading> = readings
            .iter()
            .filter(|r| span.is_some_and(|s| s.contains(r.measured_at)) && seen.insert(&r.test_id))
            .collect();
        of_day.sort_by(|a, b| (a.measured_at, &a.test_id).cmp(&(b.measured_at, &b.test_id)));
        let mut rollup = DayRollup {
            device_sn: device_sn.clone(),
            day,
            zone: zone.label(),
            bin_minutes: BIN_MINUTES,
            readings: of_day.len() as u64,
            invalid: 0,
            glucose: GlucoseCounts::default(),
            bins: BTreeMap::new(),
            intervals: BTreeMap::new(),
            first: None,
            last: None,
            holes: Vec::new(),
            serials_received: 0,
            without_serial: 0,
        };
        for r in &of_day {
            if let Some(m) = gaps::usable_interval(r.incre_minute) {
                *rollup.intervals.entry(m).or_default() += 1;
            }
            if !r.valid {
                rollup.invalid += 1;
                continue;
            }
            rollup.glucose.add(r.mmol);
            rollup.bins.entry(bin_of(zone, r.measured_at)).or_default().add(r.mmol);
        }
        let mut seqs: Vec<Seq> = of_day.iter().filter_map(|r| seq_of(r)).collect();
        rollup.without_serial = (of_day.len() - seqs.len()) as u64;
        gaps::sort(&mut seqs);
        rollup.first = seqs.first().copied();
        rollup.last = seqs.last().copied();
        if let Some(s) = span {
            let (from, to) = (s.start().ms(), s.end().ms().saturating_sub(1));
            // Within the day a hole is due between its two readings, so inside any range
            // holding the whole day it comes out the same: keep the pairs, not the gaps.
            rollup.holes =
                seqs.windows(2).filter(|w| gaps::hole(w[0], w[1], from, to).is_some()).map(|w| (w[0], w[1])).collect();
            let mut finder = GapFinder::new(from, to);
            seqs.iter().for_each(|s| finder.push(*s));
            rollup.serials_received = finder.finish().received;
        }
        rollup
    }

    /// The day as [`GapFinder::push_run`] takes it; `None` when no reading has a `serialNo`.
    pub fn gap_run(&self) -> Option<Run<'_>> {
        Some(Run { first: self.first?, last: self.last?, holes: &self.holes, received: self.serials_received })
    }

    /// The missing `serialNo` runs (first, last) inside the day.
    pub fn missing_runs(&self) -> Vec<(u64, u64)> {
        self.holes
            .iter()
            .filter_map(|(p, n)| gaps::hole(*p, *n, i64::MIN, i64::MAX))
            .map(|g| (g.first_serial_no, g.last_serial_no))
            .collect()
    }

    pub fn valid(&self) -> u64 {
        self.glucose.len()
    }

    /// Whether this rollup was made as one made now would be: same zone, same bins.
    pub fn made_with(&self, zone: &SourceZone) -> bool {
        self.zone == zone.label() && self.bin_minutes == BIN_MINUTES
    }
}

/// What gap finding needs of a reading; `None` without a `serialNo`.
pub fn seq_of(r: &StoredReading) -> Option<Seq> {
    Some(Seq { serial_no: r.serial_no?, measured_at_ms: r.measured_at.ms(), incre_minute: r.incre_minute })
}

/// The time-of-day bin of an instant, by the local wall clock.
pub fn bin_of(zone: &SourceZone, at: Timestamp) -> u16 {
    let Some(utc) = at.to_datetime() else { return 0 };
    let local = utc.with_timezone(&zone.offset_at(utc));
    ((local.hour() * 60 + local.minute()) / BIN_MINUTES) as u16
}

/// One stretch of a range as reports read it: a whole local day from its rollup, or the
/// readings of a stretch no rollup covers (a partial day at an end, a day not rolled up yet).
#[derive(Debug, Clone, PartialEq)]
pub enum Piece {
    Day(Box<DayRollup>),
    Readings(Vec<StoredReading>),
}

/// The gaps of a range read as [`Piece`]s in time order, with the nearest readings before and
/// after it as anchors: the same report as [`gaps::find_gaps`] over all the readings.
pub fn gaps_of(pieces: &[Piece], before: Option<Seq>, after: Option<Seq>, from_ms: i64, to_ms: i64) -> gaps::GapReport {
    let mut finder = GapFinder::new(from_ms, to_ms);
    before.into_iter().for_each(|s| finder.push(s));
    for piece in pieces {
        match piece {
            Piece::Day(r) => {
                if let Some(run) = r.gap_run() {
                    finder.push_run(run);
                }
            }
            Piece::Readings(rs) => {
                let mut seqs: Vec<Seq> = rs.iter().filter_map(seq_of).collect();
                gaps::sort(&mut seqs);
                seqs.into_iter().for_each(|s| finder.push(s));
            }
        }
    }
    after.into_iter().for_each(|s| finder.push(s));
    finder.finish()
}

/// Readings of the pieces that carry no `serialNo`.
pub fn without_serial(pieces: &[Piece]) -> u64 {
    pieces
        .iter()
        .map(|p| match p {
            Piece::Day(r) => r.without_serial,
            Piece::Readings(rs) => rs.iter().filter(|r| r.serial_no.is_none()).count() as u64,
        })
        .sum()
}

/// The local days of the pieces that hold at least one valid reading: the days a sensor
/// was worn and reading (the CGM IG's "days of wear").
pub fn days_with_readings(zone: &SourceZone, pieces: &[Piece]) -> usize {
    let mut days = std::collections::BTreeSet::new();
    for piece in pieces {
        match piece {
            Piece::Day(r) if r.valid() > 0 => {
                days.insert(r.day);
            }
            Piece::Day(_) => {}
            Piece::Readings(rs) => {
                days.extend(rs.iter().filter(|r| r.valid).filter_map(|r| zone.local_date(r.measured_at)))
            }
        }
    }
    days.len()
}

/// What a range's reports are computed from: the counts of whole days (from rollups) and of
/// the readings of partial days, merged.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Period {
    pub glucose: GlucoseCounts,
    pub bins: BTreeMap<u16, GlucoseCounts>,
    pub invalid: u64,
    pub intervals: BTreeMap<u64, u64>,
}

impl Period {
    pub fn of(zone: &SourceZone, pieces: &[Piece]) -> Self {
        let mut period = Period::default();
        for piece in pieces {
            match piece {
                Piece::Day(r) => period.add_rollup(r),
                Piece::Readings(rs) => period.add_readings(zone, rs),
            }
        }
        period
    }

    pub fn add_rollup(&mut self, r: &DayRollup) {
        self.glucose.merge(&r.glucose);
        for (b, c) in &r.bins {
            self.bins.entry(*b).or_default().merge(c);
        }
        self.invalid = self.invalid.saturating_add(r.invalid);
        for (m, c) in &r.intervals {
            *self.intervals.entry(*m).or_default() += c;
        }
    }

    /// Readings not covered by a rollup (a partial day, or a day without a rollup yet).
    pub fn add_readings(&mut self, zone: &SourceZone, readings: &[StoredReading]) {
        for r in readings {
            if let Some(m) = gaps::usable_interval(r.incre_minute) {
                *self.intervals.entry(m).or_default() += 1;
            }
            if r.valid {
                self.glucose.add(r.mmol);
                self.bins.entry(bin_of(zone, r.measured_at)).or_default().add(r.mmol);
            } else {
                self.invalid += 1;
            }
        }
    }

    pub fn summary(&self) -> Option<Summary> {
        summarize_counts(&self.glucose)
    }

    /// The interval most readings report; `None` without one.
    pub fn usual_interval(&self) -> Option<u64> {
        self.intervals.iter().max_by_key(|(m, n)| (**n, std::cmp::Reverse(**m))).map(|(m, _)| *m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn reading(id: &str, at: i64, mmol: f64, valid: bool, serial: u64) -> StoredReading {
        StoredReading {
            test_id: id.into(),
            device_sn: "D".into(),
            measured_at: Timestamp::from_ms(at),
            mmol,
            serial_no: Some(serial),
            status: Some(if valid { "0" } else { "1" }.into()),
            valid,
            incre_minute: Some(3),
            low: None,
            high: None,
        }
    }

    fn day(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn a_day_counts_each_reading_once_with_its_edges_and_holes() {
        let z = SourceZone::default();
        let start = z.local_day(day("2024-05-01")).unwrap().start().ms();
        let mut rs: Vec<StoredReading> = (1..=480u64)
            .filter(|s| !(100..=104).contains(s))
            .map(|s| reading(&format!("t{s}"), start + (s as i64 - 1) * 180_000, 5.0 + (s % 7) as f64 / 10.0, s > 2, s))
            .collect();
        rs.push(rs[10].clone()); // a redelivery
        rs.push(reading("other-day", start - 1, 9.9, true, 0));
        let r = DayRollup::of_day(&"D".into(), day("2024-05-01"), &z, &rs);
        assert_eq!((r.readings, r.invalid, r.valid()), (475, 2, 473));
        assert_eq!(r.missing_runs(), vec![(100, 104)]);
        assert_eq!((r.serials_received, r.without_serial), (475, 0));
        assert_eq!(r.first.map(|e| e.serial_no), Some(1));
        assert_eq!(r.last.map(|e| (e.serial_no, e.measured_at_ms)), Some((480, start + 479 * 180_000)));
        assert_eq!(r.intervals.get(&3), Some(&475));
        // 00:00-00:05 holds readings 1 and 2, both warm-up; 00:05-00:10 readings 3 and 4.
        assert_eq!(r.bins.get(&0), None);
        assert_eq!(r.bins.get(&1).map(GlucoseCounts::len), Some(2));
        assert!(r.made_with(&z) && !r.made_with(&"Europe/Berlin".parse().unwrap()));
    }

    fn any_day() -> impl Strategy<Value = Vec<(i64, u16, bool, u8)>> {
        // (minute offset from the range start, value in tenths, valid, redelivered)
        prop::collection::vec((0i64..(6 * 1440), 20u16..250, any::<bool>(), 0u8..4), 0..300)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        /// Whole days from rollups and partial days from readings give exactly the numbers
        /// of all the readings, in a zone with daylight saving, duplicates and late readings
        /// included.
        #[test]
        fn rollups_and_readings_give_the_same_numbers(
            raw in any_day(),
            from_minute in 0i64..1440,
            len_minutes in 0i64..(5 * 1440),
            berlin in any::<bool>(),
        ) {
            let zone: SourceZone = if berlin { "Europe/Berlin".parse().unwrap() } else { SourceZone::default() };
            // 2024-03-29 .. 2024-04-04 spans Berlin's spring-forward day (2024-03-31, 23 h).
            let base = zone.local_day(day("2024-03-29")).unwrap().start().ms();
            let mut readings = Vec::new();
            for (i, (minute, tenths, valid, copies)) in raw.iter().enumerate() {
                // Mostly a sensor's count (one every 3 minutes, with holes), some out of order,
                // some without a serial number.
                let serial = if *copies < 2 { (*minute / 3) as u64 } else { i as u64 };
                let mut r = reading(&format!("t{i}"), base + minute * 60_000, f64::from(*tenths) / 10.0, *valid, serial);
                if *copies == 3 && i % 3 == 0 {
                    r.serial_no = None;
                }
                for _ in 0..=(*copies % 2) {
                    readings.push(r.clone());
                }
            }
            let from = Timestamp::from_ms(base + from_minute * 60_000);
            let to = from.plus_ms(len_minutes * 60_000);
            let in_range = |r: &&StoredReading| r.measured_at >= from && r.measured_at <= to;
            // The readings path: every distinct reading of the range.
            let mut seen = BTreeSet::new();
            let distinct: Vec<StoredReading> =
                readings.iter().filter(in_range).filter(|r| seen.insert(r.test_id.clone())).cloned().collect();
            let mut direct = Period::default();
            direct.add_readings(&zone, &distinct);
            // The rollup path: whole local days inside the range from rollups, the rest from readings.
            let mut rolled = Period::default();
            let mut partial = Vec::new();
            let first_day = from.to_datetime().unwrap().with_timezone(&zone.offset_at(from.to_datetime().unwrap())).date_naive();
            let mut d = first_day;
            let mut covered: Vec<(Timestamp, Timestamp)> = Vec::new();
            while let Some(span) = zone.local_day(d) {
                if span.start() > to { break; }
                if span.start() >= from && span.end().minus_ms(1) <= to {
                    rolled.add_rollup(&DayRollup::of_day(&"D".into(), d, &zone, &readings));
                    covered.push((span.start(), span.end()));
                }
                d = d.succ_opt().unwrap();
            }
            let mut seen = BTreeSet::new();
            for r in readings.iter().filter(in_range) {
                let in_rollup = covered.iter().any(|(s, e)| r.measured_at >= *s && r.measured_at < *e);
                if !in_rollup && seen.insert(r.test_id.clone()) {
                    partial.push(r.clone());
                }
            }
            rolled.add_readings(&zone, &partial);
            prop_assert_eq!(&rolled, &direct);
            prop_assert_eq!(rolled.summary(), direct.summary());
            for p in [5.0, 25.0, 50.0, 75.0, 95.0] {
                prop_assert_eq!(rolled.glucose.percentile(p), direct.glucose.percentile(p));
            }
            // Gaps: the readings of the range with their anchors, or whole days as runs.
            let anchor_before = readings.iter().filter(|r| r.measured_at < from).max_by_key(|r| (r.measured_at, r.serial_no));
            let anchor_after = readings.iter().filter(|r| r.measured_at > to).min_by_key(|r| (r.measured_at, r.serial_no));
            let mut all: Vec<Seq> = anchor_before.into_iter().chain(&distinct).chain(anchor_after).filter_map(seq_of).collect();
            let direct_gaps = gaps::find_gaps(&all, from.ms(), to.ms());
            gaps::sort(&mut all);
            let mut finder = GapFinder::new(from.ms(), to.ms());
            let mut i = 0;
            for (s, e) in &covered {
                while i < all.len() && all[i].measured_at_ms < s.ms() {
                    finder.push(all[i]);
                    i += 1;
                }
                let day = zone.local_date(*s).unwrap();
                if let Some(run) = DayRollup::of_day(&"D".into(), day, &zone, &readings).gap_run() {
                    finder.push_run(run);
                }
                while i < all.len() && all[i].measured_at_ms < e.ms() {
                    i += 1;
                }
            }
            all[i..].iter().for_each(|s| finder.push(*s));
            prop_assert_eq!(finder.finish(), direct_gaps);
        }
    }
}
