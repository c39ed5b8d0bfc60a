//! An in-memory [`SensorStore`] with the DynamoDB store's version check. Not durable.

use super::{Saved, SensorStore};
use crate::ids::DeviceSn;
use crate::session::Session;
use crate::store::StoreError;
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

#[derive(Debug, Default)]
pub struct MemorySensorStore {
    pub sessions: Mutex<BTreeMap<DeviceSn, Session>>,
    /// When set, every call fails as an unreachable table would.
    pub fail: AtomicBool,
    /// When set, a read yields to the executor once before answering, so two concurrent
    /// writers of one device interleave between their read and their write (as two shards'
    /// batches of one device do in Lambda).
    pub interleave: AtomicBool,
}

/// A future that is pending once (waking itself) and then ready: a yield that needs no
/// runtime of its own.
struct YieldOnce(bool);

impl std::future::Future for YieldOnce {
    type Output = ();

    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        if self.0 {
            return std::task::Poll::Ready(());
        }
        self.0 = true;
        cx.waker().wake_by_ref();
        std::task::Poll::Pending
    }
}

impl MemorySensorStore {
    fn check(&self) -> Result<(), StoreError> {
        if self.fail.load(Ordering::SeqCst) { Err(StoreError::unavailable_for_test()) } else { Ok(()) }
    }

    fn matching(&self, keep: impl Fn(&Session) -> bool) -> Vec<Session> {
        self.sessions.lock().expect("memory store lock").values().filter(|s| keep(s)).cloned().collect()
    }
}

impl SensorStore for MemorySensorStore {
    async fn session(&self, device_sn: &DeviceSn) -> Result<Option<Session>, StoreError> {
        self.check()?;
        let read = self.sessions.lock().expect("memory store lock").get(device_sn).cloned();
        if self.interleave.load(Ordering::SeqCst) {
            YieldOnce(false).await;
        }
        Ok(read)
    }

    async fn put_session(&self, s: &Session) -> Result<Saved, StoreError> {
        self.check()?;
        let mut map = self.sessions.lock().expect("memory store lock");
        let stored = map.get(&s.device_sn).map_or(0, |old| old.version);
        if stored != s.version {
            return Ok(Saved::Conflict);
        }
        map.insert(s.device_sn.clone(), Session { version: s.version + 1, ..s.clone() });
        Ok(Saved::Stored)
    }

    async fn active(&self) -> Result<Vec<Session>, StoreError> {
        self.check()?;
        Ok(self.matching(Session::active))
    }

    async fn by_customer(&self, customer: &str) -> Result<Vec<Session>, StoreError> {
        self.check()?;
        let mut out = self.matching(|s| s.customer_name.as_deref() == Some(customer));
        out.sort_by_key(|s| std::cmp::Reverse(s.last.at));
        Ok(out)
    }

    async fn by_patient(&self, patient_id: &str) -> Result<Vec<Session>, StoreError> {
        self.check()?;
        let mut out = self.matching(|s| s.patient_id.as_deref() == Some(patient_id));
        out.sort_by_key(|s| s.first.at);
        Ok(out)
    }
}
