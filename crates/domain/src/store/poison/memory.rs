//! An in-memory [`PoisonStore`] with the DynamoDB store's write condition. Not durable.

use super::{PoisonStore, Poisoned};
use crate::store::StoreError;
use crate::store::push::Recorded;
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

#[derive(Debug, Default)]
pub struct MemoryPoisonStore {
    /// key → record.
    pub records: Mutex<BTreeMap<String, Poisoned>>,
    /// Writes asked for, repeats included.
    pub puts: AtomicUsize,
    /// When set, every call fails as an unreachable table would.
    pub fail: AtomicBool,
}

impl MemoryPoisonStore {
    fn check(&self) -> Result<(), StoreError> {
        if self.fail.load(Ordering::SeqCst) { Err(StoreError::unavailable_for_test()) } else { Ok(()) }
    }

    /// The records kept, by key.
    pub fn kept(&self) -> Vec<Poisoned> {
        self.records.lock().expect("memory store lock").values().cloned().collect()
    }
}

impl PoisonStore for MemoryPoisonStore {
    async fn put_poison(&self, p: &Poisoned) -> Result<Recorded, StoreError> {
        self.check()?;
        self.puts.fetch_add(1, Ordering::SeqCst);
        let mut map = self.records.lock().expect("memory store lock");
        if map.contains_key(&p.key) {
            return Ok(Recorded::AlreadyThere);
        }
        map.insert(p.key.clone(), p.clone());
        Ok(Recorded::New)
    }

    async fn poisoned(&self) -> Result<Vec<Poisoned>, StoreError> {
        self.check()?;
        let mut all = self.kept();
        all.sort_by(|a, b| (a.at, &a.key).cmp(&(b.at, &b.key)));
        Ok(all)
    }

    async fn release(&self, key: &str) -> Result<(), StoreError> {
        self.check()?;
        self.records.lock().expect("memory store lock").remove(key);
        Ok(())
    }
}
