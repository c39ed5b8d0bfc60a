//! An in-memory [`ReadStore`] for unit tests of the read routes: the device/time index as a
//! sorted list, with DynamoDB's paging rules (`limit` counts readings evaluated before the
//! filter, so a page of a filtered query may come back empty with a `next`). Not durable.

use super::{Batch, FollowToken, Position, ReadStore, ReadingQuery, StoredReading};
use crate::ids::DeviceSn;
use crate::store::StoreError;
use crate::time::Timestamp;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

#[derive(Debug, Default)]
pub struct MemoryReadStore {
    pub readings: Mutex<Vec<StoredReading>>,
    pub tokens: Mutex<Vec<FollowToken>>,
    /// Tokens stored before the rehash, by the SHA-1 hex they kept.
    pub legacy_tokens: Mutex<Vec<(String, FollowToken)>>,
    /// Index calls made, for tests of how a route pages.
    pub calls: AtomicUsize,
    /// When set, every call fails as an unreachable table would.
    pub fail: AtomicBool,
}

impl MemoryReadStore {
    pub fn with_readings(readings: Vec<StoredReading>) -> Self {
        MemoryReadStore { readings: Mutex::new(readings), ..Default::default() }
    }

    fn check(&self) -> Result<(), StoreError> {
        if self.fail.load(Ordering::SeqCst) { Err(StoreError::unavailable_for_test()) } else { Ok(()) }
    }
}

impl ReadStore for MemoryReadStore {
    async fn query_readings(
        &self,
        q: &ReadingQuery<'_>,
        start: Option<&Position>,
        limit: Option<u32>,
    ) -> Result<Batch, StoreError> {
        self.check()?;
        self.calls.fetch_add(1, Ordering::SeqCst);
        let all = self.readings.lock().expect("memory store lock");
        let mut rows: Vec<&StoredReading> =
            all.iter().filter(|r| r.device_sn == *q.device_sn && q.range.contains(r.measured_at)).collect();
        rows.sort_by(|a, b| (a.measured_at, &a.test_id).cmp(&(b.measured_at, &b.test_id)));
        if q.newest_first {
            rows.reverse();
        }
        if let Some(p) = start {
            let key = (p.measured_at, &p.test_id);
            rows.retain(|r| {
                let k = (r.measured_at, &r.test_id);
                if q.newest_first { k < key } else { k > key }
            });
        }
        let evaluated = limit.map_or(rows.len(), |l| (l as usize).min(rows.len()));
        let next = (evaluated < rows.len() && evaluated > 0).then(|| rows[evaluated - 1].position());
        let readings = rows[..evaluated].iter().filter(|r| !q.valid_only || r.valid).map(|r| (*r).clone()).collect();
        Ok(Batch { readings, next })
    }

    async fn put_follow_token(&self, t: &FollowToken) -> Result<(), StoreError> {
        self.check()?;
        let mut tokens = self.tokens.lock().expect("memory store lock");
        if !tokens.iter().any(|x| x.token_id == t.token_id) {
            tokens.push(t.clone());
        }
        Ok(())
    }

    async fn find_follow_token(&self, secret_hash: &str) -> Result<Option<FollowToken>, StoreError> {
        self.check()?;
        Ok(self.tokens.lock().expect("memory store lock").iter().find(|t| t.secret_hash == secret_hash).cloned())
    }

    async fn get_follow_token(&self, token_id: &str) -> Result<Option<FollowToken>, StoreError> {
        self.check()?;
        Ok(self.tokens.lock().expect("memory store lock").iter().find(|t| t.token_id == token_id).cloned())
    }

    async fn upgrade_legacy_follow_token(
        &self,
        sha1_hex: &str,
        secret_hash: &str,
        expires_at: Timestamp,
    ) -> Result<Option<FollowToken>, StoreError> {
        self.check()?;
        let mut legacy = self.legacy_tokens.lock().expect("memory store lock");
        let Some(i) = legacy.iter().position(|(h, _)| h == sha1_hex) else { return Ok(None) };
        let (_, mut t) = legacy.remove(i);
        t.secret_hash = secret_hash.to_string();
        t.expires_at = expires_at;
        self.tokens.lock().expect("memory store lock").push(t.clone());
        Ok(Some(t))
    }

    async fn list_follow_tokens(&self, device_sn: &DeviceSn) -> Result<Vec<FollowToken>, StoreError> {
        self.check()?;
        let tokens = self.tokens.lock().expect("memory store lock");
        Ok(tokens.iter().filter(|t| t.device_sn == *device_sn).cloned().collect())
    }

    async fn touch_follow_token(&self, token_id: &str, at: Timestamp) -> Result<(), StoreError> {
        self.check()?;
        for t in self.tokens.lock().expect("memory store lock").iter_mut().filter(|t| t.token_id == token_id) {
            t.last_used_at = Some(at);
        }
        Ok(())
    }

    async fn delete_follow_token(&self, device_sn: &DeviceSn, token_id: &str) -> Result<bool, StoreError> {
        self.check()?;
        let mut tokens = self.tokens.lock().expect("memory store lock");
        let before = tokens.len();
        tokens.retain(|t| !(t.token_id == token_id && t.device_sn == *device_sn));
        Ok(tokens.len() < before)
    }
}
