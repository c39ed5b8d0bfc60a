//! The DynamoDB implementation of `cgm_domain::store::sensors`.

pub mod dynamodb;
