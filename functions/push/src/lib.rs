//! The push receiver: `POST /sinocare/cgm`, where Sinocare's cloud delivers every CGM
//! reading, one at a time, and re-sends until it gets `{"code":0,"msg":""}` within 5 s.
//!
//! Code 0 means the body is durably stored: as a reading (once per `testId`), as a
//! recorded conflict, or in quarantine. The reply table is in `docs/sinocare-integration.md`.
//! [`PushService`]'s `handle` is what the Lambda, the local server and the tests all call.

pub mod auth;
mod handler;

pub use auth::{Denied, PushAuth};
pub use handler::{Outcome, PushApi, PushError, PushService, STORAGE_REFUSED};

use cgm_domain::sensitive::Sensitive;
use cgm_shared::aws::{self, CallLimits};
use cgm_shared::config::{Config, ConfigError, SecretSetting, split_keys};
use cgm_shared::store::push::dynamodb::DynamoStore;
use std::time::Duration;

/// The shortest push key accepted inside Lambda: a key in a URL is guessed offline if short.
pub const MIN_KEY_CHARS: usize = 32;

/// Builds the service the way a cold start does: resolves the push key (from `PUSH_KEY`
/// or the SSM parameter named by `PUSH_KEY_PARAM`) and creates the DynamoDB client once.
/// Inside Lambda a missing key is an error, so a mis-deployed stack never runs open.
pub async fn from_config(cfg: &Config) -> Result<PushService<DynamoStore>, ConfigError> {
    if cfg.in_lambda && matches!(cfg.push_key, SecretSetting::Value(_)) {
        return Err(ConfigError::Invalid {
            var: "PUSH_KEY",
            reason: "inside Lambda the push key comes from an SSM SecureString named by PUSH_KEY_PARAM, never a \
                     plain variable (which the console shows)"
                .into(),
        });
    }
    let sdk = aws::sdk_config(cfg).await;
    let key = aws::resolve_secret(&sdk, &cfg.push_key, "PUSH_KEY_PARAM").await?;
    let keys = usable_keys(key.map(|k| split_keys(k.expose())).unwrap_or_default(), cfg.in_lambda)?;
    let client = aws::dynamodb(&sdk, cfg.dynamodb_endpoint.as_deref(), CallLimits::PUSH);
    Ok(PushService::new(
        DynamoStore::new(client, cfg.tables.clone()).retaining_raw_bodies(cfg.raw_body_retention_days),
        PushAuth::new(&keys, cfg.allowed_source_cidrs.clone()),
        cfg.source_timezone,
        Duration::from_millis(cfg.push_deadline_ms),
    )
    .with_clock_ahead(Duration::from_secs(cfg.alerts.clock_ahead_minutes.saturating_mul(60))))
}

/// The keys the route accepts. Inside Lambda there must be at least one, each at least
/// [`MIN_KEY_CHARS`] long, so a mis-deployed stack never runs open or with a guessable key;
/// outside it (local development) none means open, with a warning.
fn usable_keys(keys: Vec<Sensitive<String>>, in_lambda: bool) -> Result<Vec<Sensitive<String>>, ConfigError> {
    if in_lambda && keys.is_empty() {
        return Err(ConfigError::Missing {
            var: "PUSH_KEY_PARAM",
            why: "the push route must not run open inside Lambda; name an SSM SecureString holding the key(s)",
        });
    }
    if in_lambda && keys.iter().any(|k| k.expose().chars().count() < MIN_KEY_CHARS) {
        return Err(ConfigError::Invalid {
            var: "PUSH_KEY_PARAM",
            reason: format!(
                "every push key must be at least {MIN_KEY_CHARS} characters (e.g. `openssl rand -hex 32`); \
                 rotate a shorter key to a long one first (docs/operations.md)"
            ),
        });
    }
    if keys.is_empty() {
        tracing::warn!(
            "no PUSH_KEY configured: POST /sinocare/cgm accepts pushes without a key (local development only)"
        );
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(list: &[&str]) -> Vec<Sensitive<String>> {
        list.iter().map(|k| Sensitive::new(k.to_string())).collect()
    }

    #[test]
    fn inside_lambda_keys_are_required_and_long() {
        let long = "0123456789abcdef0123456789abcdef";
        assert_eq!(usable_keys(keys(&[long]), true).unwrap().len(), 1);
        let err = usable_keys(keys(&[long, "short-old-key"]), true).unwrap_err().to_string();
        assert!(err.contains("PUSH_KEY_PARAM") && err.contains("32 characters"), "{err}");
        assert!(!err.contains("short-old-key"), "never the key itself: {err}");
        assert!(usable_keys(vec![], true).unwrap_err().to_string().contains("PUSH_KEY_PARAM"));
        assert_eq!(usable_keys(keys(&["short"]), false).unwrap().len(), 1, "local runs take any key");
        assert!(usable_keys(vec![], false).unwrap().is_empty());
    }
}
