//! The DynamoDB implementations of the domain's stores (`cgm_domain::store`: the traits and
//! the memory implementations), one `dynamodb` module per store, and [`attr`]: the
//! attribute and index names and the value helpers every implementation uses.

pub mod attr;
pub mod patients;
pub mod poison;
pub mod push;
pub mod reads;
pub mod rollups;
pub mod sensors;
pub mod submissions;
