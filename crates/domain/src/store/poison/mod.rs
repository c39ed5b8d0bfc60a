//! Readings-stream records the consumer gave up on for good: a record no retry can make
//! succeed (a reading whose day has no instants, a write DynamoDB refuses outright) is kept
//! here once, with why, and the shard moves on; `cgm-replay poison` lists them and redoes
//! them once the cause is fixed.
//!
//! They live in the quarantine table beside the push route's bodies, under keys of their own
//! (`stream:` and a SHA-256, never a body's bare hash) and with `source` = `stream`: the one
//! place the operator already looks for what could not be processed, the same TTL, and no
//! table to add to the stack. A record holds the reading's keys and a reason only (no body,
//! no personal field): the reading itself stays in the readings table.

pub mod memory;

use super::StoreError;
use super::push::Recorded;
use crate::ids::{DeviceSn, TestId};
use crate::time::Timestamp;
use sha2::{Digest, Sha256};
use std::future::Future;

/// The attribute that tells a stream record from a quarantined push body, and its value.
pub const SOURCE: &str = "source";
pub const STREAM: &str = "stream";
/// The stream record's sequence number, as the event source mapping named it.
pub const SEQUENCE_NUMBER: &str = "sequenceNumber";
/// What every poisoned record's key starts with; a push body's key is bare hex.
pub const KEY_PREFIX: &str = "stream:";

/// A stream record that can never succeed, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Poisoned {
    /// Its key in the quarantine table ([`KEY_PREFIX`] and the SHA-256 of the testId and
    /// the reason): a redelivery of the record, or a later record of the same reading
    /// failing the same way, is the same item.
    pub key: String,
    pub test_id: TestId,
    pub device_sn: DeviceSn,
    pub sequence_number: String,
    /// Short English, each failing step's reason joined by `; `; never personal data.
    pub reason: String,
    /// When the consumer gave up on it.
    pub at: Timestamp,
}

impl Poisoned {
    /// The record of the reading `test_id` at `sequence_number`, given up on at `at` for
    /// `reasons` (repeats dropped, in the order given).
    pub fn new(
        test_id: TestId,
        device_sn: DeviceSn,
        sequence_number: impl Into<String>,
        reasons: &[&str],
        at: Timestamp,
    ) -> Self {
        let mut kept: Vec<&str> = Vec::with_capacity(reasons.len());
        for r in reasons {
            if !kept.contains(r) {
                kept.push(r);
            }
        }
        let reason = kept.join("; ");
        let mut h = Sha256::new();
        h.update(test_id.as_str().as_bytes());
        // A separator no testId can end in ambiguously: the two parts cannot run together.
        h.update([0u8]);
        h.update(reason.as_bytes());
        let key = format!("{KEY_PREFIX}{}", hex::encode(h.finalize()));
        Poisoned { key, test_id, device_sn, sequence_number: sequence_number.into(), reason, at }
    }
}

/// Where the consumer keeps what it gave up on, and where the operator's tool finds it.
pub trait PoisonStore: Send + Sync {
    /// Keeps a record once per key (one conditional write): a repeat answers
    /// [`Recorded::AlreadyThere`] and changes nothing.
    fn put_poison(&self, p: &Poisoned) -> impl Future<Output = Result<Recorded, StoreError>> + Send;

    /// Every kept record, oldest first.
    fn poisoned(&self) -> impl Future<Output = Result<Vec<Poisoned>, StoreError>> + Send;

    /// Forgets a record (once it has been redone).
    fn release(&self, key: &str) -> impl Future<Output = Result<(), StoreError>> + Send;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_key_per_reading_and_reason_never_a_push_bodys() {
        let p = |id: &str, seq: &str, reasons: &[&str]| {
            Poisoned::new(id.into(), "SN".into(), seq, reasons, Timestamp::from_ms(1))
        };
        let a = p("t1", "100", &["the day has no instants"]);
        assert_eq!(a.key, p("t1", "200", &["the day has no instants"]).key, "a later record of the same failure");
        assert_ne!(a.key, p("t2", "100", &["the day has no instants"]).key);
        assert_ne!(a.key, p("t1", "100", &["another reason"]).key);
        assert!(a.key.starts_with(KEY_PREFIX) && a.key.len() == KEY_PREFIX.len() + 64, "{}", a.key);
        let both = p("t1", "100", &["x", "y", "x"]);
        assert_eq!(both.reason, "x; y");
    }
}
