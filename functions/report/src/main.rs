//! The report Lambda: configuration, the DynamoDB client and the fonts once at cold start,
//! then every invocation to [`cgm_report::ReportService`].

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    let service = cgm_shared::startup::cold_start(|cfg| async move { cgm_report::from_config(&cfg).await }).await?;
    cgm_edge::run(&service).await
}
