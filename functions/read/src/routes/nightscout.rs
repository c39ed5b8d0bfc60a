//! The Nightscout feed and its follower tokens: `POST` and `DELETE
//! /devices/{device_sn}/follow-tokens[/{token_id}]` (IAM), and `GET /api/v1/entries.json`
//! (and `/entries/sgv.json`), which a follower reads with its token.

use super::{PAGE_BUDGET_BYTES, PAGE_TIME_BUDGET};
use crate::ReadService;
use crate::error::{ReadError, bad};
use crate::follow;
use crate::nightscout;
use crate::paging;
use cgm_edge::{Answer, Params, reply};
use cgm_shared::ids::{DeviceSn, clip_for_log};
use cgm_shared::store::reads::{FollowToken, ReadStore, ReadingQuery, TokenHash};
use cgm_shared::time::{TimeRange, Timestamp};
use lambda_http::http::{HeaderValue, StatusCode};
use serde::Serialize;
use std::time::Instant;

pub const ENTRIES_DEFAULT_COUNT: usize = 10;
pub const ENTRIES_MAX_COUNT: usize = 1_000;

#[derive(Debug, Serialize)]
struct CreatedToken<'a> {
    token_id: &'a str,
    /// Shown once, here; stored only as hashes.
    token: &'a str,
    device_sn: &'a DeviceSn,
    created_at: Option<String>,
}

#[derive(Debug, Serialize)]
struct RevokedToken<'a> {
    token_id: &'a str,
    device_sn: &'a DeviceSn,
    revoked: bool,
}

impl<S: ReadStore> ReadService<S> {
    pub(crate) async fn create_token(&self, p: Params<'_>) -> Result<Answer, ReadError> {
        let sn = DeviceSn::from(p.path("device_sn")?);
        let token = follow::new_token()?;
        let secret = token.secret.expose();
        let now = Timestamp::now();
        let record = FollowToken {
            token_id: token.id.clone(),
            device_sn: sn.clone(),
            token_hash: follow::sha256_hex(secret),
            sha1_hash: follow::sha1_hex(secret),
            created_at: now,
        };
        self.store.put_follow_token(&record).await?;
        let body = CreatedToken { token_id: &token.id, token: secret, device_sn: &sn, created_at: now.utc_text() };
        Ok(Answer::new(reply::json(StatusCode::CREATED, &body)).token_id(token.id.clone()))
    }

    pub(crate) async fn revoke_token(&self, p: Params<'_>) -> Result<Answer, ReadError> {
        let sn = DeviceSn::from(p.path("device_sn")?);
        let token_id = p.path("token_id")?;
        if !self.store.delete_follow_token(&sn, token_id).await? {
            return Err(ReadError::NotFound("follow token"));
        }
        let body = RevokedToken { token_id, device_sn: &sn, revoked: true };
        Ok(Answer::new(reply::json(StatusCode::OK, &body)).token_id(clip_for_log(token_id)))
    }

    /// The live token a follower presents: `?token=`, or Nightscout's `api-secret` header
    /// (the SHA-1 hex of the token; the token itself is accepted there too).
    async fn follower(&self, p: Params<'_>) -> Result<FollowToken, ReadError> {
        let hash = if let Some(t) = p.query("token") {
            let t = t.trim();
            if !follow::looks_like_token(t) {
                return Err(ReadError::Unauthorized);
            }
            (follow::sha256_hex(&t.to_ascii_lowercase()), true)
        } else if let Some(h) = p.header("api-secret") {
            if follow::looks_like_token(h.trim()) {
                (follow::sha256_hex(&h.trim().to_ascii_lowercase()), true)
            } else {
                (follow::api_secret(h).ok_or(ReadError::Unauthorized)?, false)
            }
        } else {
            return Err(ReadError::Unauthorized);
        };
        let hash = match &hash {
            (h, true) => TokenHash::Sha256(h),
            (h, false) => TokenHash::Sha1(h),
        };
        self.store.find_follow_token(hash).await?.ok_or(ReadError::Unauthorized)
    }

    pub(crate) async fn entries(&self, p: Params<'_>, started: Instant) -> Result<Answer, ReadError> {
        let token = self.follower(p).await?;
        let count = p.limit("count", ENTRIES_DEFAULT_COUNT, ENTRIES_MAX_COUNT)?;
        let gte = match (p.instant("find[date][$gte]")?, p.instant("find[date][$gt]")?) {
            (Some(a), Some(b)) => Some(a.max(b.saturating_add(1))),
            (a, b) => a.or(b.map(|b| b.saturating_add(1))),
        };
        let lte = match (p.instant("find[date][$lte]")?, p.instant("find[date][$lt]")?) {
            (Some(a), Some(b)) => Some(a.min(b.saturating_sub(1))),
            (a, b) => a.or(b.map(|b| b.saturating_sub(1))),
        };
        // Readings just before the period are fetched too: the oldest entry's arrow needs
        // its previous reading.
        let from = gte.map_or(Timestamp::MIN, |g| Timestamp(g).minus_ms(nightscout::TREND_WINDOW_MS));
        let to = lte.map_or(Timestamp::MAX, Timestamp);
        let range = match (gte, lte) {
            (Some(g), Some(l)) if g > l => None,
            _ => TimeRange::new(from, to),
        }
        .ok_or_else(|| bad("find[date] asks for an empty range"))?;
        let q = ReadingQuery { device_sn: &token.device_sn, range, valid_only: true, newest_first: true };
        let until = started + PAGE_TIME_BUDGET;
        let page =
            paging::fill_page(&self.store, &q, None, count + 1, PAGE_BUDGET_BYTES, until, |r| (r.clone(), 1)).await?;
        let shown = page.items.iter().take_while(|r| gte.is_none_or(|g| r.measured_at.ms() >= g)).count().min(count);
        let entries = nightscout::entries(&page.items, shown, &self.zone);
        let mut resp = reply::json(StatusCode::OK, &entries);
        // Followers may be web pages on another origin; the token, not a cookie, authorizes.
        resp.headers_mut().insert("access-control-allow-origin", HeaderValue::from_static("*"));
        Ok(Answer::new(resp).items(shown).device_sn(token.device_sn.as_str()).token_id(token.token_id))
    }
}
