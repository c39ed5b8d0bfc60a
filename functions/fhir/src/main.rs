//! The FHIR Lambda: configuration and the DynamoDB client once at cold start, then every
//! invocation to [`cgm_fhir::FhirService`].

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    let service = cgm_shared::startup::cold_start(|cfg| async move { Ok(cgm_fhir::from_config(&cfg).await) }).await?;
    cgm_edge::run(&service).await
}
