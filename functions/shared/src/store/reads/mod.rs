//! What the read side needs from storage: a device's readings in time order through the
//! device/time index, one page at a time, and the follower tokens of the Nightscout feed.
//! [`dynamodb::DynamoReadStore`] is what runs; [`memory::MemoryReadStore`] serves unit
//! tests of the routes.
//!
//! A stored reading here has measurement fields only: the queries name the attributes they
//! fetch, so the patient fields (`idCard`, `patientName`, …) never reach the read side.
//! Follower tokens are stored only as hashes.

pub mod dynamodb;
pub mod memory;

use super::StoreError;
use crate::ids::{DeviceSn, TestId};
use crate::time::{Included, TimeRange, Timestamp};
use std::future::Future;

/// A stored reading as the read side sees it: measurement fields only, never patient data.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredReading {
    pub test_id: TestId,
    pub device_sn: DeviceSn,
    pub measured_at: Timestamp,
    /// mmol/L.
    pub mmol: f64,
    pub serial_no: Option<u64>,
    pub status: Option<String>,
    /// False for warm-up (`status` 1) and other unusable readings.
    pub valid: bool,
    /// Minutes between readings, as the sensor reports it.
    pub incre_minute: Option<u64>,
    /// The device's low and high alert thresholds (mmol/L), when sent as numbers.
    pub low: Option<f64>,
    pub high: Option<f64>,
}

/// A place in a device's time index: the key of the last reading a page covered. The next
/// page starts after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    pub measured_at: Timestamp,
    pub test_id: TestId,
}

impl StoredReading {
    pub fn position(&self) -> Position {
        Position { measured_at: self.measured_at, test_id: self.test_id.clone() }
    }
}

/// One query on the device/time index.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReadingQuery<'a> {
    pub device_sn: &'a DeviceSn,
    pub range: TimeRange<Included>,
    /// Skip invalid (warm-up) readings, in the query itself (a filter expression).
    pub valid_only: bool,
    pub newest_first: bool,
}

/// What one call to the index returned. `next` is set while the index holds more for the
/// query; a batch may be empty and still have a `next` (everything it read was filtered out).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Batch {
    pub readings: Vec<StoredReading>,
    pub next: Option<Position>,
}

/// A follower's token as stored: hashes only, never the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FollowToken {
    pub token_id: String,
    pub device_sn: DeviceSn,
    /// SHA-256 of the token, lowercase hex (looked up for `?token=`).
    pub token_hash: String,
    /// SHA-1 of the token, lowercase hex (looked up for Nightscout's `api-secret` header).
    pub sha1_hash: String,
    pub created_at: Timestamp,
}

/// Which hash of a token a follower presented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenHash<'a> {
    Sha256(&'a str),
    Sha1(&'a str),
}

impl TokenHash<'_> {
    /// Whether a stored token carries this hash.
    pub fn matches(&self, t: &FollowToken) -> bool {
        match self {
            TokenHash::Sha256(h) => t.token_hash == *h,
            TokenHash::Sha1(h) => t.sha1_hash == *h,
        }
    }
}

pub trait ReadStore: Send + Sync {
    /// One call to the device/time index: at most `limit` readings evaluated (before the
    /// filter), starting after `start`.
    fn query_readings(
        &self,
        q: &ReadingQuery<'_>,
        start: Option<&Position>,
        limit: Option<u32>,
    ) -> impl Future<Output = Result<Batch, StoreError>> + Send;

    /// Stores a new token (never overwrites one with the same id).
    fn put_follow_token(&self, t: &FollowToken) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The live token with this hash, if any.
    fn find_follow_token(
        &self,
        hash: TokenHash<'_>,
    ) -> impl Future<Output = Result<Option<FollowToken>, StoreError>> + Send;

    /// Deletes the device's token; `false` when there is no such token for that device.
    fn delete_follow_token(
        &self,
        device_sn: &DeviceSn,
        token_id: &str,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
}
