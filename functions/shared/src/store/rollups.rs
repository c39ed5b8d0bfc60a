//! `cgm_domain::store::rollups` (re-exported) and its DynamoDB implementation.

pub use cgm_domain::store::rollups::*;

pub mod dynamodb;
