//! The domain every cgm-bridge function shares, and the stores it is kept in.
//!
//! - the Sinocare push ([`push`]): parsing, validation, the reading and its measurement;
//! - the values that travel furthest ([`ids`], [`time`]): `TestId`, `DeviceSn`, a UTC
//!   `Timestamp`, a `TimeRange` whose type says whether its end is included, the source zone;
//! - the consensus CGM [`metrics`] (time in ranges, GMI, CV) from counted values, the
//!   [`gaps`] in a sensor's sequence, and daily [`rollup`]s, which every report computes from;
//! - sensor [`session`]s and the [`alerts`] they raise (with the [`trend`] arrows' rates);
//! - page [`cursor`]s, one format for every paged route;
//! - the stores ([`store`]), each a narrow trait with a DynamoDB and an in-memory
//!   implementation, and the one module of DynamoDB attribute helpers;
//! - configuration read once at cold start ([`config`], [`aws`], [`startup`]) and logging
//!   ([`telemetry`]), with personal data kept out of both ([`sensitive`]).
//!
//! No HTTP here: no `lambda_http`, no HTTP client. The HTTP edge is `cgm-edge`; the partner
//! proxy's client, signer and token store are in `cgm-partner`. Only `store`'s `attr` and
//! `dynamodb` modules and [`aws`] speak AWS.

pub mod agp;
pub mod alerts;
pub mod aws;
pub mod config;
pub mod cursor;
pub mod follow;
pub mod gaps;
pub mod ids;
pub mod metrics;
pub mod push;
pub mod random;
pub mod reading;
pub mod rollup;
pub mod sensitive;
pub mod session;
pub mod startup;
pub mod stats;
pub mod store;
pub mod telemetry;
pub mod time;
pub mod trend;

pub use config::{Config, ConfigError};
