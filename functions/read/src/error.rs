//! The read side's one error, and the one place each becomes a status and
//! `{"status", "message"}`.

use cgm_domain::random::NoRandomness;
use cgm_domain::store::StoreError;
use cgm_domain::store::reads::paging::ReadAllError;
use cgm_edge::{Api, BadRequest, reply};
use lambda_http::http::StatusCode;
use lambda_http::{Body, Response};

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The caller's input; the message says what is wrong and never echoes a token.
    #[error(transparent)]
    BadRequest(#[from] BadRequest),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("storage failed")]
    Store(#[from] StoreError),
    #[error(transparent)]
    Randomness(#[from] NoRandomness),
    /// A route the stack's settings turn off; the message names the setting.
    #[error("{0}")]
    Disabled(&'static str),
    /// A write kept losing to other writers.
    #[error("the item kept changing; retry")]
    Busy,
}

impl From<ReadAllError> for ReadError {
    fn from(e: ReadAllError) -> Self {
        match e {
            ReadAllError::Store(s) => ReadError::Store(s),
            ReadAllError::TooMany(_) => ReadError::BadRequest(BadRequest::too_many_readings(e, "range")),
        }
    }
}

pub fn bad(msg: impl Into<String>) -> ReadError {
    ReadError::BadRequest(BadRequest::new(msg))
}

/// The read side's API family: `{"status", "message"}`, the shape Nightscout uses.
pub struct ReadApi;

impl Api for ReadApi {
    const NAME: &'static str = "read";
    type Error = ReadError;

    fn error_reply(e: &ReadError) -> Response<Body> {
        let (status, message) = match e {
            ReadError::BadRequest(m) => (StatusCode::BAD_REQUEST, m.0.clone()),
            ReadError::NotFound(what) => (StatusCode::NOT_FOUND, format!("{what} not found")),
            ReadError::Store(_) => (StatusCode::SERVICE_UNAVAILABLE, "storage unavailable, retry later".to_string()),
            ReadError::Randomness(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal error".to_string()),
            ReadError::Disabled(why) => (StatusCode::FORBIDDEN, why.to_string()),
            ReadError::Busy => (StatusCode::CONFLICT, "the sensor changed meanwhile; retry".to_string()),
        };
        reply::status_message(status, &message)
    }
}
