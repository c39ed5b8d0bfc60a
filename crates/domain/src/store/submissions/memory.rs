//! In-memory stores of the submissions table's two layouts, with the DynamoDB stores' write
//! conditions: [`MemorySubmissionRequests`] (a new id only; a put over the version read) and
//! [`MemoryCheckpointStore`] (a put over the version read). Not durable.

use super::checkpoints::{self, Checkpoint, CheckpointStore, Kind, Saved};
use super::{RequestStatus, SubmissionRequest, SubmissionRequests};
use crate::ids::DeviceSn;
use crate::store::StoreError;
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

#[derive(Debug, Default)]
pub struct MemorySubmissionRequests {
    /// id → request, as stored (its `version` the stored one).
    pub requests: Mutex<BTreeMap<String, SubmissionRequest>>,
    /// When set, every call fails as an unreachable table would.
    pub fail: AtomicBool,
}

impl MemorySubmissionRequests {
    fn check(&self) -> Result<(), StoreError> {
        if self.fail.load(Ordering::SeqCst) { Err(StoreError::unavailable_for_test()) } else { Ok(()) }
    }

    /// `r` as stored: written as version `r.version + 1`.
    fn stored(r: &SubmissionRequest) -> Result<SubmissionRequest, StoreError> {
        let version = r.version.checked_add(1).ok_or_else(|| StoreError::Failed {
            kind: "VersionLimit".into(),
            source: "the request's stored version is at its limit".into(),
        })?;
        Ok(SubmissionRequest { version, ..r.clone() })
    }
}

impl SubmissionRequests for MemorySubmissionRequests {
    async fn create(&self, r: &SubmissionRequest) -> Result<bool, StoreError> {
        self.check()?;
        let mut map = self.requests.lock().expect("memory store lock");
        if map.contains_key(&r.id) {
            return Ok(false);
        }
        map.insert(r.id.clone(), Self::stored(r)?);
        Ok(true)
    }

    async fn get(&self, id: &str) -> Result<Option<SubmissionRequest>, StoreError> {
        self.check()?;
        Ok(self.requests.lock().expect("memory store lock").get(id).cloned())
    }

    async fn put(&self, r: &SubmissionRequest) -> Result<bool, StoreError> {
        self.check()?;
        let mut map = self.requests.lock().expect("memory store lock");
        if map.get(&r.id).map(|old| old.version) != Some(r.version) {
            return Ok(false);
        }
        map.insert(r.id.clone(), Self::stored(r)?);
        Ok(true)
    }

    async fn queued(&self) -> Result<Vec<SubmissionRequest>, StoreError> {
        self.check()?;
        let map = self.requests.lock().expect("memory store lock");
        let mut out: Vec<SubmissionRequest> =
            map.values().filter(|r| r.status == RequestStatus::Queued).cloned().collect();
        out.sort_by_key(|r| r.created_at);
        Ok(out)
    }
}

/// An in-memory [`CheckpointStore`] with the DynamoDB store's version check. Not durable.
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
        let Some(next) = c.version.checked_add(1) else { return Err(checkpoints::version_limit()) };
        items.insert(key, Checkpoint { version: next, ..c.clone() });
        Ok(Saved::Stored)
    }

    async fn open(&self) -> Result<Vec<Checkpoint>, StoreError> {
        Ok(self.items.lock().expect("memory store lock").values().filter(|c| !c.done).cloned().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::DeviceSn;
    use crate::store::submissions::RequestProfiles;
    use crate::time::Timestamp;

    fn request(id: &str, created: i64) -> SubmissionRequest {
        SubmissionRequest {
            id: id.into(),
            device_sn: DeviceSn::from("SN1"),
            first: "2024-05-01".parse().unwrap(),
            last: "2024-05-01".parse().unwrap(),
            profiles: RequestProfiles { readings: true, summary: false, summary_pdf: false },
            status: RequestStatus::Queued,
            attempts: 0,
            accepted: 0,
            declined: 0,
            reason: None,
            created_at: Timestamp::from_ms(created),
            updated_at: Timestamp::from_ms(created),
            version: 0,
        }
    }

    #[tokio::test]
    async fn writes_are_conditional_as_in_the_table() {
        let store = MemorySubmissionRequests::default();
        assert!(store.create(&request("b", 2)).await.unwrap());
        assert!(store.create(&request("a", 1)).await.unwrap());
        assert!(!store.create(&request("a", 3)).await.unwrap(), "an id already taken");
        let queued = store.queued().await.unwrap();
        assert_eq!(queued.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), ["a", "b"], "oldest first");
        let mut a = queued[0].clone();
        assert_eq!(a.version, 1);
        a.status = RequestStatus::Done;
        assert!(store.put(&a).await.unwrap());
        assert!(!store.put(&a).await.unwrap(), "a put over a version no longer stored");
        assert!(!store.put(&request("never", 0)).await.unwrap(), "a put of a request never created");
        assert_eq!(store.get("a").await.unwrap().map(|r| (r.status, r.version)), Some((RequestStatus::Done, 2)));
        assert_eq!(store.queued().await.unwrap().len(), 1);
        store.fail.store(true, Ordering::SeqCst);
        assert!(store.queued().await.is_err());
    }
}
