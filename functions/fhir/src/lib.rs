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

pub mod error;
pub mod resources;
pub mod search;
pub mod submissions;

use cgm_agp::pdf::{self as agp_pdf, fontdb};
use cgm_domain::cursor::{self, QueryHash};
use cgm_domain::ids::DeviceSn;
use cgm_edge::{Answer, Frame, HttpService, Params, Routes};
use cgm_shared::aws::{self, CallLimits};
use cgm_shared::config::{Config, ConfigError};

use cgm_domain::session::Session;
use cgm_domain::store::reads::paging::ReadAllError;
use cgm_domain::store::reads::{Position, ReadStore, ReadingQuery, paging};
use cgm_domain::store::rollups::RollupStore;
use cgm_domain::store::sensors::SensorStore;
use cgm_domain::time::SourceZone;
use cgm_domain::time::Timestamp;
use cgm_fhir_profiles::summary::{SummaryError, summary_figures};
use cgm_fhir_profiles::{self as profiles, GlucoseUnit, LOINC, Naming, SUMMARY_CODE};
use cgm_shared::store::reads::dynamodb::DynamoReadStore;
use cgm_shared::store::rollups::dynamodb::DynamoRollupStore;
use cgm_shared::store::sensors::dynamodb::DynamoSensorStore;
use cgm_shared::store::submissions::dynamodb::DynamoSubmissionRequests;
use chrono::NaiveDate;
use error::{FhirApi, FhirError, bad, fhir_reply};
use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Request, Response};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::Value;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Every route answers inside API Gateway's 30 s and the function's timeout.
/// A search page stops filling after this long and answers with what it has and a `next`.
const PAGE_TIME_BUDGET: Duration = Duration::from_secs(20);
/// A page's entries stay well under Lambda's 6 MB reply limit.
const PAGE_BUDGET_BYTES: usize = 4_500_000;
pub const SEARCH_DEFAULT_COUNT: usize = 100;
pub const SEARCH_MAX_COUNT: usize = 1_000;
/// A summary's default period (the consensus reports on 14 days) and its longest.
const SUMMARY_DEFAULT_DAYS: i64 = 14;
const SUMMARY_MAX_DAYS: i64 = 90;
/// When this server's CapabilityStatement last changed.
const CAPABILITY_DATE: &str = "2026-12-04";
const DISABLED: &str = "the FHIR routes return the patient's identifier, so they stay off until \
                        FHIR_PATIENT_IDENTIFIER_SYSTEM names the hospital's patient identifier system";

/// Unreserved characters stay; everything else of a query value is percent-encoded.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

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

    /// The FHIR base the links start with: the setting, or this request's own host.
    fn base(&self, p: Params<'_>) -> String {
        if let Some(b) = &self.base_url {
            return b.clone();
        }
        let host = p.header("host").unwrap_or("localhost");
        let local = host.starts_with("127.0.0.1") || host.starts_with("localhost") || host.starts_with("[::1]");
        let scheme = p.header("x-forwarded-proto").unwrap_or(if local { "http" } else { "https" });
        format!("{scheme}://{host}/fhir")
    }

    /// The patient of a device as the profiles' subject: by the hospital's identifier.
    fn subject(&self, session: Option<&Session>) -> Result<Value, FhirError> {
        if self.naming.patient_system.is_none() {
            return Err(FhirError::Disabled(DISABLED));
        }
        session
            .and_then(|s| s.patient_id.as_deref())
            .filter(|id| !id.trim().is_empty())
            .and_then(|id| self.naming.patient_by_identifier(id))
            .ok_or(FhirError::NoPatient)
    }

    async fn device(&self, p: Params<'_>) -> Result<Answer, FhirError> {
        p.only(&["_format"])?;
        if self.naming.patient_system.is_none() {
            return Err(FhirError::Disabled(DISABLED));
        }
        let sn = profiles::text_of_fhir_id(p.path("id")?).map(DeviceSn::from).ok_or(FhirError::NotFound("Device"))?;
        let session = self.sensors.session(&sn).await?;
        if session.is_none() && !self.has_readings(&sn).await? {
            return Err(FhirError::NotFound("Device"));
        }
        let patient = self.subject(session.as_ref()).ok();
        let body = profiles::device(&sn, session.as_ref(), &self.naming, patient.as_ref());
        Ok(Answer::new(fhir_reply(StatusCode::OK, body.to_string())).device_sn(sn.as_str()))
    }

    /// The device a search names and its patient as the subject; `None` when the search can
    /// match nothing: an id that names no serial (a hashed one), a device that never pushed.
    async fn searched_device(&self, device_id: &str) -> Result<Option<(DeviceSn, Value)>, FhirError> {
        let Some(sn) = profiles::text_of_fhir_id(device_id).map(DeviceSn::from) else { return Ok(None) };
        let session = self.sensors.session(&sn).await?;
        if session.is_none() && !self.has_readings(&sn).await? {
            return Ok(None);
        }
        let subject = self.subject(session.as_ref())?;
        Ok(Some((sn, subject)))
    }

    async fn has_readings(&self, sn: &DeviceSn) -> Result<bool, FhirError> {
        let q = ReadingQuery {
            device_sn: sn,
            range: cgm_domain::time::TimeRange::ALL,
            valid_only: false,
            newest_first: true,
        };
        Ok(!self.store.query_readings(&q, None, Some(1)).await?.readings.is_empty())
    }

    async fn observations(&self, p: Params<'_>, base: &str, started: Instant) -> Result<Answer, FhirError> {
        p.only(&["device", "date", "code", "include-warm-up", "_count", "_cursor", "_format"])?;
        if self.naming.patient_system.is_none() {
            return Err(FhirError::Disabled(DISABLED));
        }
        let device =
            p.query("device").ok_or_else(|| bad("device is required: search a sensor's observations by device"))?;
        let device_id = search::reference_id(device, "device", "Device")?;
        let count = p.limit("_count", SEARCH_DEFAULT_COUNT, SEARCH_MAX_COUNT)?;
        let include_warm_up = p.flag("include-warm-up")?;
        let wanted = match p.query("code") {
            None => Wanted::Readings(self.unit),
            Some(v) => {
                let codes = search::codes(v, "code", LOINC)?;
                let units: Vec<GlucoseUnit> = codes.iter().filter_map(|c| GlucoseUnit::of_reading_code(c)).collect();
                let summary = codes.contains(&SUMMARY_CODE);
                if summary && !units.is_empty() {
                    return Err(bad("code: ask for summaries (107931-8) or readings, not both in one search"));
                }
                if units.len() > 1 && units.iter().any(|u| *u != units[0]) {
                    return Err(bad("code: ask for one unit's readings, 105272-9 (mmol/L) or 99504-3 (mg/dL)"));
                }
                match units.first() {
                    _ if summary => Wanted::Summary,
                    Some(u) => Wanted::Readings(*u),
                    // Codes this server never produces match nothing: an empty searchset.
                    None => Wanted::Nothing,
                }
            }
        };
        let self_url = search_url(base, "Observation", &p.pairs_all(), None);
        let empty = || Ok(Answer::new(fhir_reply(StatusCode::OK, resources::searchset(&self_url, None, &[]))));
        // An unknown code matches nothing.
        if wanted == Wanted::Nothing {
            return empty();
        }
        let Some((sn, subject)) = self.searched_device(device_id).await? else { return empty() };
        let search = Search { p, base, self_url: &self_url, sn: &sn, subject: &subject };
        match wanted {
            Wanted::Readings(unit) => self.readings(&search, unit, include_warm_up, count, started).await,
            Wanted::Summary => {
                if include_warm_up || p.query("_cursor").is_some() {
                    return Err(bad("include-warm-up and _cursor are for readings; a summary search has one page"));
                }
                self.summary(&search).await
            }
            Wanted::Nothing => empty(),
        }
    }

    async fn readings(
        &self,
        s: &Search<'_>,
        unit: GlucoseUnit,
        include_warm_up: bool,
        count: usize,
        started: Instant,
    ) -> Result<Answer, FhirError> {
        let (p, base, sn) = (s.p, s.base, s.sn);
        let range = search::date_range(&p.all("date"), &self.zone)?;
        let qh = QueryHash::of(&[
            "fhir-observations",
            sn.as_str(),
            &range.start().ms().to_string(),
            &range.end().ms().to_string(),
            unit.reading_code(),
            if include_warm_up { "all" } else { "valid" },
        ]);
        let start = match p.cursor_param::<Position>("_cursor", qh)? {
            Some(c) if !range.contains(c.measured_at) => return Err(bad("_cursor: cursor is malformed")),
            start => start,
        };
        let device_ref = profiles::device_reference(sn);
        let q = ReadingQuery { device_sn: sn, range, valid_only: !include_warm_up, newest_first: false };
        let (zone, naming, subject) = (self.zone, &self.naming, s.subject);
        let page =
            paging::fill_page(&self.store, &q, start, count, PAGE_BUDGET_BYTES, started + PAGE_TIME_BUDGET, |r| {
                let entry = profiles::reading_observation(r, unit, naming, &zone, subject, &device_ref)
                    .map(|o| resources::search_entry(&full_url(base, &o), &o, resources::SearchMode::Match));
                let size = entry.as_ref().map_or(0, String::len);
                (entry, size)
            })
            .await?;
        let skipped = page.items.iter().filter(|e| e.is_none()).count();
        if skipped > 0 {
            tracing::warn!(skipped, "readings whose instant cannot be written were left out");
        }
        let entries: Vec<String> = page.items.into_iter().flatten().collect();
        let next = page.next.map(|pos| {
            let token = cursor::encode(&pos, qh);
            search_url(base, "Observation", &p.pairs_all(), Some(&token))
        });
        let body = resources::searchset(s.self_url, next.as_deref(), &entries);
        Ok(Answer::new(fhir_reply(StatusCode::OK, body)).items(entries.len()).device_sn(sn.as_str()))
    }

    /// A `cgm-summary` over whole local days, computed on demand from the daily rollups
    /// (and the readings of days without one): the panel as the match, its six members as
    /// included entries. No valid readings (or one, which has no CV) match nothing.
    async fn summary(&self, s: &Search<'_>) -> Result<Answer, FhirError> {
        let Some(summary) = self.summary_of(s).await? else {
            return Ok(Answer::new(fhir_reply(StatusCode::OK, resources::searchset(s.self_url, None, &[]))));
        };
        let entries: Vec<String> = summary
            .observations
            .iter()
            .enumerate()
            .map(|(i, o)| {
                let mode = if i == 0 { resources::SearchMode::Match } else { resources::SearchMode::Include };
                resources::search_entry(&full_url(s.base, o), o, mode)
            })
            .collect();
        let body = resources::searchset(s.self_url, None, &entries);
        Ok(Answer::new(fhir_reply(StatusCode::OK, body)).items(1).device_sn(s.sn.as_str()))
    }

    /// The summary a search's `date` values ask for; `None` without two valid readings.
    async fn summary_of(&self, s: &Search<'_>) -> Result<Option<Summary>, FhirError> {
        let (first, last) = self.summary_days(&s.p.all("date"))?;
        let figures =
            summary_figures(&self.store, &self.rollups, &self.zone, s.sn, first, last).await.map_err(|e| match e {
                SummaryError::NoSuchDays => bad(format!("date: {e}")),
                SummaryError::Read(e) => read_error(e),
            })?;
        Ok(figures.map(|figures| {
            let id = profiles::summary_id(s.sn, &figures, self.unit);
            let device_ref = profiles::device_reference(s.sn);
            let observations =
                profiles::summary_observations(&figures, self.unit, &self.naming, &id, s.subject, &device_ref);
            Summary { figures, id, observations }
        }))
    }

    /// `DiagnosticReport?device=…&date=…`: the `cgm-summary-pdf` of the summary the same
    /// `Observation` search computes, its PDF the page `agp.pdf` serves (without the
    /// patient's name), the summary's panel and members included.
    async fn reports(&self, p: Params<'_>, base: &str) -> Result<Answer, FhirError> {
        p.only(&["device", "date", "code", "_format"])?;
        if self.naming.patient_system.is_none() {
            return Err(FhirError::Disabled(DISABLED));
        }
        let device = p.query("device").ok_or_else(|| bad("device is required: search a sensor's reports by device"))?;
        let device_id = search::reference_id(device, "device", "Device")?;
        let wanted = match p.query("code") {
            None => true,
            Some(v) => search::codes(v, "code", LOINC)?.contains(&SUMMARY_CODE),
        };
        let self_url = search_url(base, "DiagnosticReport", &p.pairs_all(), None);
        let empty = || Ok(Answer::new(fhir_reply(StatusCode::OK, resources::searchset(&self_url, None, &[]))));
        if !wanted {
            return empty();
        }
        let fonts = self.fonts.as_ref().ok_or(FhirError::NotSupported(
            "DiagnosticReport: this server has no fonts to typeset the PDF in (AGP_FONT_DIR)",
        ))?;
        let Some((sn, subject)) = self.searched_device(device_id).await? else { return empty() };
        let search = Search { p, base, self_url: &self_url, sn: &sn, subject: &subject };
        let Some(summary) = self.summary_of(&search).await? else { return empty() };
        let range = self
            .zone
            .local_days(summary.figures.first, summary.figures.last)
            .ok_or_else(|| bad("date: no such days"))?;
        let (_, pdf) = agp_pdf::agp_pdf(&self.store, &self.rollups, &self.zone, &sn, range, None, fonts)
            .await
            .map_err(|e| match e {
                agp_pdf::AgpPdfError::Read(e) => read_error(e),
                agp_pdf::AgpPdfError::Pdf(e) => FhirError::Pdf(e),
            })?;
        let pdf = {
            use base64::Engine as _;
            base64::engine::general_purpose::STANDARD.encode(pdf)
        };
        let issued = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let report = profiles::summary_pdf_report(&summary.figures, &self.naming, &summary.id, &subject, &pdf, &issued);
        let report_url = format!("{base}/DiagnosticReport/{}", report["id"].as_str().unwrap_or_default());
        let mut entries = vec![resources::search_entry(&report_url, &report, resources::SearchMode::Match)];
        entries.extend(
            summary
                .observations
                .iter()
                .map(|o| resources::search_entry(&full_url(base, o), o, resources::SearchMode::Include)),
        );
        let body = resources::searchset(&self_url, None, &entries);
        Ok(Answer::new(fhir_reply(StatusCode::OK, body)).items(1).device_sn(sn.as_str()))
    }

    /// The local days a summary covers: from `date` values that fall on whole days
    /// (`ge<day>&le<day>`, a month, `eq<day>`), or the last 14 full days before today; at
    /// most 90.
    fn summary_days(&self, dates: &[&str]) -> Result<(NaiveDate, NaiveDate), FhirError> {
        let zone = &self.zone;
        let (first, last) = if dates.is_empty() {
            let today = zone.local_date(Timestamp::now()).ok_or_else(|| bad("the current time has no local day"))?;
            (today - chrono::Duration::days(SUMMARY_DEFAULT_DAYS), today - chrono::Duration::days(1))
        } else {
            let range = search::date_range(dates, zone)?;
            let whole = "date: a summary covers whole local days; give ge<YYYY-MM-DD> and le<YYYY-MM-DD>";
            let (Some(first), Some(last)) = (zone.local_date(range.start()), zone.local_date(range.end())) else {
                return Err(bad(whole));
            };
            if zone.local_days(first, last) != Some(range) {
                return Err(bad(whole));
            }
            (first, last)
        };
        if (last - first).num_days() + 1 > SUMMARY_MAX_DAYS {
            return Err(bad(format!("date: a summary covers at most {SUMMARY_MAX_DAYS} days")));
        }
        Ok((first, last))
    }
}

/// What an Observation search asks for, from its `code`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wanted {
    Readings(GlucoseUnit),
    Summary,
    Nothing,
}

/// A summary computed for a search: its figures, its panel's id, the panel and members.
struct Summary {
    figures: profiles::SummaryFigures,
    id: String,
    observations: Vec<Value>,
}

/// Reading a period failed: the store, or more readings than one answer holds.
fn read_error(e: ReadAllError) -> FhirError {
    match e {
        ReadAllError::Store(e) => FhirError::Store(e),
        e @ ReadAllError::TooMany(_) => FhirError::BadRequest(cgm_edge::BadRequest::too_many_readings(e, "period")),
    }
}

/// One search, once its device and patient are known.
struct Search<'a> {
    p: Params<'a>,
    base: &'a str,
    self_url: &'a str,
    sn: &'a DeviceSn,
    subject: &'a Value,
}

/// `[base]/Observation/<id>`.
fn full_url(base: &str, o: &Value) -> String {
    format!("{base}/Observation/{}", o["id"].as_str().unwrap_or_default())
}

/// `[base]/<type>?` and the caller's own search, re-encoded, with `_cursor` replaced.
fn search_url(base: &str, resource: &str, pairs: &[(&str, &str)], cursor: Option<&str>) -> String {
    let mut parts: Vec<String> = pairs
        .iter()
        .filter(|(k, _)| *k != "_cursor")
        .map(|(k, v)| format!("{}={}", utf8_percent_encode(k, QUERY_VALUE), utf8_percent_encode(v, QUERY_VALUE)))
        .collect();
    if let Some(c) = cursor {
        parts.push(format!("_cursor={}", utf8_percent_encode(c, QUERY_VALUE)));
    }
    format!("{base}/{resource}?{}", parts.join("&"))
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
