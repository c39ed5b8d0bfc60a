//! Where daily rollups are kept: one item per device and local day. `cgm_shared`'s `DynamoRollupStore`
//! is what runs; [`memory::MemoryRollupStore`] serves unit tests of the stream consumer.
//!
//! A rollup is written only over one made from fewer readings (the count of a day's
//! readings only grows as late ones arrive; stored readings never change) or with another
//! zone or bin width (a change of `SOURCE_TIMEZONE` makes every rollup stale): a redelivered
//! batch writes nothing, and two instances racing on the same day can never replace a
//! rollup with an older one.

pub mod memory;

use super::StoreError;
use super::reads::{ReadAllError, ReadStore, ReadingQuery, read_all};
use crate::ids::DeviceSn;
use crate::rollup::{DayRollup, Piece};
use crate::time::{Included, SourceZone, TimeRange, Timestamp};
use chrono::NaiveDate;
use std::collections::BTreeMap;
use std::future::Future;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    Stored,
    /// A rollup of as many readings or more, made the same way, is already there.
    AlreadyCurrent,
}

pub trait RollupStore: Send + Sync {
    fn put_rollup(&self, r: &DayRollup) -> impl Future<Output = Result<Written, StoreError>> + Send;

    /// The device's rollups for the local days `from..=to`, in day order; with
    /// [`Bins::Without`] their time-of-day bins (most of an item) are not read and come back
    /// empty.
    fn rollups(
        &self,
        device_sn: &DeviceSn,
        from: NaiveDate,
        to: NaiveDate,
        bins: Bins,
    ) -> impl Future<Output = Result<Vec<DayRollup>, StoreError>> + Send;
}

/// Whether a read of rollups needs their time-of-day bins (the AGP does; the summary and
/// gaps do not).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bins {
    With,
    Without,
}

/// A range of one device's data as reports read it, in time order: each whole local day
/// inside the range from its rollup (one made as one made now would be), every other stretch
/// (the partial days at the ends, days not rolled up yet, merged where they touch) from its
/// readings. What the summary, gaps, AGP, FHIR summaries and ward views read: with
/// [`crate::rollup::Period::of`] and [`crate::rollup::gaps_of`] they give the numbers of all
/// the readings, once the stream has been drained (without bins with [`Bins::Without`]).
/// `max_readings` bounds each stretch read.
pub async fn read_range<R: ReadStore, U: RollupStore>(
    reads: &R,
    rollups: &U,
    zone: &SourceZone,
    device_sn: &DeviceSn,
    range: TimeRange<Included>,
    bins: Bins,
    max_readings: usize,
) -> Result<Vec<Piece>, ReadAllError> {
    let mut whole = Vec::new();
    if let (Some(first), Some(last)) = (zone.local_date(range.start()), zone.local_date(range.end())) {
        let mut d = first;
        while d <= last {
            if let Some(span) = zone.local_day(d)
                && span.start() >= range.start()
                && span.end().minus_ms(1) <= range.end()
            {
                whole.push((d, span));
            }
            let Some(next) = d.succ_opt() else { break };
            d = next;
        }
    }
    let mut by_day: BTreeMap<NaiveDate, DayRollup> = match (whole.first(), whole.last()) {
        (Some((first, _)), Some((last, _))) => rollups
            .rollups(device_sn, *first, *last, bins)
            .await?
            .into_iter()
            .filter(|r| r.made_with(zone))
            .map(|r| (r.day, r))
            .collect(),
        _ => BTreeMap::new(),
    };
    let stretch = |from: Timestamp, to: Timestamp| async move {
        let Some(range) = TimeRange::new(from, to) else { return Ok::<_, ReadAllError>(None) };
        let q = ReadingQuery { device_sn, range, valid_only: false, newest_first: false };
        Ok(Some(Piece::Readings(read_all(reads, &q, max_readings).await?)))
    };
    let mut pieces = Vec::new();
    let mut from = range.start();
    for (day, span) in &whole {
        let Some(r) = by_day.remove(day) else { continue };
        if from < span.start() {
            pieces.extend(stretch(from, span.start().minus_ms(1)).await?);
        }
        pieces.push(Piece::Day(Box::new(r)));
        from = span.end();
    }
    if from <= range.end() {
        pieces.extend(stretch(from, range.end()).await?);
    }
    Ok(pieces)
}
