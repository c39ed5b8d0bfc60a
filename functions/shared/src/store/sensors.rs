//! `cgm_domain::store::sensors` (re-exported) and its DynamoDB implementation.

pub use cgm_domain::store::sensors::*;

pub mod dynamodb;
