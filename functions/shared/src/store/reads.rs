//! `cgm_domain::store::reads` (re-exported) and its DynamoDB implementation.

pub use cgm_domain::store::reads::*;

pub mod dynamodb;
