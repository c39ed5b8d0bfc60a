//! The partner proxy Lambda: configuration and clients once at cold start, then every
//! invocation to [`cgm_partner::PartnerService`].

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    let service = cgm_shared::startup::cold_start(|cfg| async move { cgm_partner::from_config(&cfg).await }).await?;
    cgm_edge::run(&service).await
}
