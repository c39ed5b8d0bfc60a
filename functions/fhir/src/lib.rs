//! The FHIR read API: what Sinocare pushed, as HL7 FHIR R4 resources profiled by the CGM
//! implementation guide ([`resources`]), for systems that pull. Behind IAM, since it returns
//! the patient's identifier (the profiles require a subject); it serves nothing but its
//! `CapabilityStatement` until `FHIR_PATIENT_IDENTIFIER_SYSTEM` says which identifier that is.
//!
//! - `GET /fhir/metadata`: the `CapabilityStatement`;
//! - `GET /fhir/Device/{id}`: a sensor as a `cgm-device`;
//! - `GET /fhir/Observation?device=…&date=ge…&date=le…&code=…&_count=…`: its readings as a
//!   `searchset` Bundle, paged by the bundle's `next` link, or (`code=107931-8`) a summary;
//! - `GET /fhir/DiagnosticReport?device=…&date=ge…&date=le…`: the summary's `cgm-summary-pdf`,
//!   the ambulatory glucose profile's page as a PDF (the one `agp.pdf` serves), with the
//!   summary it reports on included;
//! - `POST /fhir-submissions`, `GET /fhir-submissions/{id}`: a one-time submission to the
//!   EHR, which the FHIR submitter sends ([`submissions`]).
//!
//! Readings come from the device/time index (measurement fields only), summaries from the
//! daily rollups (and the readings of days without one), the patient from the sensor's
//! session, which the stream consumer keeps.
//!
//! # Where each route and job lives
//!
//! - this file: the service ([`FhirService`]), its constructors, the route table and the
//!   dispatch of each route (`GET /fhir/metadata` answered here from [`resources`]), and
//!   the wiring ([`from_config`]: the DynamoDB stores, the fonts);
//! - `device`: `GET /fhir/Device/{id}`, and the device and patient each search starts from;
//! - `observations`: the `Observation` search, readings pages and the summary (and the
//!   summary's days, which the `DiagnosticReport` search shares);
//! - `reports`: the `DiagnosticReport` search, the summary's PDF;
//! - [`submissions`]: the one-time submissions' routes, served as their own family;
//! - `urls`: the FHIR base, `fullUrl`s and a search's links (the query re-encoded);
//! - [`search`]: the FHIR search parameters (`date`, `token`, references, `_format`);
//! - [`resources`]: the read API's own resources (`CapabilityStatement`, the searchset
//!   `Bundle`, `OperationOutcome`); the profiled ones are `cgm-fhir-profiles`';
//! - [`error`]: the one error, each as a status and an `OperationOutcome`.

mod device;
pub mod error;
mod observations;
mod reports;
pub mod resources;
pub mod search;
pub mod submissions;
mod urls;

pub use observations::{SEARCH_DEFAULT_COUNT, SEARCH_MAX_COUNT};

use cgm_agp::pdf::{self as agp_pdf, fontdb};
use cgm_domain::store::reads::ReadStore;
use cgm_domain::store::rollups::RollupStore;
use cgm_domain::store::sensors::SensorStore;
use cgm_domain::time::SourceZone;
use cgm_edge::{Answer, Frame, HttpService, Params, Routes};
use cgm_fhir_profiles::{GlucoseUnit, Naming};
use cgm_shared::aws::{self, CallLimits};
use cgm_shared::config::{Config, ConfigError};
use cgm_shared::store::reads::dynamodb::DynamoReadStore;
use cgm_shared::store::rollups::dynamodb::DynamoRollupStore;
use cgm_shared::store::sensors::dynamodb::DynamoSensorStore;
use cgm_shared::store::submissions::dynamodb::DynamoSubmissionRequests;
use error::{FhirApi, FhirError, fhir_reply};
use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Request, Response};
use std::sync::Arc;

/// When this server's CapabilityStatement last changed.
const CAPABILITY_DATE: &str = "2026-12-04";
const DISABLED: &str = "the FHIR routes return the patient's identifier, so they stay off until \
                        FHIR_PATIENT_IDENTIFIER_SYSTEM names the hospital's patient identifier system";

pub struct FhirService<S = DynamoReadStore, U = DynamoRollupStore, T = DynamoSensorStore> {
    store: S,
    /// Daily rollups, which summaries read for whole days.
    rollups: U,
    sensors: T,
    zone: SourceZone,
    naming: Naming,
    unit: GlucoseUnit,
    /// `FHIR_BASE_URL`; otherwise from the request's Host.
    base_url: Option<String>,
    /// The fonts the summary's PDF is typeset in (`AGP_FONT_DIR`).
    fonts: Option<Arc<fontdb::Database>>,
    /// One-time submissions, when the stack runs the FHIR submitter.
    requests: Option<DynamoSubmissionRequests>,
}

/// A FHIR route (the one-time submissions are [`submissions`]' own family).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Metadata,
    Device,
    Observations,
    Reports,
}

/// The FHIR read API's routes: the template's route keys, each with its log name.
const ROUTES: &[cgm_edge::Route<Route>] = {
    use cgm_edge::Route as R;
    &[
        R::new("GET", "/fhir/metadata", "fhir_metadata", Route::Metadata),
        R::new("GET", "/fhir/Device/{id}", "fhir_device", Route::Device),
        R::new("GET", "/fhir/Observation", "fhir_observations", Route::Observations),
        R::new("GET", "/fhir/DiagnosticReport", "fhir_reports", Route::Reports),
    ]
};

impl<S: ReadStore, U: RollupStore, T: SensorStore> HttpService for FhirService<S, U, T> {
    /// Answers one request. Never fails: every outcome is a reply, errors `OperationOutcome`s
    /// (`{status, message}` on the submission routes).
    async fn handle(&self, req: Request) -> Response<Body> {
        if submissions::takes(&req) {
            return cgm_edge::serve(&submissions::Submissions(self), req).await;
        }
        cgm_edge::serve(self, req).await
    }
}

impl<S: ReadStore, U: RollupStore, T: SensorStore> Routes for FhirService<S, U, T> {
    type Api = FhirApi;
    type Route = Route;

    fn route_of(method: &Method, path: &str) -> Result<(Route, &'static str), FhirError> {
        cgm_edge::serve::lookup(ROUTES, method, path).ok_or(FhirError::NotFound("route"))
    }

    async fn route(&self, route: Route, req: &Request, frame: &Frame) -> Result<Answer, FhirError> {
        let p = Params::of(req);
        search::check_format(p)?;
        let base = self.base(p);
        match route {
            Route::Metadata => {
                p.only(&["_format"])?;
                let body = resources::capability_statement(&base, env!("CARGO_PKG_VERSION"), CAPABILITY_DATE);
                Ok(Answer::new(fhir_reply(StatusCode::OK, body.to_string())))
            }
            Route::Device => self.device(p).await,
            Route::Observations => self.observations(p, &base, frame.started()).await,
            Route::Reports => self.reports(p, &base).await,
        }
    }
}

impl<S: ReadStore, U: RollupStore, T: SensorStore> FhirService<S, U, T> {
    pub fn new(
        store: S,
        rollups: U,
        sensors: T,
        zone: SourceZone,
        naming: Naming,
        unit: GlucoseUnit,
        base_url: Option<String>,
    ) -> Self {
        Self { store, rollups, sensors, zone, naming, unit, base_url, fonts: None, requests: None }
    }

    /// With the one-time submissions' store (without, those routes answer 403).
    pub fn with_requests(mut self, requests: Option<DynamoSubmissionRequests>) -> Self {
        self.requests = requests;
        self
    }

    /// With the fonts the summary's PDF is typeset in (without, `DiagnosticReport` searches
    /// are refused as not supported).
    pub fn with_fonts(mut self, fonts: Option<Arc<fontdb::Database>>) -> Self {
        self.fonts = fonts;
        self
    }
}

/// Builds the service the way a cold start does: one DynamoDB client for the process, and
/// the fonts of `AGP_FONT_DIR` (a folder without a font stops the cold start: a PDF whose
/// text silently vanished would be worse than none).
pub async fn from_config(cfg: &Config) -> Result<FhirService, ConfigError> {
    let fonts = agp_pdf::load_configured_fonts(cfg.agp_font_dir.as_deref())
        .map_err(|e| ConfigError::Invalid { var: "AGP_FONT_DIR", reason: e.to_string() })?;
    let sdk = aws::sdk_config(cfg).await;
    let client = aws::dynamodb(&sdk, cfg.dynamodb_endpoint.as_deref(), CallLimits::READ);
    Ok(FhirService::new(
        DynamoReadStore::new(client.clone(), cfg.tables.readings.clone(), cfg.tables.follow_tokens.clone()),
        DynamoRollupStore::new(client.clone(), cfg.tables.rollups.clone()),
        DynamoSensorStore::new(client.clone(), cfg.tables.sensors.clone()),
        cfg.source_timezone,
        Naming::of(&cfg.fhir),
        GlucoseUnit::of(&cfg.fhir),
        cfg.fhir.base_url.clone(),
    )
    .with_fonts(Some(Arc::new(fonts)))
    // The submitter, when the stack runs one, sends what these routes queue.
    .with_requests(
        cfg.fhir_submit
            .ehr_base_url
            .is_some()
            .then(|| DynamoSubmissionRequests::new(client, cfg.tables.submissions.clone())),
    ))
}

#[cfg(test)]
mod tests;
