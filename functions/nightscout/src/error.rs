//! The Nightscout function's one error, and the one place each becomes a status and a body
//! in Nightscout's own shape (`{"status", "message"}`; a 401 as Nightscout's
//! `lib/authorization` answers it, with `description`).

use cgm_domain::store::StoreError;
use cgm_edge::{Api, BadRequest, reply};
use lambda_http::http::StatusCode;
use lambda_http::{Body, Response};
use serde_json::json;

#[derive(Debug, thiserror::Error)]
pub enum NsError {
    /// The caller's input; the message says what is wrong and never echoes a token.
    #[error(transparent)]
    BadRequest(#[from] BadRequest),
    /// No live follower token was presented.
    #[error("missing, wrong, expired or revoked follower token")]
    Unauthorized,
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("storage failed")]
    Store(#[from] StoreError),
    /// API v3's 401 (`lib/api3/security.js`): `{status, message}`.
    #[error("{0}")]
    V3Unauthorized(&'static str),
    /// A path under `/api/v3` that is no collection or operation served here.
    #[error("bad operation or collection")]
    V3NotFound,
    /// What the feed cannot serve, said plainly (Socket.IO).
    #[error("{0}")]
    NotServed(&'static str),
}

pub fn bad(msg: impl Into<String>) -> NsError {
    NsError::BadRequest(BadRequest::new(msg))
}

pub struct NightscoutApi;

impl Api for NightscoutApi {
    const NAME: &'static str = "nightscout";
    type Error = NsError;

    fn error_reply(e: &NsError) -> Response<Body> {
        match e {
            NsError::BadRequest(m) => reply::status_message(StatusCode::BAD_REQUEST, &m.0),
            NsError::Unauthorized => reply::json(
                StatusCode::UNAUTHORIZED,
                &json!({"status": 401, "message": "Unauthorized", "description": "Invalid/Missing"}),
            ),
            NsError::V3Unauthorized(m) => reply::status_message(StatusCode::UNAUTHORIZED, m),
            NsError::V3NotFound => reply::status_message(StatusCode::NOT_FOUND, "Bad operation or collection"),
            NsError::NotFound(what) => reply::status_message(StatusCode::NOT_FOUND, &format!("{what} not found")),
            NsError::Store(_) => {
                reply::status_message(StatusCode::SERVICE_UNAVAILABLE, "storage unavailable, retry later")
            }
            NsError::NotServed(why) => reply::status_message(StatusCode::NOT_IMPLEMENTED, why),
        }
    }
}
