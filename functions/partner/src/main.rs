//! The partner proxy Lambda: configuration and clients once at cold start, then every
//! invocation to [`cgm_partner::PartnerService::handle`].

use lambda_http::{Error, Request, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let service = cgm_shared::startup::cold_start(|cfg| async move { cgm_partner::from_config(&cfg).await }).await?;
    let service = &service;
    lambda_http::run(service_fn(move |req: Request| async move { Ok::<_, Error>(service.handle(req).await) })).await
}
