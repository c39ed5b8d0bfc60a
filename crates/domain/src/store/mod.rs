//! Where the functions keep their data, as the domain sees it. Every store has the same
//! shape: a narrow trait in its `mod.rs` (what its function needs, in domain types) and an
//! in-memory implementation in `memory.rs` where unit tests want it; the DynamoDB
//! implementations are in `cgm-shared` (`cgm_shared::store::<store>::dynamodb`), the only
//! crate that speaks DynamoDB.
//!
//! - [`push`]: the readings, the conflicts and the quarantine, written by the push route;
//! - [`reads`]: a device's readings through the device/time index, and follower tokens;
//! - [`rollups`]: daily rollups, written by the readings-stream consumer;
//! - [`sensors`]: sensor sessions and their alerts, written by the same consumer;
//! - [`poison`]: stream records the same consumer gave up on for good, kept (in the
//!   quarantine table) for the operator to redo;
//! - [`patients`]: who wore a device, for the AGP PDF's header when a setting allows it;
//! - [`submissions`]: one-time FHIR submissions, asked for by the FHIR function and sent by
//!   the FHIR submitter.
//!
//! The partner proxy's token store has the same shape in the partner crate.

pub mod patients;
pub mod poison;
pub mod push;
pub mod reads;
pub mod rollups;
pub mod sensors;
pub mod submissions;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store did not answer in time; the outcome of the write is unknown.
    #[error("storage did not answer in time")]
    Timeout,
    /// The store answered with an error, or could not be reached.
    #[error("storage failed ({kind})")]
    Failed {
        /// A short, data-free name for the failure (an AWS error code or the SDK's class).
        kind: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// Whether a record written once (a conflict, a quarantined body, a poisoned stream record)
/// was new or collapsed onto an earlier one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    New,
    AlreadyThere,
}

impl StoreError {
    /// A failure that no retry can cure: the store refused the request itself (DynamoDB's
    /// `ValidationException`: a key over its size, a number it cannot hold). The caller
    /// quarantines what it was writing instead of answering "try again".
    pub fn is_permanent(&self) -> bool {
        matches!(self, StoreError::Failed { kind, .. } if kind == "ValidationException")
    }

    /// The failure an in-memory store reports when a test asks it to fail.
    pub fn unavailable_for_test() -> Self {
        StoreError::Failed { kind: "Unavailable".into(), source: "memory store set to fail".into() }
    }
}
