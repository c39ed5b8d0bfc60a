//! The FHIR submitter Lambda: configuration, the key and the clients once at cold start, then
//! each scheduled invocation (`{"run":"submit"}`, or `{"run":"submit","device_sn":…}` for one
//! device now; anything else is refused by name) to [`cgm_fhir_submit::Submitter::run`],
//! stopping a minute before the function's deadline so a checkpoint is never left
//! half-written.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;
use std::time::{Duration, Instant, SystemTime};

/// Time kept back at the end of an invocation for the last bundle's answer and checkpoint.
const MARGIN: Duration = Duration::from_secs(60);

#[tokio::main]
async fn main() -> Result<(), Error> {
    let submitter =
        cgm_shared::startup::cold_start(|cfg| async move { cgm_fhir_submit::from_config(&cfg).await }).await?;
    let submitter = &submitter;
    lambda_runtime::run(service_fn(move |ev: LambdaEvent<Value>| async move {
        if ev.payload.get("run").and_then(Value::as_str) != Some("submit") {
            return Err(Error::from("not the submitter's schedule ({\"run\":\"submit\"})"));
        }
        let left = ev.context.deadline().duration_since(SystemTime::now()).unwrap_or_default();
        let run_for = left.saturating_sub(MARGIN).max(Duration::from_secs(5));
        // A deadline no clock can reach (a runtime's odd header) is a run of the margin's length.
        let until = Instant::now().checked_add(run_for).unwrap_or_else(|| Instant::now() + MARGIN);
        let now = cgm_domain::time::Timestamp::now();
        // `device_sn` asks for that one device now (an operator's one-time submission).
        let report = match ev.payload.get("device_sn").and_then(Value::as_str) {
            Some(sn) => submitter.run_device(&cgm_domain::ids::DeviceSn::from(sn), now, until).await?,
            None => submitter.run(now, until).await?,
        };
        Ok::<_, Error>(serde_json::to_value(report)?)
    }))
    .await
}
