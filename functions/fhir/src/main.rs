//! The FHIR Lambda: configuration, the DynamoDB client and the fonts once at cold start,
//! then every invocation to [`cgm_fhir::FhirService`].

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    let service = cgm_shared::startup::cold_start(|cfg| async move { cgm_fhir::from_config(&cfg).await }).await?;
    cgm_edge::run(&service).await
}
