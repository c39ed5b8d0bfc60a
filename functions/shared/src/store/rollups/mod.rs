//! Where daily rollups are kept: one item per device and local day. [`dynamodb::DynamoRollupStore`]
//! is what runs; [`memory::MemoryRollupStore`] serves unit tests of the stream consumer.
//!
//! A rollup is written only over one made from fewer readings (the count of a day's
//! readings only grows as late ones arrive; stored readings never change) or with another
//! zone or bin width (a change of `SOURCE_TIMEZONE` makes every rollup stale): a redelivered
//! batch writes nothing, and two instances racing on the same day can never replace a
//! rollup with an older one.

pub mod dynamodb;
pub mod memory;

use super::StoreError;
use crate::ids::DeviceSn;
use crate::rollup::DayRollup;
use chrono::NaiveDate;
use std::future::Future;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    Stored,
    /// A rollup of as many readings or more, made the same way, is already there.
    AlreadyCurrent,
}

pub trait RollupStore: Send + Sync {
    fn put_rollup(&self, r: &DayRollup) -> impl Future<Output = Result<Written, StoreError>> + Send;

    /// The device's rollups for the local days `from..=to`, in day order.
    fn rollups(
        &self,
        device_sn: &DeviceSn,
        from: NaiveDate,
        to: NaiveDate,
    ) -> impl Future<Output = Result<Vec<DayRollup>, StoreError>> + Send;
}
