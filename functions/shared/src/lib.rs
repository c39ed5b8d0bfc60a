//! What the cgm-bridge Lambdas share: configuration read once from the environment, the
//! Sinocare push domain (parsing, validation, the stored item), DynamoDB storage behind a
//! narrow trait, and logging set up the way Lambda expects.
//!
//! The domain modules know nothing of AWS or HTTP; `store::dynamodb` is the only place that
//! speaks DynamoDB. Handlers and their HTTP replies live in each function's own crate.

pub mod aws;
pub mod config;
pub mod partner;
pub mod push;
pub mod sensitive;
pub mod startup;
pub mod stats;
pub mod store;
pub mod telemetry;
pub mod time;

pub use config::{Config, ConfigError};
