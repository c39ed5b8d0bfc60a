//! The push Lambda: configuration and clients once at cold start, then every invocation to
//! [`cgm_push::PushService`].

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    let service = cgm_shared::startup::cold_start(|cfg| async move { cgm_push::from_config(&cfg).await }).await?;
    // Warm the DynamoDB connection while the runtime asks for the first event: Lambda
    // often initialises an environment before any request is routed to it.
    let store = service.store().clone();
    tokio::spawn(async move { store.warm_up().await });
    cgm_edge::run(&service).await
}
