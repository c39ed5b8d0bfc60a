//! The application signature (`X-App-Id`, `X-Timestamp`, `X-Nonce`, `X-Signature`) that the
//! vendor's integration guide puts on every Partner API request.

use cgm_domain::random::{NoRandomness, random_hex};
use cgm_domain::sensitive::Sensitive;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Signs requests for one application. The secret stays inside a [`Sensitive`], so a `{:?}`
/// of a struct holding a `Signer` cannot leak it.
#[derive(Debug, Clone)]
pub struct Signer {
    app_id: String,
    secret: Sensitive<String>,
}

/// The four header values of one signed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedHeaders {
    pub app_id: String,
    pub timestamp: String,
    pub nonce: String,
    pub signature: String,
}

impl Signer {
    pub fn new(app_id: impl Into<String>, secret: Sensitive<String>) -> Self {
        Self { app_id: app_id.into(), secret }
    }

    /// Signs one request. `query` holds the query parameters exactly as the caller will send
    /// them; `body` is empty for GET. The nonce and timestamp are arguments so that signing
    /// stays deterministic and testable: the caller passes [`new_nonce`] and the clock.
    pub fn sign(
        &self,
        method: &str,
        path: &str,
        query: &[(&str, &str)],
        body: &[u8],
        timestamp_ms: i64,
        nonce: &str,
    ) -> SignedHeaders {
        let timestamp = timestamp_ms.to_string();
        let headers = [("X-App-Id", self.app_id.as_str()), ("X-Nonce", nonce), ("X-Timestamp", timestamp.as_str())];
        let message = string_to_sign(method, path, &headers, query, body);
        let signature = hmac_sha256_hex(self.secret.expose().as_bytes(), &message);
        SignedHeaders { app_id: self.app_id.clone(), timestamp, nonce: nonce.to_string(), signature }
    }
}

/// The bytes the signature covers: upper-case method, path, every header and query parameter
/// as name followed by value (no separators) sorted by name in byte order, then the body.
///
/// Values are taken as given, not percent-encoded: the guide does not say which form it signs,
/// and the values this API carries (ids, serial numbers, millisecond times) need no encoding.
pub fn string_to_sign(
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    query: &[(&str, &str)],
    body: &[u8],
) -> Vec<u8> {
    let mut params: Vec<(&str, &str)> = headers.iter().chain(query).copied().collect();
    // `str` orders by bytes, which is the guide's ASCII order; ties on the name fall back to
    // the value so repeated query names still give one canonical string.
    params.sort_unstable();

    let len = method.len()
        + path.len()
        + params.iter().map(|(name, value)| name.len() + value.len()).sum::<usize>()
        + body.len();
    let mut out = Vec::with_capacity(len);
    out.extend_from_slice(method.to_ascii_uppercase().as_bytes());
    out.extend_from_slice(path.as_bytes());
    for (name, value) in params {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(value.as_bytes());
    }
    out.extend_from_slice(body);
    out
}

fn hmac_sha256_hex(key: &[u8], message: &[u8]) -> String {
    // HMAC is defined for keys of every length (long ones are hashed first), so this
    // constructor has no failing input.
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(message);
    hex::encode(mac.finalize().into_bytes())
}

/// A fresh `X-Nonce`: 16 bytes from the operating system's CSPRNG, as 32 lower-case hex
/// characters.
pub fn new_nonce() -> Result<String, NoRandomness> {
    random_hex::<16>()
}

#[cfg(test)]
mod tests {
    use super::*;

    const GUIDE_STRING: &str = r#"POST/partner/v1/user/tokenX-App-Idapp_123X-Nonceabcd1234X-Timestamp1700000000000open_iduser_xxx{"region":"CN"}"#;

    #[test]
    fn string_to_sign_matches_the_guides_worked_example() {
        let headers = [("X-App-Id", "app_123"), ("X-Nonce", "abcd1234"), ("X-Timestamp", "1700000000000")];
        let query = [("open_id", "user_xxx")];
        let got = string_to_sign("POST", "/partner/v1/user/token", &headers, &query, br#"{"region":"CN"}"#);
        assert_eq!(String::from_utf8(got).unwrap(), GUIDE_STRING);
    }

    #[test]
    fn string_to_sign_upper_cases_the_method_and_ignores_input_order() {
        let headers = [("X-Timestamp", "1700000000000"), ("X-Nonce", "abcd1234"), ("X-App-Id", "app_123")];
        let query = [("open_id", "user_xxx")];
        let got = string_to_sign("post", "/partner/v1/user/token", &headers, &query, br#"{"region":"CN"}"#);
        assert_eq!(String::from_utf8(got).unwrap(), GUIDE_STRING);
    }

    /// The expected digest was computed outside Rust with Python's standard library:
    ///
    /// ```text
    /// python3 -c 'import hmac,hashlib; print(hmac.new(b"secret_abc", b"POST/partner/v1/user/tokenX-App-Idapp_123X-Nonceabcd1234X-Timestamp1700000000000open_iduser_xxx{\"region\":\"CN\"}", hashlib.sha256).hexdigest())'
    /// ```
    ///
    /// which printed `2e1f6606213c374070b07f2b8ef7fb3a40ac259f640e2a38f4cc47980b5eee13`.
    #[test]
    fn signature_matches_an_independent_hmac_sha256() {
        let expected = "2e1f6606213c374070b07f2b8ef7fb3a40ac259f640e2a38f4cc47980b5eee13";
        assert_eq!(hmac_sha256_hex(b"secret_abc", GUIDE_STRING.as_bytes()), expected);

        let signer = Signer::new("app_123", Sensitive::new("secret_abc".to_string()));
        let signed = signer.sign(
            "POST",
            "/partner/v1/user/token",
            &[("open_id", "user_xxx")],
            br#"{"region":"CN"}"#,
            1_700_000_000_000,
            "abcd1234",
        );
        assert_eq!(
            signed,
            SignedHeaders {
                app_id: "app_123".into(),
                timestamp: "1700000000000".into(),
                nonce: "abcd1234".into(),
                signature: expected.into(),
            }
        );
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let signer = Signer::new("app_123", Sensitive::new("secret_abc".to_string()));
        let shown = format!("{signer:?} {signer:#?}");
        assert!(!shown.contains("secret_abc"), "{shown}");
        assert!(shown.contains("app_123"));
        assert!(shown.contains("<redacted>"));
    }

    #[test]
    fn upper_case_header_names_sort_before_lower_case_query_names() {
        let headers = [("X-App-Id", "a"), ("X-Nonce", "n"), ("X-Timestamp", "1")];
        let query = [("start_time", "10"), ("end_time", "20"), ("open_id", "u"), ("device_sn", "d")];
        let got = string_to_sign("get", "/p", &headers, &query, b"");
        assert_eq!(
            String::from_utf8(got).unwrap(),
            "GET/pX-App-IdaX-NoncenX-Timestamp1device_sndend_time20open_idustart_time10"
        );
    }

    #[test]
    fn equal_names_sort_by_value() {
        let got = string_to_sign("GET", "/p", &[], &[("k", "2"), ("k", "1")], b"");
        assert_eq!(String::from_utf8(got).unwrap(), "GET/pk1k2");
    }

    #[test]
    fn nonces_are_32_hex_chars_and_differ() {
        let a = new_nonce().unwrap();
        let b = new_nonce().unwrap();
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert_ne!(a, b);
    }
}
