//! The report function's errors, each a status and `{"status", "message"}` as the read
//! side answers (`agp.svg` refuses the same requests the same way), and a page that could
//! not become a PDF.

use cgm_agp::pdf::{AgpPdfError, PdfError};
use cgm_domain::store::StoreError;
use cgm_domain::store::reads::paging::ReadAllError;
use cgm_edge::{Api, BadRequest, reply};
use lambda_http::http::StatusCode;
use lambda_http::{Body, Response};

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The caller's input; the message names the parameter and never echoes a value.
    #[error(transparent)]
    BadRequest(#[from] BadRequest),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("storage failed")]
    Store(#[from] StoreError),
    /// The message names the library's failure, never the page's text.
    #[error(transparent)]
    Pdf(#[from] PdfError),
}

impl From<AgpPdfError> for ReportError {
    fn from(e: AgpPdfError) -> Self {
        match e {
            AgpPdfError::Read(e) => e.into(),
            AgpPdfError::Pdf(e) => ReportError::Pdf(e),
        }
    }
}

impl From<ReadAllError> for ReportError {
    fn from(e: ReadAllError) -> Self {
        match e {
            ReadAllError::Store(s) => ReportError::Store(s),
            ReadAllError::TooMany(_) => ReportError::BadRequest(BadRequest::too_many_readings(e, "range")),
        }
    }
}

pub struct ReportApi;

impl Api for ReportApi {
    const NAME: &'static str = "report";
    type Error = ReportError;

    fn error_reply(e: &ReportError) -> Response<Body> {
        let (status, message) = match e {
            ReportError::BadRequest(m) => (StatusCode::BAD_REQUEST, m.0.clone()),
            ReportError::NotFound(what) => (StatusCode::NOT_FOUND, format!("{what} not found")),
            ReportError::Store(_) => (StatusCode::SERVICE_UNAVAILABLE, "storage unavailable, retry later".to_string()),
            ReportError::Pdf(_) => (StatusCode::INTERNAL_SERVER_ERROR, "the PDF could not be made".to_string()),
        };
        reply::status_message(status, &message)
    }
}
