//! The rollup step: every local day the batch's readings fall on is recomputed once, from
//! the day's own readings, and written only over a rollup of fewer readings. A backlog
//! burst of one device's day therefore costs one Query and one write, however many of its
//! readings the batch holds.
//!
//! A day that can never be rolled up (its time outside the calendar, a day with no instants,
//! more readings than a rollup reads, a request the store refuses outright) poisons its
//! records: the consumer writes them aside and the shard moves on. Any other failure fails
//! them, and Lambda retries.

use cgm_domain::ids::DeviceSn;
use cgm_domain::rollup::DayRollup;
use cgm_domain::store::StoreError;
use cgm_domain::store::reads::{ReadAllError, ReadStore, ReadingQuery, StoredReading, read_all};
use cgm_domain::store::rollups::{RollupStore, Written};
use cgm_domain::time::SourceZone;
use chrono::NaiveDate;
use std::collections::BTreeMap;

/// A backstop far above a day's readings (1,440 at one a minute).
const MAX_DAY_READINGS: usize = 20_000;

/// Why a reading whose instant falls on no local date is never rolled up.
pub const OUTSIDE_THE_CALENDAR: &str = "rollup: the reading's time falls on no calendar day";

#[derive(Debug, Default)]
pub struct Report {
    pub days: usize,
    pub written: usize,
    /// Each day's reading count as its recompute found it (the sessions step keeps them).
    pub counts: BTreeMap<(DeviceSn, NaiveDate), u64>,
    /// Sequence numbers of the records whose day could not be rolled up this time.
    pub failed: Vec<String>,
    /// Records whose day can never be rolled up, with why: written aside once by the
    /// consumer and not retried.
    pub poisoned: Vec<(String, &'static str)>,
}

/// Why a day was not rolled up.
#[derive(Debug, thiserror::Error)]
pub enum RollupError {
    /// The day's bounds cannot be computed (the last date the calendar holds has no next
    /// midnight).
    #[error("the day has no instants")]
    NoInstants,
    /// More readings than [`MAX_DAY_READINGS`]: a day only gains readings, so it never
    /// comes under.
    #[error("the day holds more than {0} readings")]
    TooMany(usize),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<ReadAllError> for RollupError {
    fn from(e: ReadAllError) -> Self {
        match e {
            ReadAllError::Store(e) => RollupError::Store(e),
            ReadAllError::TooMany(n) => RollupError::TooMany(n),
        }
    }
}

impl RollupError {
    /// Why no retry can ever roll the day up (the record's reason), or `None` when one may.
    pub fn permanent(&self) -> Option<&'static str> {
        match self {
            RollupError::NoInstants => Some("rollup: the day has no instants"),
            RollupError::TooMany(_) => Some("rollup: the day holds more readings than a rollup reads"),
            RollupError::Store(e) if e.is_permanent() => Some("rollup: the store refused the day's query or rollup"),
            RollupError::Store(_) => None,
        }
    }
}

pub async fn step<R: ReadStore, U: RollupStore>(
    reads: &R,
    rollups: &U,
    zone: &SourceZone,
    batch: &[(String, StoredReading)],
) -> Report {
    let mut report = Report::default();
    let mut days: BTreeMap<(DeviceSn, NaiveDate), Vec<&(String, StoredReading)>> = BTreeMap::new();
    for rec in batch {
        match zone.local_date(rec.1.measured_at) {
            Some(day) => days.entry((rec.1.device_sn.clone(), day)).or_default().push(rec),
            None => report.poisoned.push((rec.0.clone(), OUTSIDE_THE_CALENDAR)),
        }
    }
    report.days = days.len();
    for ((sn, day), recs) in days {
        let newest: Vec<StoredReading> = recs.iter().map(|(_, r)| r.clone()).collect();
        match rollup_day(reads, rollups, zone, &sn, day, newest).await {
            Ok((written, count)) => {
                report.written += usize::from(written == Written::Stored);
                report.counts.insert((sn.clone(), day), count);
            }
            Err(e) => match e.permanent() {
                Some(why) => {
                    tracing::warn!(target: "cgm_events", device_sn = cgm_domain::ids::clip_for_log(sn.as_str()), %day, error = %e, "rollup impossible; its records are written aside");
                    report.poisoned.extend(recs.iter().map(|(seq, _)| (seq.clone(), why)));
                }
                None => {
                    tracing::warn!(target: "cgm_events", device_sn = cgm_domain::ids::clip_for_log(sn.as_str()), %day, error = %e, "rollup failed; its records are retried");
                    report.failed.extend(recs.iter().map(|(seq, _)| seq.clone()));
                }
            },
        }
    }
    report
}

/// Recomputes one device's local day from its stored readings (and `from_batch`, readings
/// the index may not show yet) and writes it over a rollup of fewer readings; the day's
/// reading count with it. What the stream step does per day, and what a backfill of older
/// data does.
pub async fn rollup_day<R: ReadStore, U: RollupStore>(
    reads: &R,
    rollups: &U,
    zone: &SourceZone,
    sn: &DeviceSn,
    day: NaiveDate,
    from_batch: Vec<StoredReading>,
) -> Result<(Written, u64), RollupError> {
    let range = zone.local_day(day).and_then(|d| d.to_included()).ok_or(RollupError::NoInstants)?;
    let q = ReadingQuery { device_sn: sn, range, valid_only: false, newest_first: false };
    let mut readings = read_all(reads, &q, MAX_DAY_READINGS).await?;
    // The index may not show the batch's readings yet: add them (of_day counts a testId once).
    readings.extend(from_batch);
    let rollup = DayRollup::of_day(sn, day, zone, &readings);
    Ok((rollups.put_rollup(&rollup).await?, rollup.readings))
}

#[cfg(test)]
mod tests {
    use super::*;
    use cgm_domain::store::reads::memory::MemoryReadStore;
    use cgm_domain::store::rollups::memory::MemoryRollupStore;
    use cgm_domain::time::Timestamp;
    use std::sync::atomic::Ordering;

    fn reading(i: u64, at: i64) -> StoredReading {
        StoredReading {
            test_id: format!("t{i}").into(),
            device_sn: "D".into(),
            measured_at: Timestamp::from_ms(at),
            mmol: 5.0 + (i % 10) as f64 / 10.0,
            serial_no: Some(i),
            status: Some("0".into()),
            valid: true,
            incre_minute: Some(3),
            low: None,
            high: None,
        }
    }

    #[tokio::test]
    async fn each_day_once_from_its_own_readings_and_redeliveries_change_nothing() {
        let zone = SourceZone::default();
        let d1 = zone.local_day(NaiveDate::from_ymd_opt(2024, 5, 1).unwrap()).unwrap().start().ms();
        // Two days of readings; the index shows all but the batch's last ten.
        let all: Vec<StoredReading> = (1..=960u64).map(|i| reading(i, d1 + (i as i64 - 1) * 180_000)).collect();
        let reads = MemoryReadStore::with_readings(all[..950].to_vec());
        let rollups = MemoryRollupStore::default();
        let batch: Vec<(String, StoredReading)> =
            all[900..].iter().map(|r| (format!("seq-{}", r.test_id), r.clone())).collect();
        let report = step(&reads, &rollups, &zone, &batch).await;
        assert_eq!((report.days, report.written, report.failed.len()), (1, 1, 0), "the batch touches day two only");
        let r = rollups.rollups.lock().unwrap().values().next().cloned().unwrap();
        assert_eq!(r.readings, 480, "the day's readings from the index and the batch, each once");
        // The same batch again, shuffled: nothing new is written.
        let mut again = batch.clone();
        again.reverse();
        let report = step(&reads, &rollups, &zone, &again).await;
        assert_eq!((report.written, report.failed.len()), (0, 0));
        assert_eq!(rollups.rollups.lock().unwrap().values().next().unwrap().readings, 480);
    }

    #[tokio::test]
    async fn a_failing_store_fails_exactly_that_days_records() {
        let zone = SourceZone::default();
        let d1 = zone.local_day(NaiveDate::from_ymd_opt(2024, 5, 1).unwrap()).unwrap().start().ms();
        let reads = MemoryReadStore::default();
        let rollups = MemoryRollupStore::default();
        rollups.fail.store(true, Ordering::SeqCst);
        let batch = vec![("s1".to_string(), reading(1, d1)), ("s2".to_string(), reading(2, d1 + 86_400_000))];
        let report = step(&reads, &rollups, &zone, &batch).await;
        assert_eq!(report.failed, vec!["s1".to_string(), "s2".to_string()]);
    }

    /// A rollups table that refuses every write as DynamoDB refuses an invalid request.
    struct Refusing;

    impl RollupStore for Refusing {
        async fn put_rollup(&self, _: &DayRollup) -> Result<Written, StoreError> {
            Err(StoreError::Failed { kind: "ValidationException".into(), source: "refused in a test".into() })
        }

        async fn rollups(
            &self,
            _: &DeviceSn,
            _: NaiveDate,
            _: NaiveDate,
            _: cgm_domain::store::rollups::Bins,
        ) -> Result<Vec<DayRollup>, StoreError> {
            Ok(Vec::new())
        }
    }

    #[tokio::test]
    async fn days_that_can_never_be_rolled_up_poison_their_records_and_nothing_else() {
        let zone = SourceZone::default();
        let reads = MemoryReadStore::default();
        let rollups = MemoryRollupStore::default();
        let last_day = NaiveDate::MAX.and_hms_opt(0, 0, 0).unwrap().and_utc().timestamp_millis();
        let d1 = zone.local_day(NaiveDate::from_ymd_opt(2024, 5, 1).unwrap()).unwrap().start().ms();
        let batch = vec![
            ("s1".to_string(), reading(1, last_day)),
            ("s2".to_string(), reading(2, i64::MAX)),
            ("s3".to_string(), reading(3, d1)),
        ];
        let report = step(&reads, &rollups, &zone, &batch).await;
        assert_eq!(
            report.poisoned,
            [("s2".to_string(), OUTSIDE_THE_CALENDAR), ("s1".to_string(), "rollup: the day has no instants")]
        );
        assert!(report.failed.is_empty());
        assert_eq!((report.days, report.written), (2, 1), "the good day is rolled up");

        // A write the store refuses outright is as permanent; an unreachable store is not.
        let refused = step(&reads, &Refusing, &zone, &batch[2..]).await;
        assert_eq!(refused.poisoned, [("s3".to_string(), "rollup: the store refused the day's query or rollup")]);
        assert!(RollupError::TooMany(1).permanent().is_some());
        assert!(RollupError::Store(StoreError::unavailable_for_test()).permanent().is_none());
        assert!(RollupError::Store(StoreError::Timeout).permanent().is_none());
    }
}
