//! The DynamoDB implementation of `cgm_domain::store::submissions`.

pub mod dynamodb;
