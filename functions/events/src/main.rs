//! The events Lambda: configuration and clients once at cold start, then each invocation by
//! its shape: a DynamoDB stream batch (`Records`) to [`cgm_events::EventsService::handle`],
//! the schedule's `{"check": "sensors"}` to [`cgm_events::EventsService::check`]. Anything
//! else is refused by name, never guessed at.

use aws_lambda_events::event::dynamodb::Event;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let service = cgm_shared::startup::cold_start(|cfg| async move { cgm_events::from_config(&cfg).await }).await?;
    let service = &service;
    lambda_runtime::run(service_fn(move |ev: LambdaEvent<Value>| async move {
        let payload = ev.payload;
        if payload.get("Records").is_some() {
            let event: Event = serde_json::from_value(payload)?;
            return Ok::<_, Error>(serde_json::to_value(service.handle(event).await)?);
        }
        if payload.get("check").and_then(Value::as_str) == Some("sensors") {
            let now = cgm_domain::time::Timestamp::now();
            let report = service.check(now).await?;
            return Ok(serde_json::json!({"active": report.active, "events_sent": report.events}));
        }
        Err("not a DynamoDB stream batch nor the sensor check ({\"check\":\"sensors\"})".into())
    }))
    .await
}
