//! The readings-stream consumer Lambda: configuration and the DynamoDB client once at cold
//! start, then every batch to [`cgm_events::EventsService::handle`].

use aws_lambda_events::event::dynamodb::Event;
use lambda_runtime::{Error, LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let service = cgm_shared::startup::cold_start(|cfg| async move { Ok(cgm_events::from_config(&cfg).await) }).await?;
    let service = &service;
    lambda_runtime::run(service_fn(move |ev: LambdaEvent<Event>| async move {
        Ok::<_, Error>(service.handle(ev.payload).await)
    }))
    .await
}
