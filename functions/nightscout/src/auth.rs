//! Which follower token a request presents, in the places Nightscout looks
//! (`lib/authorization/index.js`): a Bearer JWT ([`bearer`], checked by the caller), the
//! `secret` query parameter, else the `api-secret`
//! header (either may hold the SHA-1 hex of the token, the token itself, or
//! `token=<token>`, as py-nightscout sends it), and the `token` query parameter. Each is
//! reduced to the token's SHA-1 hex ([`cgm_domain::follow::presented_sha1`]).

use cgm_domain::follow;
use cgm_edge::Params;

/// What a request presented.
#[derive(Debug, Clone, PartialEq)]
pub enum Presented {
    /// Nothing at all.
    Nothing,
    /// Candidates to look up, in Nightscout's order, as SHA-1 hex; empty when everything
    /// presented was malformed (refused without a storage call).
    Candidates(Vec<String>),
}

/// The JWT of an `Authorization: Bearer <JWT>` header.
pub fn bearer<'a>(p: &Params<'a>) -> Option<&'a str> {
    let h = p.header("authorization")?.trim();
    let (scheme, jwt) = h.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then_some(jwt.trim()).filter(|j| !j.is_empty())
}

pub fn presented(p: &Params<'_>) -> Presented {
    let secret = p.query("secret").or_else(|| p.header("api-secret"));
    let token = p.query("token");
    if secret.is_none() && token.is_none() {
        return if bearer(p).is_some() { Presented::Candidates(Vec::new()) } else { Presented::Nothing };
    }
    let mut out: Vec<String> = Vec::new();
    for v in [secret, token].into_iter().flatten() {
        if let Some(h) = follow::presented_sha1(v)
            && !out.contains(&h)
        {
            out.push(h);
        }
    }
    Presented::Candidates(out)
}
