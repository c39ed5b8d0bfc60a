//! The partner proxy: five routes under `/partner` that the company's back-end calls, each
//! answered by calling the vendor's Partner Open API with the application signature and
//! the user's bearer token, which this function keeps and refreshes.
//!
//! Callers never deal with signing, token expiry, the vendor's 30-day window limit or
//! Lambda's 6 MB reply limit: long ranges are split into windows and answers are paged.
//! Replies keep the vendor's envelope `{code, msg, data}` with a fitting HTTP status.

//!
//! The domain (signing, windows, paging) is plain code in [`sign`], [`window`] and [`paging`];
//! [`client`] is the one HTTP client of the vendor's API; [`tokens`] keeps users' tokens
//! behind a store trait; [`error`] maps every failure to the envelope in one place.

pub mod client;
pub mod error;
mod handler;
pub mod paging;
pub mod sign;
pub mod tokens;
pub mod window;

pub use handler::PartnerService;

use cgm_shared::aws::{self, CallLimits};
use cgm_shared::config::{Config, ConfigError};
use client::PartnerClient;
use sign::Signer;
use std::time::Duration;
use tokens::Tokens;
use tokens::dynamodb::DynamoTokenStore;

/// Builds the service the way a cold start does: reads the app secret (from
/// `PARTNER_APP_SECRET` or the SSM parameter named by `PARTNER_APP_SECRET_PARAM`) once, and
/// creates the HTTP and DynamoDB clients once.
pub async fn from_config(cfg: &Config) -> Result<PartnerService<DynamoTokenStore>, ConfigError> {
    let sdk = aws::sdk_config(cfg).await;
    let p = &cfg.partner;
    let secret = aws::resolve_secret(&sdk, &p.app_secret, "PARTNER_APP_SECRET_PARAM").await?;
    let signer = match (&p.app_id, secret) {
        (Some(id), Some(secret)) => Some(Signer::new(id.clone(), secret)),
        (None, None) => None,
        (Some(_), None) => {
            return Err(ConfigError::Missing {
                var: "PARTNER_APP_SECRET_PARAM",
                why: "PARTNER_APP_ID is set, so requests are signed and need the app secret (PARTNER_APP_SECRET locally)",
            });
        }
        (None, Some(_)) => {
            return Err(ConfigError::Missing {
                var: "PARTNER_APP_ID",
                why: "an app secret is configured without its app id",
            });
        }
    };
    let max_range_ms = i64::from(p.max_range_days) * 86_400_000;
    let Some(base_url) = &p.base_url else {
        tracing::warn!("no PARTNER_API_BASE_URL configured: the partner routes answer 503 until one is");
        return Ok(PartnerService::unconfigured(max_range_ms));
    };
    let client = PartnerClient::new(base_url, p.paths.clone(), signer, Duration::from_millis(p.call_timeout_ms))
        .map_err(|e| ConfigError::Invalid {
            var: "PARTNER_API_BASE_URL",
            reason: format!("cannot build the HTTP client: {e}"),
        })?;
    let dynamo = aws::dynamodb(&sdk, cfg.dynamodb_endpoint.as_deref(), CallLimits::PARTNER);
    let store = DynamoTokenStore::new(dynamo, cfg.tables.tokens.clone(), cfg.tables.device_owners.clone());
    Ok(PartnerService::new(Tokens::new(store, client), max_range_ms))
}
