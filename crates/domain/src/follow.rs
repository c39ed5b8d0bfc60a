//! Follower tokens: what a Nightscout client presents to read one device's feed.
//!
//! A token is 32 random bytes from the operating system, as 64 hex characters: unguessable,
//! and safe in a URL. It is shown once, when created. A client presents it as itself
//! (`?token=`, `api-secret: <token>` or `token=<token>`) or, as Nightscout clients do, as
//! the SHA-1 hex of it in `api-secret`. Both reduce to the SHA-1 hex, and what is stored is
//! the SHA-256 of that ([`secret_hash`]): never a value a client would send, so a copy of the
//! table (an export, a restore) opens no feed.

use crate::random::{NoRandomness, random_hex};
use crate::sensitive::Sensitive;
use sha1::Sha1;
use sha2::{Digest, Sha256};

/// A token just made: its id (shown, listed, used to revoke) and its secret (shown once).
#[derive(Debug)]
pub struct NewToken {
    pub id: String,
    pub secret: Sensitive<String>,
}

/// A new token: an id of 16 random bytes and a secret of 32, both as hex.
pub fn new_token() -> Result<NewToken, NoRandomness> {
    Ok(NewToken { id: random_hex::<16>()?, secret: Sensitive::new(random_hex::<32>()?) })
}

pub fn sha256_hex(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

pub fn sha1_hex(token: &str) -> String {
    hex::encode(Sha1::digest(token.as_bytes()))
}

/// An `api-secret` header as Nightscout clients send it: 40 hex digits, in either case.
/// Anything else cannot match a stored hash.
pub fn api_secret(header: &str) -> Option<String> {
    let h = header.trim();
    (h.len() == 40 && h.bytes().all(|b| b.is_ascii_hexdigit())).then(|| h.to_ascii_lowercase())
}

/// The SHA-1 hex of the token a follower presented, in any of its forms: the token (64 hex,
/// alone or as `token=<token>`), or its SHA-1 hex (40 hex). `None` for anything else, which
/// is refused without a storage call.
pub fn presented_sha1(presented: &str) -> Option<String> {
    let p = presented.trim();
    let p = p.strip_prefix("token=").unwrap_or(p);
    if looks_like_token(p) { Some(sha1_hex(&p.to_ascii_lowercase())) } else { api_secret(p) }
}

/// What is stored for a token: the SHA-256 hex of its SHA-1 hex.
pub fn secret_hash(sha1_hex: &str) -> String {
    sha256_hex(sha1_hex)
}

/// A `?token=` as we issue them: 64 hex digits. Checked before hashing so that junk is
/// refused without a storage call.
pub fn looks_like_token(token: &str) -> bool {
    token.len() == 64 && token.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_match_known_values() {
        // sha1("abc") and sha256("abc") from FIPS 180-2's examples.
        assert_eq!(sha1_hex("abc"), "a9993e364706816aba3e25717850c26c9cd0d89d");
        assert_eq!(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }

    #[test]
    fn tokens_are_random_hex() {
        let (a, b) = (new_token().unwrap(), new_token().unwrap());
        assert_eq!((a.id.len(), a.secret.expose().len()), (32, 64));
        assert!(looks_like_token(a.secret.expose()));
        assert_ne!((a.id, a.secret), (b.id, b.secret));
        assert_eq!(format!("{:?}", new_token().unwrap().secret), "<redacted>");
    }

    #[test]
    fn every_presented_form_reduces_to_one_stored_hash() {
        let t = new_token().unwrap();
        let token = t.secret.expose().as_str();
        let sha1 = sha1_hex(token);
        for form in
            [token.to_string(), token.to_uppercase(), format!("token={token}"), sha1.clone(), sha1.to_uppercase()]
        {
            assert_eq!(presented_sha1(&form).as_deref(), Some(sha1.as_str()), "{form}");
        }
        assert_eq!(presented_sha1("token=short"), None);
        let stored = secret_hash(&sha1);
        assert!(stored != sha1 && stored != sha256_hex(token) && stored.len() == 64, "not what a client sends");
    }

    #[test]
    fn api_secrets_are_forty_hex_digits() {
        assert_eq!(
            api_secret(" A9993E364706816ABA3E25717850C26C9CD0D89D ").as_deref(),
            Some("a9993e364706816aba3e25717850c26c9cd0d89d")
        );
        assert_eq!(api_secret("plain-secret"), None);
        assert_eq!(api_secret(&"g".repeat(40)), None);
        assert!(!looks_like_token("short"));
    }
}
