//! The JWTs Nightscout clients exchange a token for (`GET /api/v2/authorization/request/
//! {token}`, then `Authorization: Bearer <JWT>`), as Nightscout's `lib/authorization`
//! issues them: `{sub, permissionGroups, iat, exp}`, HS256, 8 hours by default. Ours name
//! the follower token by its id (`sub`), never carry the token itself, and end at the
//! token's own expiry if that comes first; every request also checks that the token still
//! exists, so revoking it ends its JWTs at once.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

/// What a follower token may do here, in Nightscout's permission notation.
pub const PERMISSIONS: [&str; 3] = ["api:entries:read", "api:status:read", "api:treatments:read"];

/// The shortest signing key accepted: HS256 wants at least its 256 bits.
pub const MIN_KEY_CHARS: usize = 32;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Claims {
    /// The follower token's id.
    pub sub: String,
    #[serde(rename = "permissionGroups")]
    pub permission_groups: Vec<Vec<String>>,
    pub iat: i64,
    pub exp: i64,
}

pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    life_s: i64,
}

impl std::fmt::Debug for JwtKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtKeys").field("life_s", &self.life_s).finish_non_exhaustive()
    }
}

impl JwtKeys {
    /// Keys from the signing secret; the error never holds it.
    pub fn new(secret: &str, hours: u64) -> Result<Self, String> {
        let bad = |e: jsonwebtoken::errors::Error| format!("the JWT signing key is not usable: {:?}", e.kind());
        Ok(JwtKeys {
            encoding: EncodingKey::from_secret(secret.as_bytes()).map_err(bad)?,
            decoding: DecodingKey::from_secret(secret.as_bytes()).map_err(bad)?,
            life_s: hours as i64 * 3600,
        })
    }

    /// A JWT for the token `token_id` at `now_s`, ending at the sooner of its life and the
    /// token's expiry (`token_expires_s`).
    pub fn issue(&self, token_id: &str, now_s: i64, token_expires_s: i64) -> Result<(String, Claims), String> {
        let claims = Claims {
            sub: token_id.to_string(),
            permission_groups: vec![PERMISSIONS.iter().map(|p| p.to_string()).collect()],
            iat: now_s,
            exp: (now_s + self.life_s).min(token_expires_s),
        };
        let jwt = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| format!("signing a JWT: {e}"))?;
        Ok((jwt, claims))
    }

    /// The claims of a JWT this stack signed and that has not expired; `None` otherwise.
    pub fn verify(&self, jwt: &str) -> Option<Claims> {
        let mut v = Validation::new(Algorithm::HS256);
        v.leeway = 0;
        v.set_required_spec_claims(&["exp", "sub"]);
        jsonwebtoken::decode::<Claims>(jwt.trim(), &self.decoding, &v).ok().map(|d| d.claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "a-test-signing-key-of-at-least-32-chars";

    #[test]
    fn issued_jwts_verify_until_they_expire_and_only_with_the_key() {
        let now = chrono::Utc::now().timestamp();
        let keys = JwtKeys::new(KEY, 8).unwrap();
        let (jwt, claims) = keys.issue("tid1", now, now + 86_400).unwrap();
        assert_eq!((claims.sub.as_str(), claims.exp - claims.iat), ("tid1", 8 * 3600));
        assert_eq!(keys.verify(&jwt), Some(claims.clone()));
        assert_eq!(JwtKeys::new("another-key-of-at-least-32-characters", 8).unwrap().verify(&jwt), None, "another key");
        let (short, c) = keys.issue("tid1", now, now + 60).unwrap();
        assert_eq!(c.exp, now + 60, "never outlives its follower token");
        assert!(keys.verify(&short).is_some());
        let (old, _) = keys.issue("tid1", now - 10 * 3600, now + 86_400).unwrap();
        assert_eq!(keys.verify(&old), None, "expired");
        let mut tampered = jwt.clone();
        tampered.insert(jwt.find('.').unwrap() + 2, 'x');
        assert_eq!(keys.verify(&tampered), None);
    }

    #[test]
    fn a_header_naming_another_algorithm_is_refused() {
        use base64::Engine;
        let keys = JwtKeys::new(KEY, 8).unwrap();
        let now = chrono::Utc::now().timestamp();
        let (jwt, _) = keys.issue("tid1", now, now + 3600).unwrap();
        let (_, rest) = jwt.split_once('.').unwrap();
        for header in
            [r#"{"alg":"none","typ":"JWT"}"#, r#"{"alg":"HS512","typ":"JWT"}"#, r#"{"alg":"RS256","typ":"JWT"}"#]
        {
            let h = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(header);
            assert_eq!(keys.verify(&format!("{h}.{rest}")), None, "{header}");
        }
    }
}
