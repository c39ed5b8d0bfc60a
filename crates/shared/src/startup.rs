//! What every Lambda's `main` does first: logging, the configuration, and its service
//! built once. A failure is logged, naming the setting, before the runtime reports it.

use crate::config::{Config, ConfigError};
use std::future::Future;

pub async fn cold_start<T, F, Fut>(build: F) -> Result<T, ConfigError>
where
    F: FnOnce(Config) -> Fut,
    Fut: Future<Output = Result<T, ConfigError>>,
{
    crate::telemetry::init();
    let built = match Config::from_env() {
        Ok(cfg) => build(cfg).await,
        Err(e) => Err(e),
    };
    if let Err(e) = &built {
        tracing::error!(error = %e, "cold start failed");
    }
    built
}
