//! Where sensor sessions are kept: one item per `deviceSn` in the sensors table, written by
//! the readings-stream consumer and its scheduled check, read by the ward routes.
//!
//! A write names the version it read ([`Session::version`], 0 for none): it is refused with
//! [`Saved::Conflict`] when another writer got there first, and the writer reads again and
//! re-applies its readings (applying is idempotent, so nothing counts twice). Three indexes:
//! the active sessions (sparse: only a session still running is in it) for the scheduled
//! check, never a scan; a hospital's sessions (`customerName`); a patient's (`patientId`,
//! personal, IAM routes only).

pub mod memory;

use super::StoreError;
use crate::ids::DeviceSn;
use crate::session::Session;
use std::future::Future;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Saved {
    Stored,
    /// The stored session is no longer the version read.
    Conflict,
}

pub trait SensorStore: Send + Sync {
    /// The device's session, read consistently (what a write will be checked against).
    fn session(&self, device_sn: &DeviceSn) -> impl Future<Output = Result<Option<Session>, StoreError>> + Send;

    /// Writes `s` as version `s.version + 1` if the stored one is still `s.version`.
    fn put_session(&self, s: &Session) -> impl Future<Output = Result<Saved, StoreError>> + Send;

    /// Every session still running.
    fn active(&self) -> impl Future<Output = Result<Vec<Session>, StoreError>> + Send;

    /// A hospital's sessions (`customerName`), newest reading first.
    fn by_customer(&self, customer: &str) -> impl Future<Output = Result<Vec<Session>, StoreError>> + Send;

    /// Every session of a patient (`patientId`), earliest first.
    fn by_patient(&self, patient_id: &str) -> impl Future<Output = Result<Vec<Session>, StoreError>> + Send;
}
