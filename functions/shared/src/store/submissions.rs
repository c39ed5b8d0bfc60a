//! `cgm_domain::store::submissions` (re-exported) and its DynamoDB implementation.

pub use cgm_domain::store::submissions::*;

pub mod dynamodb;
