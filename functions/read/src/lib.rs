//! The read side: what Sinocare pushed, made useful. A device's readings by time (JSON or
//! CSV, paged), the gaps in its sequence, the consensus CGM metrics, a daily chart as SVG,
//! and a Nightscout-compatible feed that followers such as xDrip+ read with a per-device
//! token.
//!
//! Everything is read from the readings table's device/time index with queries (never a
//! scan) that fetch measurement fields only: patient fields never reach this function.
//! It writes nothing but follower tokens, which it stores hashed. The maths (metrics, gaps,
//! trend arrows, chart geometry) are plain functions in their own modules; [`ReadService`]
//! only turns requests into those calls and their results into replies.

mod chart;
mod cursor;
mod follow;
mod gaps;
mod handler;
mod metrics;
mod nightscout;
mod paging;
mod params;
mod reply;

pub use handler::ReadService;

use cgm_shared::aws::{self, CallLimits};
use cgm_shared::config::Config;
use cgm_shared::store::reads::DynamoReadStore;

/// Builds the service the way a cold start does: one DynamoDB client for the process. The
/// read side holds no secret, so there is nothing else to resolve.
pub async fn from_config(cfg: &Config) -> ReadService<DynamoReadStore> {
    let sdk = aws::sdk_config(cfg).await;
    let client = aws::dynamodb(&sdk, cfg.dynamodb_endpoint.as_deref(), CallLimits::READ);
    let store = DynamoReadStore::new(client, cfg.tables.readings.clone(), cfg.tables.follow_tokens.clone());
    ReadService::new(store, cfg.source_timezone)
}
