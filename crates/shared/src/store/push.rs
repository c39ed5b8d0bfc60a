//! The DynamoDB implementation of `cgm_domain::store::push`.

pub mod dynamodb;
#[cfg(test)]
mod parse_props;
