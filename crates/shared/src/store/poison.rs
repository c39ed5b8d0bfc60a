//! The DynamoDB implementation of `cgm_domain::store::poison`.

pub mod dynamodb;
