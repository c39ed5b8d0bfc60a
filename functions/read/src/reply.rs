//! Building replies: JSON, CSV and SVG bodies, and the one place where an error becomes a
//! status and `{"status", "message"}` (the shape Nightscout uses, so followers understand
//! the read side's refusals too).

use crate::handler::ReadError;
use lambda_http::http::{HeaderValue, StatusCode, header};
use lambda_http::{Body, Response};
use serde_json::{Value, json};

pub fn json(status: StatusCode, body: &Value) -> Response<Body> {
    build(status, "application/json", Body::from(body.to_string()))
}

pub fn text(content_type: &'static str, body: String) -> Response<Body> {
    build(StatusCode::OK, content_type, Body::from(body))
}

pub fn error(e: &ReadError) -> Response<Body> {
    let (status, message) = match e {
        ReadError::BadRequest(m) => (StatusCode::BAD_REQUEST, m.clone()),
        ReadError::Unauthorized => (StatusCode::UNAUTHORIZED, "Unauthorized".to_string()),
        ReadError::NotFound(what) => (StatusCode::NOT_FOUND, format!("{what} not found")),
        ReadError::Store(_) => (StatusCode::SERVICE_UNAVAILABLE, "storage unavailable, retry later".to_string()),
        ReadError::Deadline(_) => (StatusCode::GATEWAY_TIMEOUT, e.to_string()),
        ReadError::Randomness(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal error".to_string()),
    };
    json(status, &json!({ "status": status.as_u16(), "message": message }))
}

fn build(status: StatusCode, content_type: &'static str, body: Body) -> Response<Body> {
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    // Glucose data of a patient: no shared cache (a proxy, a CDN) may keep a copy.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// One CSV field (RFC 4180): quoted when it holds a comma, quote or line break. Text that a
/// spreadsheet would run as a formula (`=`, `+`, `-`, `@` first) gets a leading `'`, so an
/// opened export cannot execute anything (OWASP's CSV injection advice).
pub fn csv_field(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@', '\t', '\r']) { format!("'{s}") } else { s.to_string() };
    if s.contains([',', '"', '\n', '\r']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s }
}

/// Text inside an XML element or attribute.
pub fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Control characters are not allowed in XML 1.0 at all.
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_and_defused() {
        assert_eq!(csv_field("abc"), "abc");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("=HYPERLINK(1)"), "'=HYPERLINK(1)");
        assert_eq!(csv_field("-1,2"), "\"'-1,2\"");
    }

    #[test]
    fn xml_text_is_escaped() {
        assert_eq!(
            xml_escape("<a href=\"x\">&'</a>\u{1}"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&apos;&lt;/a&gt;\u{FFFD}"
        );
    }
}
