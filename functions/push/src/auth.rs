//! Who may push. Sinocare's spec defines no authentication, so the push URL carries a
//! shared key (`?key=` or the `x-api-key` header), compared in constant time against each
//! configured key, and optionally the source address must be in `ALLOWED_SOURCE_CIDRS`.

use cgm_domain::sensitive::Sensitive;
use ipnet::IpNet;
use sha2::{Digest, Sha256};
use std::net::IpAddr;
use subtle::ConstantTimeEq;

#[derive(Debug, Clone)]
pub struct PushAuth {
    /// SHA-256 of each accepted key. Comparing digests keeps the comparison constant-time
    /// even when the presented key's length differs from every configured one.
    keys: Vec<[u8; 32]>,
    cidrs: Vec<IpNet>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    /// 401: no key, or not one of ours.
    Key,
    /// 403: the source address is not allowed.
    Source,
}

impl PushAuth {
    /// `keys` empty means the route is open: only allowed outside Lambda (checked at cold
    /// start by the function's `main`).
    pub fn new(keys: &[Sensitive<String>], cidrs: Vec<IpNet>) -> Self {
        let keys = keys.iter().map(|k| digest(k.expose())).collect();
        Self { keys, cidrs }
    }

    pub fn is_open(&self) -> bool {
        self.keys.is_empty()
    }

    /// Checks the source first (a flood from elsewhere costs no hashing), then the key.
    pub fn check(&self, source_ip: Option<&str>, presented_key: Option<&str>) -> Result<(), Denied> {
        if !self.cidrs.is_empty() {
            let ip = source_ip.and_then(|s| s.trim().parse::<IpAddr>().ok()).ok_or(Denied::Source)?;
            if !self.cidrs.iter().any(|net| net.contains(&ip)) {
                return Err(Denied::Source);
            }
        }
        if self.is_open() {
            return Ok(());
        }
        let presented = presented_key.ok_or(Denied::Key)?;
        let d = digest(presented);
        // Every key is compared, match or not, so timing does not tell which one matched.
        let ok = self.keys.iter().fold(subtle::Choice::from(0), |acc, k| acc | k.ct_eq(&d));
        if bool::from(ok) { Ok(()) } else { Err(Denied::Key) }
    }
}

fn digest(s: &str) -> [u8; 32] {
    Sha256::digest(s.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(list: &[&str]) -> Vec<Sensitive<String>> {
        list.iter().map(|k| Sensitive::new(k.to_string())).collect()
    }

    #[test]
    fn any_configured_key_is_accepted() {
        let auth = PushAuth::new(&keys(&["old", "new"]), vec![]);
        assert_eq!(auth.check(None, Some("old")), Ok(()));
        assert_eq!(auth.check(None, Some("new")), Ok(()));
        assert_eq!(auth.check(None, Some("ne")), Err(Denied::Key));
        assert_eq!(auth.check(None, Some("")), Err(Denied::Key));
        assert_eq!(auth.check(None, None), Err(Denied::Key));
    }

    #[test]
    fn source_must_be_in_an_allowed_network() {
        let auth =
            PushAuth::new(&keys(&["k"]), vec!["203.0.113.0/24".parse().unwrap(), "2001:db8::/32".parse().unwrap()]);
        assert_eq!(auth.check(Some("203.0.113.9"), Some("k")), Ok(()));
        assert_eq!(auth.check(Some("2001:db8::1"), Some("k")), Ok(()));
        assert_eq!(auth.check(Some("198.51.100.1"), Some("k")), Err(Denied::Source));
        assert_eq!(auth.check(Some("not an ip"), Some("k")), Err(Denied::Source));
        assert_eq!(auth.check(None, Some("k")), Err(Denied::Source));
        // The source is judged before the key.
        assert_eq!(auth.check(Some("198.51.100.1"), None), Err(Denied::Source));
    }

    #[test]
    fn no_keys_means_open() {
        let auth = PushAuth::new(&[], vec![]);
        assert!(auth.is_open());
        assert_eq!(auth.check(None, None), Ok(()));
    }
}
