//! `cgm_domain::store::patients` (re-exported) and its DynamoDB implementation.

pub use cgm_domain::store::patients::*;

pub mod dynamodb;
