//! One client for the vendor's Partner Open API: one HTTP connection pool with connect and
//! per-call timeouts, the base URL and the five paths from configuration, the application
//! signature on every call when an app id and secret are configured, and the user's bearer
//! token on every call but register.
//!
//! Answers come back as the vendor's envelope `{code, msg, data}`; what a non-zero code
//! means is decided by the caller (see the proxy's error mapping).

use crate::sign::{Signer, new_nonce};
use crate::window::Window;
use cgm_domain::random::NoRandomness;
use cgm_domain::sensitive::Sensitive;
use cgm_domain::time::now_ms;
use cgm_shared::config::PartnerPaths;
use reqwest::Method;
use serde_json::Value;
use std::time::Duration;

/// The largest upstream answer read: a 30-day window of one-minute readings is about 9 MB
/// of JSON; anything far beyond that is not an answer to hold in a Lambda's memory.
pub const MAX_UPSTREAM_BODY_BYTES: usize = 32 * 1024 * 1024;

/// The vendor's answer: `code` 0 is success.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    pub code: i64,
    pub msg: String,
    pub data: Value,
}

/// The vendor's codes with a meaning of their own.
pub const UNAUTHORIZED: i64 = 1001;
pub const PERMISSION_DENIED: i64 = 1002;

/// A call that produced no envelope. The texts name the failure, never a token or a body.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("the partner API did not answer within {0} ms")]
    Timeout(u64),
    #[error("the partner API could not be reached")]
    Unreachable(#[source] reqwest::Error),
    #[error("the partner API answered HTTP {status} without a JSON envelope")]
    Status { status: u16 },
    #[error("the partner API's answer is not JSON")]
    NotJson,
    #[error("the partner API's answer is not valid: {0}")]
    Malformed(&'static str),
    #[error("the partner API's answer is larger than {0} bytes")]
    TooLarge(usize),
    #[error("a request nonce could not be made")]
    Nonce(#[from] NoRandomness),
}

#[derive(Debug, Clone)]
pub struct PartnerClient {
    http: reqwest::Client,
    base_url: String,
    paths: PartnerPaths,
    signer: Option<Signer>,
    call_timeout: Duration,
}

impl PartnerClient {
    pub fn new(
        base_url: &str,
        paths: PartnerPaths,
        signer: Option<Signer>,
        call_timeout: Duration,
    ) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .connect_timeout(call_timeout.min(Duration::from_secs(3)))
            .timeout(call_timeout)
            .pool_idle_timeout(Duration::from_secs(50))
            .user_agent(concat!("cgm-bridge/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self { http, base_url: base_url.trim_end_matches('/').to_string(), paths, signer, call_timeout })
    }

    pub async fn register(&self, partner_uid: &str, region: Option<&str>) -> Result<Envelope, UpstreamError> {
        let mut body = serde_json::json!({ "partner_uid": partner_uid });
        if let Some(r) = region {
            body["region"] = Value::String(r.to_string());
        }
        self.call(Method::POST, &self.paths.register, &[], Some(body.to_string().into_bytes()), None).await
    }

    /// Get-token sends the held bearer even when it has expired: that is how the vendor
    /// knows which user's token to renew.
    pub async fn get_token(&self, open_id: &str, bearer: &Sensitive<String>) -> Result<Envelope, UpstreamError> {
        self.call(Method::GET, &self.paths.token, &[("open_id", open_id)], None, Some(bearer)).await
    }

    pub async fn user_glucose(
        &self,
        open_id: &str,
        window: Window,
        bearer: &Sensitive<String>,
    ) -> Result<Envelope, UpstreamError> {
        let (s, e) = (window.start().ms().to_string(), window.end().ms().to_string());
        let q = [("open_id", open_id), ("start_time", s.as_str()), ("end_time", e.as_str())];
        self.call(Method::GET, &self.paths.user_glucose, &q, None, Some(bearer)).await
    }

    pub async fn device_info(&self, device_sn: &str, bearer: &Sensitive<String>) -> Result<Envelope, UpstreamError> {
        self.call(Method::GET, &self.paths.device_info, &[("device_sn", device_sn)], None, Some(bearer)).await
    }

    pub async fn device_glucose(
        &self,
        device_sn: &str,
        window: Option<Window>,
        bearer: &Sensitive<String>,
    ) -> Result<Envelope, UpstreamError> {
        let times = window.map(|w| (w.start().ms().to_string(), w.end().ms().to_string()));
        let mut q = vec![("device_sn", device_sn)];
        if let Some((s, e)) = &times {
            q.push(("start_time", s.as_str()));
            q.push(("end_time", e.as_str()));
        }
        self.call(Method::GET, &self.paths.device_glucose, &q, None, Some(bearer)).await
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<Vec<u8>>,
        bearer: Option<&Sensitive<String>>,
    ) -> Result<Envelope, UpstreamError> {
        let mut url = reqwest::Url::parse(&format!("{}{}", self.base_url, path))
            .map_err(|_| UpstreamError::Malformed("the configured base URL and path do not form a URL"))?;
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        let mut req = self.http.request(method.clone(), url);
        if let Some(signer) = &self.signer {
            let h =
                signer.sign(method.as_str(), path, query, body.as_deref().unwrap_or_default(), now_ms(), &new_nonce()?);
            req = req
                .header("X-App-Id", h.app_id)
                .header("X-Timestamp", h.timestamp)
                .header("X-Nonce", h.nonce)
                .header("X-Signature", h.signature);
        }
        if let Some(token) = bearer {
            req = req.bearer_auth(token.expose());
        }
        if let Some(b) = body {
            req = req.header(reqwest::header::CONTENT_TYPE, "application/json").body(b);
        }
        let timeout_ms = self.call_timeout.as_millis() as u64;
        let resp = req.send().await.map_err(|e| {
            if e.is_timeout() { UpstreamError::Timeout(timeout_ms) } else { UpstreamError::Unreachable(e) }
        })?;
        let status = resp.status().as_u16();
        let bytes = read_capped(resp, MAX_UPSTREAM_BODY_BYTES).await.map_err(|e| match e {
            ReadError::TooLarge => UpstreamError::TooLarge(MAX_UPSTREAM_BODY_BYTES),
            ReadError::Http(e) if e.is_timeout() => UpstreamError::Timeout(timeout_ms),
            ReadError::Http(e) => UpstreamError::Unreachable(e),
        })?;
        parse_envelope(&bytes).map_err(|e| match e {
            // A proxy or load balancer's HTML error page says more by its status.
            UpstreamError::NotJson if !(200..300).contains(&status) => UpstreamError::Status { status },
            other => other,
        })
    }
}

enum ReadError {
    TooLarge,
    Http(reqwest::Error),
}

/// The body, chunk by chunk, refusing it once it passes `max` bytes (a `Content-Length`
/// that says so is refused before reading).
async fn read_capped(mut resp: reqwest::Response, max: usize) -> Result<Vec<u8>, ReadError> {
    if resp.content_length().is_some_and(|n| n > max as u64) {
        return Err(ReadError::TooLarge);
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(ReadError::Http)? {
        if body.len() + chunk.len() > max {
            return Err(ReadError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The vendor's envelope from a response body.
pub fn parse_envelope(bytes: &[u8]) -> Result<Envelope, UpstreamError> {
    let v: Value = serde_json::from_slice(bytes).map_err(|_| UpstreamError::NotJson)?;
    let Value::Object(mut o) = v else { return Err(UpstreamError::Malformed("not a JSON object")) };
    let code = match o.get("code") {
        Some(Value::Number(n)) => n.as_i64().ok_or(UpstreamError::Malformed("code is not an integer"))?,
        Some(Value::String(s)) => s.trim().parse().map_err(|_| UpstreamError::Malformed("code is not an integer"))?,
        _ => return Err(UpstreamError::Malformed("code is missing")),
    };
    let msg = match o.remove("msg") {
        Some(Value::String(s)) => s,
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    };
    Ok(Envelope { code, msg, data: o.remove("data").unwrap_or(Value::Null) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes_parse_and_malformed_answers_say_why() {
        assert_eq!(
            parse_envelope(br#"{"code":0,"msg":"ok","data":{"a":1}}"#).unwrap(),
            Envelope { code: 0, msg: "ok".into(), data: serde_json::json!({"a": 1}) }
        );
        assert_eq!(parse_envelope(br#"{"code":"1001"}"#).unwrap().code, 1001);
        assert!(matches!(parse_envelope(b"<html>502 Bad Gateway</html>"), Err(UpstreamError::NotJson)));
        for (body, why) in [
            (&b"[1]"[..], "not a JSON object"),
            (br#"{"msg":"x"}"#, "code is missing"),
            (br#"{"code":1.5}"#, "code is not an integer"),
        ] {
            match parse_envelope(body) {
                Err(UpstreamError::Malformed(w)) => assert_eq!(w, why),
                other => panic!("{other:?}"),
            }
        }
    }
}
