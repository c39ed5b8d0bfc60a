//! An in-memory [`CheckpointStore`] with the DynamoDB store's version check. Not durable.

use super::{Checkpoint, CheckpointStore, Kind, Saved};
use cgm_domain::ids::DeviceSn;
use cgm_domain::store::StoreError;
use std::collections::BTreeMap;
use std::sync::Mutex;

#[derive(Debug, Default)]
pub struct MemoryCheckpointStore {
    pub items: Mutex<BTreeMap<(DeviceSn, Kind), Checkpoint>>,
}

impl CheckpointStore for MemoryCheckpointStore {
    async fn get(&self, device_sn: &DeviceSn, kind: Kind) -> Result<Checkpoint, StoreError> {
        let items = self.items.lock().expect("memory store lock");
        Ok(items.get(&(device_sn.clone(), kind)).cloned().unwrap_or_else(|| Checkpoint::new(device_sn.clone(), kind)))
    }

    async fn put(&self, c: &Checkpoint) -> Result<Saved, StoreError> {
        let mut items = self.items.lock().expect("memory store lock");
        let key = (c.device_sn.clone(), c.kind);
        if items.get(&key).map_or(0, |o| o.version) != c.version {
            return Ok(Saved::Conflict);
        }
        let Some(next) = c.version.checked_add(1) else { return Err(super::version_limit()) };
        items.insert(key, Checkpoint { version: next, ..c.clone() });
        Ok(Saved::Stored)
    }

    async fn open(&self) -> Result<Vec<Checkpoint>, StoreError> {
        Ok(self.items.lock().expect("memory store lock").values().filter(|c| !c.done).cloned().collect())
    }
}
