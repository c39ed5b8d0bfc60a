//! The local stack behind `make dev` and `make test`: DynamoDB Local (the official AWS
//! engine, run by Java), tables created from `infra/template.yaml`'s own definitions, and
//! a loopback HTTP server that turns each request into the API Gateway HTTP API event the
//! Lambda would receive and hands it to the same handler code.
//!
//! Not deployed. Nothing here is used by the Lambdas themselves.

pub mod dynamodb_local;
pub mod server;
pub mod stream;
pub mod tables;
pub mod template;

use cgm_edge::HttpService;
use cgm_shared::Config;
use server::Handler;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

/// The repository root, found from this crate's place in it.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Where `tools/install.sh fonts` puts the fonts layer's fonts: the report and FHIR
/// functions' fonts when `AGP_FONT_DIR` is not set.
pub fn font_dir() -> PathBuf {
    repo_root().join(".tools/fonts-layer/fonts")
}

/// Every function's handler, by the template's logical id, built from `cfg` the way each
/// Lambda's cold start builds it.
pub async fn handlers(cfg: &Config) -> Result<HashMap<String, Handler>, cgm_shared::ConfigError> {
    let mut map: HashMap<String, Handler> = HashMap::new();
    map.insert("PushFunction".into(), handler(cgm_push::from_config(cfg).await?));
    map.insert("PartnerFunction".into(), handler(cgm_partner::from_config(cfg).await?));
    map.insert("ReadFunction".into(), handler(cgm_read::from_config(cfg).await));
    map.insert("NightscoutFunction".into(), handler(cgm_nightscout::from_config(cfg).await?));
    // The functions that print the AGP page need its fonts: the fonts layer's, unless set.
    let mut with_fonts = cfg.clone();
    if with_fonts.agp_font_dir.is_none() {
        with_fonts.agp_font_dir = Some(font_dir().display().to_string());
    }
    map.insert("ReportFunction".into(), handler(cgm_report::from_config(&with_fonts).await?));
    map.insert("FhirFunction".into(), handler(cgm_fhir::from_config(&with_fonts).await?));
    Ok(map)
}

/// A function's service as the local server calls it.
pub fn handler<S: HttpService + 'static>(service: S) -> Handler {
    let service = Arc::new(service);
    Arc::new(move |req| {
        let service = service.clone();
        Box::pin(async move { service.handle(req).await })
    })
}

/// The readings-stream consumer on DynamoDB Local's stream, built from `cfg` as the events
/// Lambda's cold start builds it, its events to a sink in memory that prints them (there is
/// no local EventBridge): what `make dev` and the stream tests run.
pub async fn stream_consumer(cfg: &Config) -> anyhow::Result<stream::StreamConsumer<cgm_events::sink::MemorySink>> {
    let endpoint = cfg.dynamodb_endpoint.clone().ok_or_else(|| anyhow::anyhow!("DYNAMODB_ENDPOINT is not set"))?;
    let sdk = cgm_shared::aws::sdk_config(cfg).await;
    let client = cgm_shared::aws::dynamodb(&sdk, Some(&endpoint), cgm_shared::aws::CallLimits::READ);
    let service = Arc::new(cgm_events::with_sink(cfg, &sdk, cgm_events::sink::MemorySink::printing()));
    Ok(stream::StreamConsumer::new(&sdk, &endpoint, client, &cfg.tables.readings, service))
}
