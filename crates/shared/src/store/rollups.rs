//! The DynamoDB implementation of `cgm_domain::store::rollups`.

pub mod dynamodb;
