//! The DynamoDB implementation of `cgm_domain::store::patients`.

pub mod dynamodb;
