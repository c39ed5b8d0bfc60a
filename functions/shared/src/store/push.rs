//! `cgm_domain::store::push` (re-exported) and its DynamoDB implementation.

pub use cgm_domain::store::push::*;

pub mod dynamodb;
#[cfg(test)]
mod parse_props;
