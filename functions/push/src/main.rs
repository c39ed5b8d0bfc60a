//! The push Lambda: configuration and clients once at cold start, then every invocation to
//! [`cgm_push::PushService::handle`].

use cgm_shared::Config;
use lambda_http::{Error, Request, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    cgm_shared::telemetry::init();
    let service = match Config::from_env() {
        Ok(cfg) => cgm_push::from_config(&cfg).await,
        Err(e) => Err(e),
    };
    let service = match service {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cold start failed");
            return Err(e.into());
        }
    };
    // Warm the DynamoDB connection while the runtime asks for the first event: Lambda
    // often initialises an environment before any request is routed to it.
    let store = service.store().clone();
    tokio::spawn(async move { store.warm_up().await });
    let service = &service;
    lambda_http::run(service_fn(move |req: Request| async move { Ok::<_, Error>(service.handle(req).await) })).await
}
