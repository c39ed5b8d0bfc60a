//! The rollup step: every local day the batch's readings fall on is recomputed once, from
//! the day's own readings, and written only over a rollup of fewer readings. A backlog
//! burst of one device's day therefore costs one Query and one write, however many of its
//! readings the batch holds.

use cgm_shared::ids::DeviceSn;
use cgm_shared::rollup::DayRollup;
use cgm_shared::store::reads::{ReadStore, ReadingQuery, StoredReading, read_all};
use cgm_shared::store::rollups::{RollupStore, Written};
use cgm_shared::time::SourceZone;
use chrono::NaiveDate;
use std::collections::BTreeMap;

/// A backstop far above a day's readings (1,440 at one a minute).
const MAX_DAY_READINGS: usize = 20_000;

#[derive(Debug, Default)]
pub struct Report {
    pub days: usize,
    pub written: usize,
    /// Each day's reading count as its recompute found it (the sessions step keeps them).
    pub counts: BTreeMap<(DeviceSn, NaiveDate), u64>,
    /// Sequence numbers of the records whose day could not be rolled up.
    pub failed: Vec<String>,
}

pub async fn step<R: ReadStore, U: RollupStore>(
    reads: &R,
    rollups: &U,
    zone: &SourceZone,
    batch: &[(String, StoredReading)],
) -> Report {
    let mut days: BTreeMap<(DeviceSn, NaiveDate), Vec<&(String, StoredReading)>> = BTreeMap::new();
    for rec in batch {
        if let Some(day) = zone.local_date(rec.1.measured_at) {
            days.entry((rec.1.device_sn.clone(), day)).or_default().push(rec);
        }
    }
    let mut report = Report { days: days.len(), ..Report::default() };
    for ((sn, day), recs) in days {
        let newest: Vec<StoredReading> = recs.iter().map(|(_, r)| r.clone()).collect();
        match rollup_day(reads, rollups, zone, &sn, day, newest).await {
            Ok((written, count)) => {
                report.written += usize::from(written == Written::Stored);
                report.counts.insert((sn.clone(), day), count);
            }
            Err(e) => {
                tracing::warn!(target: "cgm_events", device_sn = sn.as_str(), %day, error = %e, "rollup failed; its records are retried");
                report.failed.extend(recs.iter().map(|(seq, _)| seq.clone()));
            }
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
) -> Result<(Written, u64), Box<dyn std::error::Error + Send + Sync>> {
    let range = zone.local_day(day).and_then(|d| d.to_included()).ok_or("the day has no instants")?;
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
    use cgm_shared::store::reads::memory::MemoryReadStore;
    use cgm_shared::store::rollups::memory::MemoryRollupStore;
    use cgm_shared::time::Timestamp;
    use std::sync::atomic::Ordering;

    fn reading(i: u64, at: i64) -> StoredReading {
        StoredReading {
            test_id: format!("t{i}").into(),
            device_sn: "D".into(),
            measured_at: Timestamp(at),
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
}
