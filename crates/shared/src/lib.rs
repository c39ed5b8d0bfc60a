//! What the deployed functions share besides the domain (`cgm-domain`): the DynamoDB
//! implementations of the domain's stores ([`store`]), configuration read once at cold start
//! ([`config`], [`aws`], [`startup`]) and logging ([`telemetry`]). This is the crate that
//! speaks AWS; the domain knows none.
//!
//! No HTTP here: no `lambda_http`, no HTTP client. The HTTP edge is `cgm-edge`; the partner
//! proxy's client, signer and token store are in `cgm-partner`.

pub mod aws;
pub mod config;
pub mod startup;
pub mod store;
pub mod telemetry;

pub use config::{Config, ConfigError};
