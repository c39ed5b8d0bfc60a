//! One-time submissions to the EHR, asked for here and sent by the FHIR submitter:
//!
//! - `POST /fhir-submissions` with `{"device", "start", "end", "profiles"?}` (local days
//!   `YYYY-MM-DD` that have ended, at most 90; profiles as `FHIR_SUBMIT_PROFILES` names them, all three by
//!   default) queues one: `202` with the request and its `Location`;
//! - `GET /fhir-submissions/{id}`: how it went (`queued`, `done` with the EHR's counts, or
//!   `failed` with the reason).
//!
//! The submitter's next scheduled run sends it (with `ifNoneExist` only, so what the EHR
//! has is matched, not stored again). Plain JSON like the other back-end routes, errors as
//! `{"status", "message"}`: this is an operator's route, not FHIR.

use crate::error::{FhirError, bad};
use crate::{FhirService, search};
use cgm_domain::ids::DeviceSn;
use cgm_domain::store::reads::ReadStore;
use cgm_domain::store::rollups::RollupStore;
use cgm_domain::store::sensors::SensorStore;
use cgm_domain::store::submissions::{RequestProfiles, RequestStatus, SubmissionRequest, SubmissionRequests};
use cgm_domain::time::Timestamp;
use cgm_edge::{Answer, Api, Frame, Params, RequestMeta, Routes, reply};
use cgm_fhir_profiles as profiles;
use chrono::NaiveDate;
use lambda_http::http::{HeaderValue, Method, StatusCode, header};
use lambda_http::{Body, Request, Response};
use serde_json::{Value, json};

/// The longest period one request covers (the summary's limit too).
const MAX_DAYS: i64 = 90;
const FIELDS: [&str; 4] = ["device", "start", "end", "profiles"];
pub const NO_SUBMITTER: &str = "one-time submissions are sent by the FHIR submitter, which this stack does not run \
                                (FhirEhrBaseUrl is not set)";

/// These routes' errors: `{"status", "message"}`, as the read side answers.
pub struct SubmissionsApi;

impl Api for SubmissionsApi {
    const NAME: &'static str = "fhir";
    type Error = FhirError;

    fn error_reply(e: &FhirError) -> Response<Body> {
        let (status, message) = match e {
            FhirError::BadRequest(m) => (StatusCode::BAD_REQUEST, m.0.clone()),
            FhirError::NotFound(what) => (StatusCode::NOT_FOUND, format!("{what} not found")),
            FhirError::Disabled(why) => (StatusCode::FORBIDDEN, (*why).to_string()),
            FhirError::Store(_) => (StatusCode::SERVICE_UNAVAILABLE, "storage unavailable, retry later".to_string()),
            other => (StatusCode::INTERNAL_SERVER_ERROR, other.to_string()),
        };
        reply::status_message(status, &message)
    }
}

/// A submission route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Create,
    Get,
}

const ROUTES: &[cgm_edge::Route<Route>] = &[
    cgm_edge::Route::new("POST", "/fhir-submissions", "fhir_submission_create", Route::Create),
    cgm_edge::Route::new("GET", "/fhir-submissions/{id}", "fhir_submission_get", Route::Get),
];

/// Whether `req` is one of these routes (any other, the FHIR family answers).
pub fn takes(req: &Request) -> bool {
    cgm_edge::serve::lookup(ROUTES, req.method(), RequestMeta::of(req).route_path()).is_some()
}

/// The submission routes of a FHIR service, served as their own family.
pub struct Submissions<'a, S, U, T>(pub &'a FhirService<S, U, T>);

impl<S: ReadStore, U: RollupStore, T: SensorStore> Routes for Submissions<'_, S, U, T> {
    type Api = SubmissionsApi;
    type Route = Route;

    fn route_of(method: &Method, path: &str) -> Result<(Route, &'static str), FhirError> {
        cgm_edge::serve::lookup(ROUTES, method, path).ok_or(FhirError::NotFound("route"))
    }

    async fn route(&self, route: Route, req: &Request, _: &Frame) -> Result<Answer, FhirError> {
        match route {
            Route::Create => self.0.create_submission(req).await,
            Route::Get => self.0.get_submission(req).await,
        }
    }
}

/// A request as these routes show it.
pub fn view(r: &SubmissionRequest) -> Value {
    let at = |t: Timestamp| {
        chrono::DateTime::from_timestamp_millis(t.ms()).map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
    };
    json!({
        "id": r.id,
        "device": r.device_sn.as_str(),
        "start": r.first.format("%Y-%m-%d").to_string(),
        "end": r.last.format("%Y-%m-%d").to_string(),
        "profiles": r.profiles.names(),
        "status": r.status.as_str(),
        "attempts": r.attempts,
        "accepted": r.accepted,
        "declined": r.declined,
        "reason": r.reason,
        "createdAt": at(r.created_at),
        "updatedAt": at(r.updated_at),
    })
}

fn date(body: &Value, field: &'static str) -> Result<NaiveDate, FhirError> {
    body[field]
        .as_str()
        .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
        .ok_or_else(|| bad(format!("{field} is required: a local day, YYYY-MM-DD")))
}

impl<S: ReadStore, U: RollupStore, T: SensorStore> FhirService<S, U, T> {
    pub(crate) async fn create_submission(&self, req: &Request) -> Result<Answer, FhirError> {
        let p = Params::of(req);
        p.only(&[])?;
        let store = self.requests.as_ref().ok_or(FhirError::Disabled(NO_SUBMITTER))?;
        let body: Value = serde_json::from_slice(p.body())
            .ok()
            .filter(Value::is_object)
            .ok_or_else(|| bad("the body is a JSON object: {\"device\", \"start\", \"end\", \"profiles\"}"))?;
        if let Some(k) = body.as_object().into_iter().flatten().map(|(k, _)| k).find(|k| !FIELDS.contains(&k.as_str()))
        {
            return Err(bad(format!(
                "unknown field {:?}; the body takes {}",
                cgm_domain::ids::clip_for_log(k),
                FIELDS.join(", ")
            )));
        }
        let device = body["device"].as_str().ok_or_else(|| bad("device is required: Device/<id> or <id>"))?;
        let device_id = search::reference_id(device, "device", "Device")?;
        let sn = profiles::text_of_fhir_id(device_id).map(DeviceSn::from).ok_or(FhirError::NotFound("Device"))?;
        let (first, last) = (date(&body, "start")?, date(&body, "end")?);
        if first > last {
            return Err(bad("start is after end"));
        }
        let today = self.zone.local_date(Timestamp::now()).ok_or_else(|| bad("the current time has no local day"))?;
        // A day still going would pin partial figures in the EHR: its conditional create
        // matches the same summary later and keeps the first.
        if last >= today {
            return Err(bad("end must be a local day that has ended (before today)"));
        }
        if (last - first).num_days() + 1 > MAX_DAYS {
            return Err(bad(format!("a one-time submission covers at most {MAX_DAYS} days; send several")));
        }
        let profiles = match &body["profiles"] {
            Value::Null => RequestProfiles { readings: true, summary: true, summary_pdf: true },
            Value::Array(list) => {
                let names: Option<Vec<&str>> = list.iter().map(Value::as_str).collect();
                let names =
                    names.filter(|n| !n.is_empty()).ok_or_else(|| bad("profiles: a non-empty list of names"))?;
                RequestProfiles::of(names).map_err(|_| {
                    bad(format!("profiles: an unknown profile; expected {}", RequestProfiles::NAMES.join(", ")))
                })?
            }
            _ => return Err(bad("profiles: a non-empty list of names")),
        };
        if profiles.summary_pdf && !profiles.summary {
            return Err(bad("profiles: cgm-summary-pdf goes with its summary: add cgm-summary"));
        }
        if self.sensors.session(&sn).await?.is_none() && !self.has_readings(&sn).await? {
            return Err(FhirError::NotFound("Device"));
        }
        let now = Timestamp::now();
        let r = SubmissionRequest {
            id: uuid::Uuid::new_v4().simple().to_string(),
            device_sn: sn,
            first,
            last,
            profiles,
            status: RequestStatus::Queued,
            attempts: 0,
            accepted: 0,
            declined: 0,
            reason: None,
            created_at: now,
            updated_at: now,
            version: 0,
        };
        if !store.create(&r).await? {
            return Err(bad("that request id is taken; send it again"));
        }
        let mut resp = reply::json(StatusCode::ACCEPTED, &view(&r));
        if let Ok(v) = HeaderValue::from_str(&format!("/fhir-submissions/{}", r.id)) {
            resp.headers_mut().insert(header::LOCATION, v);
        }
        Ok(Answer::new(resp).device_sn(r.device_sn.as_str()))
    }

    pub(crate) async fn get_submission(&self, req: &Request) -> Result<Answer, FhirError> {
        let p = Params::of(req);
        p.only(&[])?;
        let store = self.requests.as_ref().ok_or(FhirError::Disabled(NO_SUBMITTER))?;
        let id = p.path("id")?;
        if id.len() != 32 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(FhirError::NotFound("one-time submission"));
        }
        let r = store.get(id).await?.ok_or(FhirError::NotFound("one-time submission"))?;
        Ok(Answer::new(reply::json(StatusCode::OK, &view(&r))).device_sn(r.device_sn.as_str()))
    }
}
