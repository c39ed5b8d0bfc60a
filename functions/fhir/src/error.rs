//! The FHIR function's one error, and the one place each becomes a status and an
//! `OperationOutcome` (FHIR's error resource).

use crate::resources::{FHIR_JSON, IssueType, operation_outcome};
use cgm_domain::store::StoreError;
use cgm_domain::store::reads::paging::ReadAllError;
use cgm_edge::{Api, BadRequest, reply};
use lambda_http::http::StatusCode;
use lambda_http::{Body, Response};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum FhirError {
    /// The caller's input; the message names the parameter and never echoes a value.
    #[error(transparent)]
    BadRequest(#[from] BadRequest),
    /// Valid FHIR this server does not do (yet); the message says what to do instead.
    #[error("{0}")]
    NotSupported(&'static str),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("storage failed")]
    Store(#[from] StoreError),
    /// A setting turns the route off; the message names it.
    #[error("{0}")]
    Disabled(&'static str),
    /// The profiles require a subject, and the device's pushes carried no `patientId`.
    #[error("the device's patient is not known")]
    NoPatient,
    /// The summary's page could not become a PDF; the message names the library's failure,
    /// never the page's text.
    #[error(transparent)]
    Pdf(#[from] cgm_agp::pdf::PdfError),
}

pub fn bad(msg: impl Into<String>) -> FhirError {
    FhirError::BadRequest(BadRequest::new(msg))
}

/// Reading a period failed: the store, or more readings than one answer holds.
pub(crate) fn read_error(e: ReadAllError) -> FhirError {
    match e {
        ReadAllError::Store(e) => FhirError::Store(e),
        e @ ReadAllError::TooMany(_) => FhirError::BadRequest(cgm_edge::BadRequest::too_many_readings(e, "period")),
    }
}

/// A FHIR reply: `application/fhir+json`.
pub fn fhir_reply(status: StatusCode, body: String) -> Response<Body> {
    reply::text(status, FHIR_JSON, body)
}

fn outcome(status: StatusCode, kind: IssueType, message: &str) -> Response<Body> {
    fhir_reply(status, operation_outcome(kind, message).to_string())
}

/// The FHIR API family: every error is an `OperationOutcome`.
pub struct FhirApi;

impl Api for FhirApi {
    const NAME: &'static str = "fhir";
    type Error = FhirError;

    fn error_reply(e: &FhirError) -> Response<Body> {
        match e {
            FhirError::BadRequest(m) => outcome(StatusCode::BAD_REQUEST, IssueType::Invalid, &m.0),
            FhirError::NotSupported(m) => outcome(StatusCode::BAD_REQUEST, IssueType::NotSupported, m),
            FhirError::NotFound(what) => {
                outcome(StatusCode::NOT_FOUND, IssueType::NotFound, &format!("{what} not found"))
            }
            FhirError::Store(_) => {
                outcome(StatusCode::SERVICE_UNAVAILABLE, IssueType::Transient, "storage unavailable, retry later")
            }
            FhirError::Disabled(why) => outcome(StatusCode::FORBIDDEN, IssueType::Forbidden, why),
            FhirError::Pdf(e) => outcome(StatusCode::INTERNAL_SERVER_ERROR, IssueType::Exception, &e.to_string()),
            FhirError::NoPatient => outcome(
                StatusCode::UNPROCESSABLE_ENTITY,
                IssueType::Processing,
                "the device's pushes carry no patientId, and the CGM profiles require a subject",
            ),
        }
    }

    fn deadline_reply(after: Duration) -> Response<Body> {
        outcome(
            StatusCode::GATEWAY_TIMEOUT,
            IssueType::Timeout,
            &format!("the answer took longer than {} s", after.as_secs()),
        )
    }
}
