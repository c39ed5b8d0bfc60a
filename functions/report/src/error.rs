//! The report function's errors: the read side's (the same statuses and messages as
//! `agp.svg`), and a page that could not become a PDF.

use crate::pdf::PdfError;
use cgm_edge::{Api, reply};
use cgm_read::error::{ReadApi, ReadError};
use lambda_http::http::StatusCode;
use lambda_http::{Body, Response};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error(transparent)]
    Read(#[from] ReadError),
    /// The message names the library's failure, never the page's text.
    #[error(transparent)]
    Pdf(#[from] PdfError),
}

pub struct ReportApi;

impl Api for ReportApi {
    const NAME: &'static str = "report";
    type Error = ReportError;

    fn error_reply(e: &ReportError) -> Response<Body> {
        match e {
            ReportError::Read(e) => ReadApi::error_reply(e),
            ReportError::Pdf(_) => {
                reply::status_message(StatusCode::INTERNAL_SERVER_ERROR, "the PDF could not be made")
            }
        }
    }

    fn deadline_reply(after: Duration) -> Response<Body> {
        ReadApi::deadline_reply(after)
    }
}
