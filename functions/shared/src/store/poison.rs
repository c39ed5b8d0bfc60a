//! `cgm_domain::store::poison` (re-exported) and its DynamoDB implementation.

pub use cgm_domain::store::poison::*;

pub mod dynamodb;
