//! What the read side needs from storage: a device's readings in time order through the
//! device/time index, one page at a time, and the follower tokens of the Nightscout feed.
//! `cgm_shared`'s `DynamoReadStore` is what runs; [`memory::MemoryReadStore`] serves unit
//! tests of the routes.
//!
//! A stored reading here has measurement fields only: the queries name the attributes they
//! fetch, so the patient fields (`idCard`, `patientName`, …) never reach the read side.
//! Follower tokens are stored only as hashes.

pub mod memory;
pub mod paging;

use super::StoreError;
use crate::ids::{DeviceSn, TestId};
use crate::sensitive::Sensitive;
use crate::time::{Included, TimeRange, Timestamp};

pub use crate::reading::StoredReading;
use std::future::Future;

/// A place in a device's time index: the key of the last reading a page covered. The next
/// page starts after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    pub measured_at: Timestamp,
    pub test_id: TestId,
}

impl Position {
    /// The position as a cursor's text, `<measured_at ms>:<testId>` (the cursor signs and
    /// encodes it; see [`crate::cursor`]).
    pub fn to_cursor_text(&self) -> String {
        format!("{}:{}", self.measured_at.ms(), self.test_id)
    }

    /// A position back from [`Self::to_cursor_text`]; `None` for anything else.
    pub fn from_cursor_text(text: &str) -> Option<Position> {
        let (at, id) = text.split_once(':')?;
        if id.is_empty() {
            return None;
        }
        Some(Position { measured_at: Timestamp::from_ms(at.parse().ok()?), test_id: TestId::from(id) })
    }
}

/// The one cursor of every listing over the device/time index (the read API's readings,
/// FHIR's Observation search): the position of the last reading a page covered.
impl crate::cursor::CursorPayload for Position {
    const KIND: &'static str = "position";

    fn write(&self) -> String {
        self.to_cursor_text()
    }

    fn read(text: &str) -> Option<Self> {
        Position::from_cursor_text(text)
    }
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

/// A follower's token as stored: never the token, nor anything a client sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FollowToken {
    pub token_id: String,
    pub device_sn: DeviceSn,
    /// SHA-256 of the SHA-1 hex of the token (lowercase hex): every form a follower presents
    /// (the token, or the SHA-1 hex Nightscout clients send) reduces to it, and reading the
    /// table does not give what a client would send.
    pub secret_hash: String,
    /// Who or what the token is for ("Mum's phone"): may name a person, never logged.
    pub label: Option<Sensitive<String>>,
    pub created_at: Timestamp,
    /// Refused from then on, even before the table's TTL removes it.
    pub expires_at: Timestamp,
    /// Written at most hourly, not on every poll.
    pub last_used_at: Option<Timestamp>,
}

impl FollowToken {
    pub fn is_live(&self, now: Timestamp) -> bool {
        now < self.expires_at
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

    /// The token with this secret hash, if any (live or expired: the caller decides).
    fn find_follow_token(
        &self,
        secret_hash: &str,
    ) -> impl Future<Output = Result<Option<FollowToken>, StoreError>> + Send;

    /// The token with this id, read consistently (a revoked one is gone at once).
    fn get_follow_token(&self, token_id: &str) -> impl Future<Output = Result<Option<FollowToken>, StoreError>> + Send;

    /// A token stored before the rehash, by the SHA-1 hex it kept, upgraded in place on the
    /// way: its secret hash written, the SHA-1 hex removed, an expiry set. `None` when there
    /// is no such row (or another request upgraded it first).
    fn upgrade_legacy_follow_token(
        &self,
        sha1_hex: &str,
        secret_hash: &str,
        expires_at: Timestamp,
    ) -> impl Future<Output = Result<Option<FollowToken>, StoreError>> + Send;

    /// Every token of a device (ids, labels, times; never a secret).
    fn list_follow_tokens(
        &self,
        device_sn: &DeviceSn,
    ) -> impl Future<Output = Result<Vec<FollowToken>, StoreError>> + Send;

    /// Records that a token was used at `at`.
    fn touch_follow_token(&self, token_id: &str, at: Timestamp) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Deletes the device's token; `false` when there is no such token for that device.
    fn delete_follow_token(
        &self,
        device_sn: &DeviceSn,
        token_id: &str,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
}

#[derive(Debug, thiserror::Error)]
pub enum ReadAllError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the range holds more than {0} readings")]
    TooMany(usize),
}

/// Every reading of the query, for routes that compute over a whole range (bounded by the
/// caller's maximum range, and by `max` as a backstop).
pub async fn read_all<S: ReadStore + ?Sized>(
    store: &S,
    q: &ReadingQuery<'_>,
    max: usize,
) -> Result<Vec<StoredReading>, ReadAllError> {
    let mut out = Vec::new();
    let mut start = None;
    loop {
        let batch = store.query_readings(q, start.as_ref(), None).await?;
        out.extend(batch.readings);
        if out.len() > max {
            return Err(ReadAllError::TooMany(max));
        }
        match batch.next {
            None => return Ok(out),
            Some(p) => start = Some(p),
        }
    }
}
