//! Every way a proxied call can fail, and the one place each becomes a status and the
//! vendor's envelope.

use crate::client::{PERMISSION_DENIED, UpstreamError};
use cgm_domain::store::StoreError;
use cgm_edge::{Api, BadRequest, reply};
use lambda_http::http::StatusCode;
use lambda_http::{Body, Response};
use serde_json::Value;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// The caller's request is wrong; the text says how (and never echoes secrets).
    #[error(transparent)]
    BadRequest(#[from] BadRequest),
    #[error("no such route")]
    NoRoute,
    #[error("this open_id has no token here: register the user through POST /partner/users first")]
    UnknownUser,
    /// The vendor answered with a non-zero code.
    #[error("the partner API answered code {code}")]
    Refused { code: i64, msg: String },
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    #[error("token storage failed")]
    Store(#[from] StoreError),
    #[error("the partner API is not configured here: the stack needs PartnerApiBaseUrl (PARTNER_API_BASE_URL)")]
    NotConfigured,
}

pub fn bad(msg: impl Into<String>) -> ProxyError {
    ProxyError::BadRequest(BadRequest::new(msg))
}

/// The partner routes' API family: the vendor's envelope `{code, msg, data}`.
pub struct PartnerApi;

impl Api for PartnerApi {
    const NAME: &'static str = "partner";
    type Error = ProxyError;

    /// Expected failures (the caller's input, the vendor's refusals) apart from ours.
    fn error_reply(e: &ProxyError) -> Response<Body> {
        let (status, code, msg) = match e {
            ProxyError::BadRequest(m) => (StatusCode::BAD_REQUEST, 400, m.0.clone()),
            ProxyError::NoRoute => (StatusCode::NOT_FOUND, 404, e.to_string()),
            ProxyError::UnknownUser => (StatusCode::NOT_FOUND, 404, e.to_string()),
            ProxyError::Refused { code, msg } if *code == PERMISSION_DENIED => {
                (StatusCode::FORBIDDEN, *code, msg.clone())
            }
            // The vendor's own code and message are kept, so the caller sees what it said.
            ProxyError::Refused { code, msg } => (StatusCode::BAD_GATEWAY, *code, msg.clone()),
            ProxyError::Upstream(UpstreamError::Timeout(_)) => (StatusCode::GATEWAY_TIMEOUT, 504, e.to_string()),
            ProxyError::Upstream(UpstreamError::Nonce(_)) => {
                (StatusCode::INTERNAL_SERVER_ERROR, 500, "internal error".to_string())
            }
            ProxyError::Upstream(u) => (StatusCode::BAD_GATEWAY, 502, u.to_string()),
            ProxyError::Store(_) => (StatusCode::SERVICE_UNAVAILABLE, 503, "storage unavailable, retry later".into()),
            ProxyError::NotConfigured => (StatusCode::SERVICE_UNAVAILABLE, 503, e.to_string()),
        };
        reply::vendor_envelope(status, code, &msg, Value::Null)
    }

    fn deadline_reply(after: Duration) -> Response<Body> {
        let msg = format!("the request did not finish within {} s", after.as_secs());
        reply::vendor_envelope(StatusCode::GATEWAY_TIMEOUT, 504, &msg, Value::Null)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply_of(e: ProxyError) -> (u16, Value) {
        let r = PartnerApi::error_reply(&e);
        (r.status().as_u16(), serde_json::from_slice(r.body()).unwrap())
    }

    #[test]
    fn each_failure_has_its_status_and_code() {
        assert_eq!(reply_of(bad("x")).0, 400);
        assert_eq!(reply_of(ProxyError::UnknownUser).0, 404);
        let (s, b) = reply_of(ProxyError::Refused { code: 1002, msg: "denied".into() });
        assert_eq!((s, b["code"].as_i64(), b["msg"].as_str()), (403, Some(1002), Some("denied")));
        assert_eq!(reply_of(ProxyError::Refused { code: 2001, msg: "x".into() }).0, 502);
        assert_eq!(reply_of(ProxyError::Upstream(UpstreamError::Timeout(10))).0, 504);
        assert_eq!(reply_of(ProxyError::Upstream(UpstreamError::NotJson)).0, 502);
        let (s, b) = reply_of(ProxyError::Store(StoreError::Timeout));
        assert_eq!((s, b["code"].as_i64()), (503, Some(503)), "storage unavailable is 503 on every route");
        assert_eq!(PartnerApi::deadline_reply(Duration::from_secs(27)).status(), 504);
    }
}
