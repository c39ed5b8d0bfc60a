//! The push receiver: `POST /sinocare/cgm`, where Sinocare's cloud delivers every CGM
//! reading, one at a time, and re-sends until it gets `{"code":0,"msg":""}` within 5 s.
//!
//! Code 0 means the body is durably stored: as a reading (once per `testId`), as a
//! recorded conflict, or in quarantine. The reply table is in `docs/sinocare-integration.md`.
//! [`PushService`]'s `handle` is what the Lambda, the local server and the tests all call.

pub mod auth;
mod handler;

pub use auth::{Denied, PushAuth};
pub use handler::{Outcome, PushApi, PushError, PushService};

use cgm_shared::aws::{self, CallLimits};
use cgm_shared::config::{Config, ConfigError, split_keys};
use cgm_shared::store::push::dynamodb::DynamoStore;
use std::time::Duration;

/// Builds the service the way a cold start does: resolves the push key (from `PUSH_KEY`
/// or the SSM parameter named by `PUSH_KEY_PARAM`) and creates the DynamoDB client once.
/// Inside Lambda a missing key is an error, so a mis-deployed stack never runs open.
pub async fn from_config(cfg: &Config) -> Result<PushService<DynamoStore>, ConfigError> {
    let sdk = aws::sdk_config(cfg).await;
    let key = aws::resolve_secret(&sdk, &cfg.push_key, "PUSH_KEY_PARAM").await?;
    let keys = key.map(|k| split_keys(k.expose())).unwrap_or_default();
    if keys.is_empty() && cfg.in_lambda {
        return Err(ConfigError::Missing {
            var: "PUSH_KEY_PARAM",
            why: "the push route must not run open inside Lambda; name an SSM SecureString holding the key(s)",
        });
    }
    if keys.is_empty() {
        tracing::warn!(
            "no PUSH_KEY configured: POST /sinocare/cgm accepts pushes without a key (local development only)"
        );
    }
    let client = aws::dynamodb(&sdk, cfg.dynamodb_endpoint.as_deref(), CallLimits::PUSH);
    Ok(PushService::new(
        DynamoStore::new(client, cfg.tables.clone()),
        PushAuth::new(&keys, cfg.allowed_source_cidrs.clone()),
        cfg.source_timezone,
        Duration::from_millis(cfg.push_deadline_ms),
    ))
}
