//! The DynamoDB implementation of `cgm_domain::store::reads`.

pub mod dynamodb;
