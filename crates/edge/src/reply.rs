//! Building replies. Every body the edge sends is `no-store`: it is a patient's glucose data
//! or about it, and no shared cache (a proxy, a CDN) may keep a copy.
//!
//! The three API families each have their envelope here; each function maps its own error
//! enum onto one of them in one `match`.

use lambda_http::http::{HeaderValue, StatusCode, header};
use lambda_http::{Body, Response};
use serde::Serialize;

/// A JSON reply.
pub fn json<T: Serialize + ?Sized>(status: StatusCode, body: &T) -> Response<Body> {
    // Serializing our own reply types cannot fail (string keys, finite numbers); were it
    // ever to, the client gets a 500 rather than a truncated body.
    match serde_json::to_string(body) {
        Ok(text) => build(status, "application/json", Body::from(text)),
        Err(_) => build(
            StatusCode::INTERNAL_SERVER_ERROR,
            "application/json",
            Body::from(r#"{"status":500,"message":"internal error"}"#),
        ),
    }
}

/// A text reply (CSV, SVG) of a fixed content type.
pub fn text(status: StatusCode, content_type: &'static str, body: String) -> Response<Body> {
    build(status, content_type, Body::from(body))
}

/// A binary reply (a PDF) of a fixed content type; API Gateway sends it base64-decoded.
pub fn binary(status: StatusCode, content_type: &'static str, body: Vec<u8>) -> Response<Body> {
    build(status, content_type, Body::from(body))
}

fn build(status: StatusCode, content_type: &'static str, body: Body) -> Response<Body> {
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// Sinocare's push envelope `{"code", "msg"}`: `code` is 0 for success and the HTTP status
/// otherwise, as Sinocare expects.
#[derive(Debug, Serialize)]
pub struct PushEnvelope<'a> {
    pub code: u16,
    pub msg: &'a str,
}

pub fn push_envelope(status: StatusCode, msg: &str) -> Response<Body> {
    let code = if status == StatusCode::OK { 0 } else { status.as_u16() };
    json(status, &PushEnvelope { code, msg })
}

/// The vendor's envelope `{"code", "msg", "data"}`, which the partner routes keep.
#[derive(Debug, Serialize)]
pub struct VendorEnvelope<'a, T: Serialize> {
    pub code: i64,
    pub msg: &'a str,
    pub data: T,
}

pub fn vendor_envelope<T: Serialize>(status: StatusCode, code: i64, msg: &str, data: T) -> Response<Body> {
    json(status, &VendorEnvelope { code, msg, data })
}

/// The read side's refusals, `{"status", "message"}`: the shape Nightscout uses, so
/// followers understand them too.
#[derive(Debug, Serialize)]
pub struct StatusMessage<'a> {
    pub status: u16,
    pub message: &'a str,
}

pub fn status_message(status: StatusCode, message: &str) -> Response<Body> {
    json(status, &StatusMessage { status: status.as_u16(), message })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn body(r: &Response<Body>) -> Value {
        serde_json::from_slice(r.body()).unwrap()
    }

    #[test]
    fn the_three_envelopes() {
        let r = push_envelope(StatusCode::OK, "");
        assert_eq!((r.status(), body(&r)), (StatusCode::OK, json!({"code": 0, "msg": ""})));
        let r = push_envelope(StatusCode::SERVICE_UNAVAILABLE, "x");
        assert_eq!(body(&r), json!({"code": 503, "msg": "x"}));
        let r = vendor_envelope(StatusCode::FORBIDDEN, 1002, "denied", Value::Null);
        assert_eq!(body(&r), json!({"code": 1002, "msg": "denied", "data": null}));
        let r = status_message(StatusCode::NOT_FOUND, "route not found");
        assert_eq!(body(&r), json!({"status": 404, "message": "route not found"}));
        assert_eq!(r.headers()[header::CACHE_CONTROL], "no-store");
        assert_eq!(r.headers()[header::CONTENT_TYPE], "application/json");
    }
}
