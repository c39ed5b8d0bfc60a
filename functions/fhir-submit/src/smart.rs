//! SMART Backend Services authorization (SMART App Launch 2.x, "Backend Services"): the
//! submitter finds the EHR's token endpoint in `[base]/.well-known/smart-configuration`,
//! signs a client assertion (a JWT, RS384 or ES384, with the registered key's `kid`), and
//! trades it for an access token with the client-credentials grant. The token is kept until
//! a minute before it expires, and dropped on a 401.

use cgm_domain::sensitive::Sensitive;
use cgm_shared::config::SigningAlg;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// How long a client assertion is valid: SMART allows at most five minutes; four leave room
/// for an EHR whose clock runs behind.
const ASSERTION_SECONDS: i64 = 240;
/// A token this close to its expiry is renewed before use.
const RENEW_BEFORE: Duration = Duration::from_secs(60);
/// A token without `expires_in` is kept this long (SMART recommends at most 5 minutes).
const DEFAULT_TOKEN_SECONDS: u64 = 300;
pub const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

#[derive(Debug, thiserror::Error)]
pub enum SmartError {
    #[error("FHIR_CLIENT_PRIVATE_KEY is not a PEM {0} private key")]
    BadKey(&'static str),
    #[error("signing the client assertion failed")]
    Sign,
    #[error("the EHR's {what} could not be reached ({why})")]
    Unreachable { what: &'static str, why: String },
    #[error("the EHR's {what} answered {status}{}", oauth.as_deref().map(|e| format!(" ({e})")).unwrap_or_default())]
    Refused { what: &'static str, status: u16, oauth: Option<String> },
    #[error("the EHR's {what} answered something that is not {expected}")]
    Malformed { what: &'static str, expected: &'static str },
    #[error("the token endpoint {0:?} is not https (http only on loopback)")]
    InsecureEndpoint(String),
}

impl SmartError {
    /// Whether trying again later may help (the EHR was down), rather than the registration
    /// or the key being wrong.
    pub fn is_transient(&self) -> bool {
        match self {
            SmartError::Unreachable { .. } => true,
            SmartError::Refused { status, .. } => *status == 429 || *status >= 500,
            _ => false,
        }
    }
}

/// The registered client: its id, its key and the scopes it asks for.
pub struct Client {
    client_id: String,
    key_id: String,
    alg: Algorithm,
    key: EncodingKey,
    scopes: String,
}

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    exp: i64,
    iat: i64,
    jti: &'a str,
}

impl Client {
    pub fn new(
        client_id: String,
        key_id: String,
        alg: SigningAlg,
        pem: &Sensitive<String>,
        scopes: String,
    ) -> Result<Self, SmartError> {
        let (alg, key) = match alg {
            SigningAlg::Rs384 => (
                Algorithm::RS384,
                EncodingKey::from_rsa_pem(pem.expose().as_bytes()).map_err(|_| SmartError::BadKey("RSA"))?,
            ),
            SigningAlg::Es384 => (
                Algorithm::ES384,
                EncodingKey::from_ec_pem(pem.expose().as_bytes()).map_err(|_| SmartError::BadKey("P-384 (PKCS#8)"))?,
            ),
        };
        let c = Client { client_id, key_id, alg, key, scopes };
        // A key of the wrong curve or size is found now, at cold start, not at 3 a.m.
        c.assertion("https://example.invalid/token", 0, "check")?;
        Ok(c)
    }

    /// The signed client assertion for the token endpoint `aud`, issued at `now_s`.
    pub fn assertion(&self, aud: &str, now_s: i64, jti: &str) -> Result<String, SmartError> {
        let mut header = Header::new(self.alg);
        header.kid = Some(self.key_id.clone());
        header.typ = Some("JWT".into());
        let claims =
            Claims { iss: &self.client_id, sub: &self.client_id, aud, exp: now_s + ASSERTION_SECONDS, iat: now_s, jti };
        jsonwebtoken::encode(&header, &claims, &self.key).map_err(|_| SmartError::Sign)
    }
}

#[derive(Deserialize)]
struct Discovery {
    token_endpoint: String,
}

#[derive(Deserialize)]
struct TokenReply {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
}

#[derive(Deserialize)]
struct OAuthError {
    error: String,
}

struct Token {
    value: Sensitive<String>,
    until: Instant,
}

/// Access tokens for one EHR, kept between invocations of a warm function.
pub struct Tokens {
    http: reqwest::Client,
    base: String,
    client: Client,
    endpoint: Mutex<Option<String>>,
    token: Mutex<Option<Token>>,
}

impl Tokens {
    pub fn new(http: reqwest::Client, base: String, client: Client) -> Self {
        Tokens { http, base, client, endpoint: Mutex::new(None), token: Mutex::new(None) }
    }

    /// A token good for at least another minute: the kept one, or a new one.
    pub async fn token(&self) -> Result<Sensitive<String>, SmartError> {
        let mut kept = self.token.lock().await;
        if let Some(t) = kept.as_ref()
            && t.until > Instant::now() + RENEW_BEFORE
        {
            return Ok(t.value.clone());
        }
        let endpoint = self.token_endpoint().await?;
        let jti = cgm_domain::random::random_hex::<16>().map_err(|_| SmartError::Sign)?;
        let now_s = chrono::Utc::now().timestamp();
        let assertion = self.client.assertion(&endpoint, now_s, &jti)?;
        let form = [
            ("grant_type", "client_credentials"),
            ("scope", self.client.scopes.as_str()),
            ("client_assertion_type", ASSERTION_TYPE),
            ("client_assertion", assertion.as_str()),
        ]
        .iter()
        .map(|(k, v)| format!("{k}={}", cgm_fhir_profiles::url::query_value(v)))
        .collect::<Vec<_>>()
        .join("&");
        let what = "token endpoint";
        let reply = self
            .http
            .post(&endpoint)
            .header("content-type", "application/x-www-form-urlencoded")
            .header("accept", "application/json")
            .body(form)
            .send()
            .await
            .map_err(|e| SmartError::Unreachable { what, why: reqwest_class(&e) })?;
        let status = reply.status().as_u16();
        let body = reply.bytes().await.map_err(|e| SmartError::Unreachable { what, why: reqwest_class(&e) })?;
        if status != 200 {
            let oauth = serde_json::from_slice::<OAuthError>(&body).ok().map(|e| e.error).filter(|e| is_code(e));
            return Err(SmartError::Refused { what, status, oauth });
        }
        let t: TokenReply =
            serde_json::from_slice(&body).map_err(|_| SmartError::Malformed { what, expected: "a token reply" })?;
        // A day at most, whatever the EHR says (and no overflow).
        let secs = t.expires_in.unwrap_or(DEFAULT_TOKEN_SECONDS).min(86_400);
        let value = Sensitive::new(t.access_token);
        *kept = Some(Token { value: value.clone(), until: Instant::now() + Duration::from_secs(secs) });
        tracing::info!(expires_in = secs, "new EHR access token");
        Ok(value)
    }

    /// Drops the kept token (the EHR answered 401 to it).
    pub async fn forget(&self) {
        *self.token.lock().await = None;
    }

    async fn token_endpoint(&self) -> Result<String, SmartError> {
        let mut kept = self.endpoint.lock().await;
        if let Some(e) = kept.as_ref() {
            return Ok(e.clone());
        }
        let what = "SMART configuration";
        let url = format!("{}/.well-known/smart-configuration", self.base);
        let reply = self
            .http
            .get(&url)
            .header("accept", "application/json")
            .send()
            .await
            .map_err(|e| SmartError::Unreachable { what, why: reqwest_class(&e) })?;
        let status = reply.status().as_u16();
        if status != 200 {
            return Err(SmartError::Refused { what, status, oauth: None });
        }
        let d: Discovery = reply
            .json()
            .await
            .map_err(|_| SmartError::Malformed { what, expected: "a SMART configuration with a token_endpoint" })?;
        let ok = d.token_endpoint.starts_with("https://") || is_loopback(&d.token_endpoint);
        if !ok {
            return Err(SmartError::InsecureEndpoint(d.token_endpoint));
        }
        *kept = Some(d.token_endpoint.clone());
        Ok(d.token_endpoint)
    }
}

/// An OAuth error code (`invalid_client`): a short token, safe to log; anything else is not
/// repeated.
fn is_code(e: &str) -> bool {
    !e.is_empty() && e.len() <= 64 && e.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
}

/// `http://` to this machine: a stand-in EHR in tests and `make dev`.
pub fn is_loopback(url: &str) -> bool {
    let Ok(u) = reqwest::Url::parse(url) else { return false };
    u.scheme() == "http"
        && u.username().is_empty()
        && u.password().is_none()
        && matches!(u.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"))
}

/// What kind of transport failure it was, without the URL (which names the EHR's host only,
/// but the reason is all an operator needs).
pub fn reqwest_class(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timeout".into()
    } else if e.is_connect() {
        "connection failed".into()
    } else if e.is_body() || e.is_decode() {
        "reply cut short".into()
    } else {
        "request failed".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_loopback_urls_are_loopback() {
        assert!(is_loopback("http://127.0.0.1:3100/token"));
        assert!(is_loopback("http://localhost/token"));
        assert!(!is_loopback("http://localhost:1@evil.example/token"));
        assert!(!is_loopback("http://evil.example/?localhost"));
        assert!(!is_loopback("https://127.0.0.1/token"));
    }
}
