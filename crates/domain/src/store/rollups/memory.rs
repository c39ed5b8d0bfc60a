//! An in-memory [`RollupStore`] with the DynamoDB store's write condition. Not durable.

use super::{Bins, RollupStore, Written};
use crate::ids::DeviceSn;
use crate::rollup::DayRollup;
use crate::store::StoreError;
use chrono::NaiveDate;
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

#[derive(Debug, Default)]
pub struct MemoryRollupStore {
    pub rollups: Mutex<BTreeMap<(DeviceSn, NaiveDate), DayRollup>>,
    /// When set, every call fails as an unreachable table would.
    pub fail: AtomicBool,
}

impl RollupStore for MemoryRollupStore {
    async fn put_rollup(&self, r: &DayRollup) -> Result<Written, StoreError> {
        if self.fail.load(Ordering::SeqCst) {
            return Err(StoreError::unavailable_for_test());
        }
        let mut map = self.rollups.lock().expect("memory store lock");
        let key = (r.device_sn.clone(), r.day);
        match map.get(&key) {
            Some(old) if old.readings >= r.readings && old.zone == r.zone && old.bin_minutes == r.bin_minutes => {
                Ok(Written::AlreadyCurrent)
            }
            _ => {
                map.insert(key, r.clone());
                Ok(Written::Stored)
            }
        }
    }

    async fn rollups(
        &self,
        device_sn: &DeviceSn,
        from: NaiveDate,
        to: NaiveDate,
        bins: Bins,
    ) -> Result<Vec<DayRollup>, StoreError> {
        let map = self.rollups.lock().expect("memory store lock");
        let read = |r: &DayRollup| {
            let mut r = r.clone();
            if bins == Bins::Without {
                r.bins.clear();
            }
            r
        };
        Ok(map.range((device_sn.clone(), from)..=(device_sn.clone(), to)).map(|(_, r)| read(r)).collect())
    }
}
