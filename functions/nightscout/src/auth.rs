//! Which follower token a request presents, in the places Nightscout looks
//! (`lib/authorization/index.js`): the `secret` query parameter, else the `api-secret`
//! header (either may hold the SHA-1 hex of the token, the token itself, or
//! `token=<token>`, as py-nightscout sends it), and the `token` query parameter. Each is
//! reduced to the token's SHA-1 hex ([`cgm_shared::follow::presented_sha1`]).

use cgm_edge::Params;
use cgm_shared::follow;

/// What a request presented.
#[derive(Debug, Clone, PartialEq)]
pub enum Presented {
    /// Nothing at all.
    Nothing,
    /// Candidates to look up, in Nightscout's order, as SHA-1 hex; empty when everything
    /// presented was malformed (refused without a storage call).
    Candidates(Vec<String>),
}

pub fn presented(p: &Params<'_>) -> Presented {
    let secret = p.query("secret").or_else(|| p.header("api-secret"));
    let token = p.query("token");
    if secret.is_none() && token.is_none() {
        return Presented::Nothing;
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
