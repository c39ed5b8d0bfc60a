//! Where pushes are kept: the readings, the conflicts and the quarantine, behind one narrow
//! trait. `cgm_shared`'s `DynamoStore` is what runs; [`memory::MemoryStore`] serves fast unit
//! tests of the handler.
//!
//! A second delivery of a `testId` is an outcome, not an error: `put_reading` answers
//! [`PutOutcome::Existing`] with the stored measurement, and the caller decides between
//! duplicate and conflict.

pub mod memory;

use super::StoreError;
use crate::push::{Measurement, Reading};
use std::future::Future;

/// When and through which request a body arrived.
#[derive(Debug, Clone)]
pub struct Arrival {
    pub received_at_ms: i64,
    pub request_id: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum PutOutcome {
    /// The reading was new and is now stored.
    Stored,
    /// An item with this `testId` was already stored; its measurement, when it could be
    /// read back.
    Existing(Option<Measurement>),
}

pub use super::Recorded;

/// A second, different measurement under a `testId` that is already stored.
#[derive(Debug, Clone)]
pub struct Conflict<'a> {
    pub reading: &'a Reading,
    pub measurement_hash: String,
    pub raw_body: &'a [u8],
}

/// A body that could not be stored as a reading, keyed by the SHA-256 of the whole body.
#[derive(Debug, Clone)]
pub struct Quarantined<'a> {
    pub body_sha256: String,
    pub reason: &'a str,
    /// The body, or for an oversized one its first bytes.
    pub body: &'a [u8],
    pub body_length: usize,
    pub truncated: bool,
}

pub trait PushStore: Send + Sync {
    /// Stores the reading unless its `testId` is already there (one conditional write).
    fn put_reading(
        &self,
        reading: &Reading,
        arrival: &Arrival,
    ) -> impl Future<Output = Result<PutOutcome, StoreError>> + Send;

    /// Records a conflicting delivery, once per (`testId`, measurement hash).
    fn put_conflict(
        &self,
        conflict: &Conflict<'_>,
        arrival: &Arrival,
    ) -> impl Future<Output = Result<Recorded, StoreError>> + Send;

    /// Keeps an unusable body, once per body hash.
    fn put_quarantine(
        &self,
        q: &Quarantined<'_>,
        arrival: &Arrival,
    ) -> impl Future<Output = Result<Recorded, StoreError>> + Send;
}
