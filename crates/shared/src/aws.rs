//! AWS clients, built once per process at cold start, and secrets read from SSM.
//!
//! Every DynamoDB call has explicit timeouts and a bounded number of attempts, so a slow or
//! unreachable table turns into an error the caller can answer with (a 503 on the push
//! route) long before Sinocare's 5 s deadline or API Gateway's 30 s.

use crate::config::{Config, ConfigError, SecretSetting};
use aws_config::SdkConfig;
use aws_sdk_dynamodb::config::retry::RetryConfig;
use aws_sdk_dynamodb::config::timeout::TimeoutConfig;
use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region, SharedCredentialsProvider};
use cgm_domain::sensitive::Sensitive;
use std::time::Duration;

/// Timeouts and attempts for one client.
#[derive(Debug, Clone, Copy)]
pub struct CallLimits {
    pub connect: Duration,
    pub attempt: Duration,
    pub operation: Duration,
    pub max_attempts: u32,
}

impl CallLimits {
    /// The push path: three attempts of at most 800 ms inside 2.5 s, so the 503 reply goes
    /// back well inside Sinocare's 5 s even when every attempt times out.
    pub const PUSH: CallLimits = CallLimits {
        connect: Duration::from_millis(500),
        attempt: Duration::from_millis(800),
        operation: Duration::from_millis(2_500),
        max_attempts: 3,
    };

    /// The partner proxy's token reads and writes: a little more patience than the push
    /// path, still far inside API Gateway's 30 s.
    pub const PARTNER: CallLimits = CallLimits {
        connect: Duration::from_millis(1_000),
        attempt: Duration::from_millis(2_000),
        operation: Duration::from_millis(5_000),
        max_attempts: 3,
    };

    /// The read side: a page of a query can take a while on a cold partition; the route's
    /// own deadline (below API Gateway's 30 s) bounds the sum of the pages.
    pub const READ: CallLimits = CallLimits {
        connect: Duration::from_millis(1_000),
        attempt: Duration::from_millis(4_000),
        operation: Duration::from_millis(8_000),
        max_attempts: 3,
    };

    /// Alert events to EventBridge from the stream consumer: a failed call fails the batch's
    /// records, which Lambda retries, so a few seconds at most.
    pub const EVENTS: CallLimits = CallLimits {
        connect: Duration::from_millis(1_000),
        attempt: Duration::from_millis(2_000),
        operation: Duration::from_millis(5_000),
        max_attempts: 3,
    };

    /// A secret read once at cold start: bounded, so an SSM outage fails the cold start
    /// (Lambda retries it) within seconds instead of hanging the init phase.
    pub const SSM: CallLimits = CallLimits {
        connect: Duration::from_millis(1_000),
        attempt: Duration::from_millis(2_000),
        operation: Duration::from_millis(6_000),
        max_attempts: 3,
    };
}

/// The SDK configuration for this process. With `DYNAMODB_ENDPOINT` set (local runs) no
/// credential or region lookup happens: DynamoDB Local accepts any static credentials, and
/// real credentials should never be sent to a local endpoint.
pub async fn sdk_config(cfg: &Config) -> SdkConfig {
    if cfg.dynamodb_endpoint.is_some() {
        let region = std::env::var("AWS_REGION").unwrap_or_else(|_| "us-east-1".to_string());
        return SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(region))
            .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
                "local",
                "local",
                None,
                None,
                "cgm-bridge-local",
            )))
            .build();
    }
    aws_config::defaults(BehaviorVersion::latest()).load().await
}

/// A DynamoDB client with explicit limits, pointed at `DYNAMODB_ENDPOINT` when set.
pub fn dynamodb(sdk: &SdkConfig, endpoint: Option<&str>, limits: CallLimits) -> aws_sdk_dynamodb::Client {
    let mut b =
        aws_sdk_dynamodb::config::Builder::from(sdk).timeout_config(timeouts(limits)).retry_config(retries(limits));
    if let Some(url) = endpoint {
        b = b.endpoint_url(url);
    }
    aws_sdk_dynamodb::Client::from_conf(b.build())
}

/// The timeouts of `limits`, for any AWS SDK client (they share the smithy types).
pub fn timeouts(limits: CallLimits) -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(limits.connect)
        .operation_attempt_timeout(limits.attempt)
        .operation_timeout(limits.operation)
        .build()
}

/// Standard retries bounded by `limits`, for any AWS SDK client.
pub fn retries(limits: CallLimits) -> RetryConfig {
    RetryConfig::standard()
        .with_max_attempts(limits.max_attempts)
        .with_initial_backoff(Duration::from_millis(25))
        .with_max_backoff(Duration::from_millis(200))
}

/// The value of a secret setting: the variable itself, or the SSM SecureString it names,
/// read once (with decryption) at cold start. `Ok(None)` when neither is set.
pub async fn resolve_secret(
    sdk: &SdkConfig,
    setting: &SecretSetting,
    param_var: &'static str,
) -> Result<Option<Sensitive<String>>, ConfigError> {
    match setting {
        SecretSetting::Unset => Ok(None),
        SecretSetting::Value(v) => Ok(Some(v.clone())),
        SecretSetting::Param(name) => {
            let mut ssm = aws_sdk_ssm::config::Builder::from(sdk)
                .timeout_config(timeouts(CallLimits::SSM))
                .retry_config(retries(CallLimits::SSM));
            // The SDK's own setting for SSM's endpoint, honoured in local runs too (whose
            // SDK configuration is built by hand): a stand-in for tests of the real binaries.
            if let Some(url) = std::env::var("AWS_ENDPOINT_URL_SSM").ok().filter(|u| !u.is_empty()) {
                ssm = ssm.endpoint_url(url);
            }
            let ssm = ssm.build();
            let out = aws_sdk_ssm::Client::from_conf(ssm)
                .get_parameter()
                .name(name)
                .with_decryption(true)
                .send()
                .await
                .map_err(|e| ConfigError::Ssm { var: param_var, source: Box::new(e) })?;
            let value = out
                .parameter
                .and_then(|p| p.value)
                .filter(|v| !v.trim().is_empty())
                .ok_or(ConfigError::Missing { var: param_var, why: "the SSM parameter it names has no value" })?;
            Ok(Some(Sensitive::new(value)))
        }
    }
}
