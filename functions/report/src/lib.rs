//! The clinician's printable report: `GET /devices/{device_sn}/agp.pdf`, the ambulatory
//! glucose profile of `agp.svg` as one A4 page, for the period `agp.svg` takes (`from`,
//! `to`; the last 14 full local days by default; at most 90).
//!
//! A function of its own so that the read function stays lean: the PDF writer and its font
//! subsetter live here, and the fonts (Noto Sans CJK, Chinese and Latin, about 10 MB)
//! come from a Lambda layer ([`cgm_agp::pdf::load_fonts`]). The drawing itself is
//! `agp.svg`'s ([`cgm_agp::report::agp_page`]), so the PDF and the SVG cannot drift apart.
//!
//! The header names the device serial and the period. The patient's name and id are added
//! only with `AGP_PATIENT_FIELDS=true`; without it the function does not even hold the store
//! that could read them.

pub mod error;

use cgm_agp::pdf::{self, fontdb};
use cgm_agp::report::{AGP_DEFAULT_DAYS, AGP_MAX_DAYS};
use cgm_domain::ids::DeviceSn;
use cgm_domain::store::patients::{PatientRef, PatientStore};
use cgm_domain::store::reads::ReadStore;
use cgm_domain::store::rollups::RollupStore;
use cgm_domain::time::{SourceZone, Timestamp};
use cgm_edge::{Answer, Frame, HttpService, Routes, reply};
use cgm_shared::aws::{self, CallLimits};
use cgm_shared::config::{Config, ConfigError};
use cgm_shared::store::patients::dynamodb::DynamoPatientStore;
use cgm_shared::store::reads::dynamodb::DynamoReadStore;
use cgm_shared::store::rollups::dynamodb::DynamoRollupStore;
use error::{ReportApi, ReportError};
use lambda_http::http::{HeaderValue, Method, StatusCode, header};
use lambda_http::{Body, Request, Response};
use std::sync::Arc;

/// The service as Lambda runs it.
pub type DynamoReportService = ReportService<DynamoReadStore, DynamoRollupStore, DynamoPatientStore>;

pub struct ReportService<S, U, P> {
    /// The readings index and the daily rollups, as the read side reads them.
    store: S,
    rollups: U,
    zone: SourceZone,
    /// Only with `AGP_PATIENT_FIELDS=true`.
    patients: Option<P>,
    fonts: Arc<fontdb::Database>,
}

impl<S: ReadStore, U: RollupStore, P: PatientStore> HttpService for ReportService<S, U, P> {
    async fn handle(&self, req: Request) -> Response<Body> {
        cgm_edge::serve(self, req).await
    }
}

/// The report function's one route.
const ROUTES: &[cgm_edge::Route<()>] = &[cgm_edge::Route::new("GET", "/devices/{device_sn}/agp.pdf", "agp_pdf", ())];

impl<S: ReadStore, U: RollupStore, P: PatientStore> Routes for ReportService<S, U, P> {
    type Api = ReportApi;
    type Route = ();

    fn route_of(method: &Method, path: &str) -> Result<((), &'static str), ReportError> {
        cgm_edge::serve::lookup(ROUTES, method, path).ok_or(ReportError::NotFound("route"))
    }

    async fn route(&self, _: (), req: &Request, _: &Frame) -> Result<Answer, ReportError> {
        self.agp_pdf(req).await
    }
}

impl<S: ReadStore, U: RollupStore, P: PatientStore> ReportService<S, U, P> {
    pub fn new(store: S, rollups: U, zone: SourceZone, patients: Option<P>, fonts: fontdb::Database) -> Self {
        Self { store, rollups, zone, patients, fonts: Arc::new(fonts) }
    }

    async fn agp_pdf(&self, req: &Request) -> Result<Answer, ReportError> {
        let p = cgm_edge::Params::of(req);
        let sn = DeviceSn::from(p.path("device_sn")?);
        p.only(&["from", "to"])?;
        let range = p.report_range(Timestamp::now(), &self.zone, AGP_DEFAULT_DAYS, AGP_MAX_DAYS)?;
        let patient = match &self.patients {
            Some(store) => store.patient_of(&sn).await?.and_then(|who| patient_line(&who)),
            None => None,
        };
        let (page, pdf) =
            pdf::agp_pdf(&self.store, &self.rollups, &self.zone, &sn, range, patient.as_deref(), &self.fonts).await?;
        let mut resp = reply::binary(StatusCode::OK, "application/pdf", pdf);
        let name = format!("agp-{}-{}-{}.pdf", file_safe(sn.as_str()), page.first_day, page.last_day);
        if let Ok(v) = HeaderValue::from_str(&format!("inline; filename=\"{name}\"")) {
            resp.headers_mut().insert(header::CONTENT_DISPOSITION, v);
        }
        Ok(Answer::new(resp).items(page.readings))
    }
}

/// `Patient: <name> · ID <id>`, from what the push carried.
fn patient_line(who: &PatientRef) -> Option<String> {
    let name = who.name.as_ref().map(|n| n.expose().as_str());
    let id = who.id.as_ref().map(|i| i.expose().as_str());
    match (name, id) {
        (Some(n), Some(i)) => Some(format!("Patient: {n} · ID {i}")),
        (Some(n), None) => Some(format!("Patient: {n}")),
        (None, Some(i)) => Some(format!("Patient ID {i}")),
        (None, None) => None,
    }
}

/// The serial as a file name's part: letters, digits, `-` and `_` only.
fn file_safe(s: &str) -> String {
    s.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_').take(64).collect()
}

/// Builds the service the way a cold start does: one DynamoDB client, and the fonts from
/// `AGP_FONT_DIR` (the layer's `/opt/fonts` by default). No font, no start: a PDF whose
/// text silently vanished would be worse than an error.
pub async fn from_config(cfg: &Config) -> Result<DynamoReportService, ConfigError> {
    let fonts = pdf::load_configured_fonts(cfg.agp_font_dir.as_deref())
        .map_err(|e| ConfigError::Invalid { var: "AGP_FONT_DIR", reason: e.to_string() })?;
    let sdk = aws::sdk_config(cfg).await;
    let client = aws::dynamodb(&sdk, cfg.dynamodb_endpoint.as_deref(), CallLimits::READ);
    let patients = cfg.agp_patient_fields.then(|| DynamoPatientStore::new(client.clone(), cfg.tables.readings.clone()));
    Ok(ReportService::new(
        DynamoReadStore::new(client.clone(), cfg.tables.readings.clone(), cfg.tables.follow_tokens.clone()),
        DynamoRollupStore::new(client, cfg.tables.rollups.clone()),
        cfg.source_timezone,
        patients,
        fonts,
    ))
}
