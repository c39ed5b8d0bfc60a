//! The domain of cgm-bridge, with no AWS in it: the build refuses an AWS import here
//! (`Cargo.toml` names no AWS crate, and `tests/no_aws.rs` holds it so).
//!
//! - the Sinocare push ([`push`]): parsing, validation, the reading and its measurement;
//!   the stored [`reading`] every consumer shares (measurement fields only);
//! - the values that travel furthest ([`ids`], [`time`]): `TestId`, `DeviceSn`, a UTC
//!   `Timestamp`, a `TimeRange` whose type says whether its end is included, the source zone;
//! - the consensus CGM [`metrics`] (time in ranges, GMI, CV) from counted values, the
//!   [`gaps`] in a sensor's sequence, daily [`rollup`]s (which every report computes from),
//!   the [`agp`]'s percentile bands and [`stats`];
//! - sensor [`session`]s and the [`alerts`] they raise (with the [`trend`] arrows' rates);
//! - page [`cursor`]s, one format for every paged route; follower tokens ([`follow`]);
//!   [`random`] ids; personal data kept out of logs ([`sensitive`]); how FHIR output is
//!   named ([`settings`]);
//! - the stores' contracts ([`store`]): each a narrow trait with an in-memory
//!   implementation. The DynamoDB implementations, configuration, cold start and logging
//!   are in `cgm-shared`; HTTP is in `cgm-edge`.

pub mod agp;
pub mod alerts;
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
pub mod settings;
pub mod stats;
pub mod store;
pub mod time;
pub mod trend;
