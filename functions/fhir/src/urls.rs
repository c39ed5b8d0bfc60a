//! The URLs a reply carries: the FHIR base (`FHIR_BASE_URL`, else the request's host), an
//! entry's `fullUrl`, and a search's own and `next` links with the query re-encoded.

use crate::FhirService;
use cgm_domain::store::reads::ReadStore;
use cgm_domain::store::rollups::RollupStore;
use cgm_domain::store::sensors::SensorStore;
use cgm_edge::Params;
use cgm_fhir_profiles::url::query_value;
use serde_json::Value;

impl<S: ReadStore, U: RollupStore, T: SensorStore> FhirService<S, U, T> {
    /// The FHIR base the links start with: the setting, or this request's own host.
    pub(crate) fn base(&self, p: Params<'_>) -> String {
        if let Some(b) = &self.base_url {
            return b.clone();
        }
        let host = p.header("host").unwrap_or("localhost");
        let local = host.starts_with("127.0.0.1") || host.starts_with("localhost") || host.starts_with("[::1]");
        let scheme = p.header("x-forwarded-proto").unwrap_or(if local { "http" } else { "https" });
        format!("{scheme}://{host}/fhir")
    }
}

/// `[base]/Observation/<id>`.
pub(crate) fn full_url(base: &str, o: &Value) -> String {
    format!("{base}/Observation/{}", o["id"].as_str().unwrap_or_default())
}

/// `[base]/<type>?` and the caller's own search, re-encoded, with `_cursor` replaced.
pub(crate) fn search_url(base: &str, resource: &str, pairs: &[(&str, &str)], cursor: Option<&str>) -> String {
    let mut parts: Vec<String> = pairs
        .iter()
        .filter(|(k, _)| *k != "_cursor")
        .map(|(k, v)| format!("{}={}", query_value(k), query_value(v)))
        .collect();
    if let Some(c) = cursor {
        parts.push(format!("_cursor={}", query_value(c)));
    }
    format!("{base}/{resource}?{}", parts.join("&"))
}
