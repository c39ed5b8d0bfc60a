//! The read Lambda: configuration and the DynamoDB client once at cold start, then every
//! invocation to [`cgm_read::ReadService::handle`].

use cgm_shared::Config;
use lambda_http::{Error, Request, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    cgm_shared::telemetry::init();
    let service = match Config::from_env() {
        Ok(cfg) => cgm_read::from_config(&cfg).await,
        Err(e) => {
            tracing::error!(error = %e, "cold start failed");
            return Err(e.into());
        }
    };
    let service = &service;
    lambda_http::run(service_fn(move |req: Request| async move { Ok::<_, Error>(service.handle(req).await) })).await
}
