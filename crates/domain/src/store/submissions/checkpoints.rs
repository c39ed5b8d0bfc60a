//! Where the FHIR submitter remembers what the EHR has: one checkpoint per device and kind
//! (its readings, its summaries) in the submissions table, key `deviceSn` and `kind`
//! (`cgm_shared::store::submissions::dynamodb::DynamoCheckpointStore`, beside the table's
//! other layout, the one-time requests; [`super::memory::MemoryCheckpointStore`] for tests).
//!
//! A checkpoint moves only past entries the EHR answered for (accepted, or declined by its
//! own rules), and only after it answered: a run cut off before that sends the same entries
//! again, and their `ifNoneExist` makes the EHR match rather than create them. A write names
//! the version it read, so two runs cannot move one checkpoint apart.

use crate::ids::DeviceSn;
use crate::store::StoreError;
use crate::time::Timestamp;
use chrono::NaiveDate;
use std::collections::BTreeMap;
use std::future::Future;

/// What a checkpoint counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// `cgm-sensor-reading-*` Observations; `through` is the last reading's place in the
    /// device/time index ([`crate::store::reads::Position::to_cursor_text`]).
    Readings,
    /// `cgm-summary` panels; `through` is the last local day one covered (`YYYY-MM-DD`).
    Summary,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Readings => "readings",
            Kind::Summary => "summary",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        [Kind::Readings, Kind::Summary].into_iter().find(|k| k.as_str() == s)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub device_sn: DeviceSn,
    pub kind: Kind,
    /// Where the EHR's copy ends; `None` before the first accepted submission.
    pub through: Option<String>,
    /// Entries the EHR accepted (created, or matched to what it had).
    pub accepted: u64,
    /// Entries the EHR declined by its own rules (the IG lets it keep a subset): counted,
    /// never resent.
    pub declined: u64,
    pub updated_at: Timestamp,
    /// Readings: each local day's reading count (the session's, from the day's rollup) when
    /// the checkpoint last covered that day. A day whose count has grown since got readings
    /// late, measured before the checkpoint: that day is sent again.
    pub days: BTreeMap<NaiveDate, u64>,
    /// The sensor's session ended and everything of it was sent: no longer looked at.
    pub done: bool,
    /// Readings: when a run last sent everything up to the newest reading (its `now`; 0:
    /// never). A standing order's period counts from it.
    pub completed_at: Timestamp,
    /// The store's write counter (0: never written).
    pub version: u64,
}

impl Checkpoint {
    pub fn new(device_sn: DeviceSn, kind: Kind) -> Self {
        Checkpoint {
            device_sn,
            kind,
            through: None,
            accepted: 0,
            declined: 0,
            updated_at: Timestamp::from_ms(0),
            days: BTreeMap::new(),
            done: false,
            completed_at: Timestamp::from_ms(0),
            version: 0,
        }
    }
}

/// A checkpoint whose stored version is the largest there is cannot be written again.
pub fn version_limit() -> StoreError {
    StoreError::Failed { kind: "VersionLimit".into(), source: "the checkpoint's stored version is at its limit".into() }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Saved {
    Stored,
    /// Another run moved the checkpoint since it was read.
    Conflict,
}

pub trait CheckpointStore: Send + Sync {
    /// The checkpoint, read consistently; a new one (version 0) when there is none.
    fn get(&self, device_sn: &DeviceSn, kind: Kind) -> impl Future<Output = Result<Checkpoint, StoreError>> + Send;

    /// Writes `c` as version `c.version + 1` if the stored one is still `c.version`.
    fn put(&self, c: &Checkpoint) -> impl Future<Output = Result<Saved, StoreError>> + Send;

    /// Every checkpoint not yet done: the devices whose sessions ended since.
    fn open(&self) -> impl Future<Output = Result<Vec<Checkpoint>, StoreError>> + Send;
}
