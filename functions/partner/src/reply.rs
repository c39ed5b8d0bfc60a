//! The one place where a proxy outcome becomes an HTTP status and the vendor-style envelope.

use cgm_shared::partner::ProxyError;
use cgm_shared::partner::client::{PERMISSION_DENIED, UpstreamError};
use lambda_http::http::{StatusCode, header};
use lambda_http::{Body, Response};
use serde_json::{Value, json};

pub fn ok(data: Value) -> Response<Body> {
    envelope(StatusCode::OK, 0, "", data)
}

/// Expected failures (the caller's input, the vendor's refusals) apart from ours (500).
pub fn error(e: &ProxyError) -> Response<Body> {
    let (status, code, msg) = match e {
        ProxyError::BadRequest(m) => (StatusCode::BAD_REQUEST, 400, m.clone()),
        ProxyError::UnknownUser => (StatusCode::NOT_FOUND, 404, e.to_string()),
        ProxyError::Refused { code, msg } if *code == PERMISSION_DENIED => (StatusCode::FORBIDDEN, *code, msg.clone()),
        // The vendor's own code and message are kept, so the caller sees what it said.
        ProxyError::Refused { code, msg } => (StatusCode::BAD_GATEWAY, *code, msg.clone()),
        ProxyError::Upstream(UpstreamError::Timeout(_)) | ProxyError::Deadline(_) => {
            (StatusCode::GATEWAY_TIMEOUT, 504, e.to_string())
        }
        ProxyError::Upstream(u) => (StatusCode::BAD_GATEWAY, 502, u.to_string()),
        ProxyError::Store(_) => (StatusCode::INTERNAL_SERVER_ERROR, 500, e.to_string()),
    };
    envelope(status, code, &msg, Value::Null)
}

fn envelope(status: StatusCode, code: i64, msg: &str, data: Value) -> Response<Body> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(json!({ "code": code, "msg": msg, "data": data }).to_string()))
        .expect("a static status and header always build")
}
