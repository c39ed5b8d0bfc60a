//! An in-memory [`PushStore`] for unit tests of the handler: same outcomes as DynamoDB,
//! no network. Not for production: nothing here is durable.

use super::{Arrival, Conflict, PushStore, PutOutcome, Quarantined, Recorded};
use crate::ids::TestId;
use crate::push::Reading;
use crate::store::StoreError;
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

/// A quarantined body as the memory store keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct KeptBody {
    pub reason: String,
    pub body: Vec<u8>,
    pub body_length: usize,
    pub truncated: bool,
}

#[derive(Debug, Default)]
pub struct MemoryStore {
    pub readings: Mutex<HashMap<TestId, Reading>>,
    /// (testId, measurement hash) → raw body.
    pub conflicts: Mutex<HashMap<(TestId, String), Vec<u8>>>,
    /// body hash → what was kept.
    pub quarantine: Mutex<HashMap<String, KeptBody>>,
    /// When set, every call fails as an unreachable table would.
    pub fail: AtomicBool,
    /// When set, readings and conflicts are refused as DynamoDB refuses an item it cannot
    /// hold (`ValidationException`, a permanent failure); the quarantine still takes bodies.
    pub refuse: AtomicBool,
}

impl MemoryStore {
    fn check(&self) -> Result<(), StoreError> {
        if self.fail.load(Ordering::SeqCst) {
            return Err(StoreError::unavailable_for_test());
        }
        Ok(())
    }

    /// [`Self::check`] for a write of a reading's values, which `refuse` refuses.
    fn check_item(&self) -> Result<(), StoreError> {
        self.check()?;
        if self.refuse.load(Ordering::SeqCst) {
            return Err(StoreError::Failed {
                kind: "ValidationException".into(),
                source: "memory store set to refuse the item".into(),
            });
        }
        Ok(())
    }
}

impl PushStore for MemoryStore {
    async fn put_reading(&self, reading: &Reading, _: &Arrival) -> Result<PutOutcome, StoreError> {
        self.check_item()?;
        let mut map = self.readings.lock().expect("memory store lock");
        if let Some(old) = map.get(&reading.test_id) {
            return Ok(PutOutcome::Existing(Some(old.measurement())));
        }
        map.insert(reading.test_id.clone(), reading.clone());
        Ok(PutOutcome::Stored)
    }

    async fn put_conflict(&self, c: &Conflict<'_>, _: &Arrival) -> Result<Recorded, StoreError> {
        self.check_item()?;
        let mut map = self.conflicts.lock().expect("memory store lock");
        let key = (c.reading.test_id.clone(), c.measurement_hash.clone());
        if map.contains_key(&key) {
            return Ok(Recorded::AlreadyThere);
        }
        map.insert(key, c.raw_body.to_vec());
        Ok(Recorded::New)
    }

    async fn put_quarantine(&self, q: &Quarantined<'_>, _: &Arrival) -> Result<Recorded, StoreError> {
        self.check()?;
        let mut map = self.quarantine.lock().expect("memory store lock");
        if map.contains_key(&q.body_sha256) {
            return Ok(Recorded::AlreadyThere);
        }
        let kept = KeptBody {
            reason: q.reason.to_string(),
            body: q.body.to_vec(),
            body_length: q.body_length,
            truncated: q.truncated,
        };
        map.insert(q.body_sha256.clone(), kept);
        Ok(Recorded::New)
    }
}
