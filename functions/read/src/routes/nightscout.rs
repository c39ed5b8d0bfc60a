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
use cgm_shared::sensitive::Sensitive;
use cgm_shared::store::reads::{FollowToken, ReadStore, ReadingQuery};
use cgm_shared::store::rollups::RollupStore;
use cgm_shared::store::sensors::SensorStore;
use cgm_shared::time::{TimeRange, Timestamp};
use lambda_http::http::{HeaderValue, StatusCode};
use serde::Serialize;
use std::time::Instant;

pub const ENTRIES_DEFAULT_COUNT: usize = 10;
pub const ENTRIES_MAX_COUNT: usize = 1_000;

/// A new token lives this long unless `expires_in` says otherwise.
pub const DEFAULT_TOKEN_LIFE_S: i64 = 90 * 86_400;
pub const MAX_TOKEN_LIFE_S: i64 = 366 * 86_400;
const MAX_LABEL_CHARS: usize = 200;
/// `lastUsedAt` is written at most this often, not on every poll.
const LAST_USED_RESOLUTION_MS: i64 = 3_600_000;

#[derive(Debug, Serialize)]
struct CreatedToken<'a> {
    token_id: &'a str,
    /// Shown once, here; never stored.
    token: &'a str,
    device_sn: &'a DeviceSn,
    label: Option<&'a str>,
    created_at: Option<String>,
    expires_at: Option<String>,
}

#[derive(Debug, Serialize)]
struct RevokedToken<'a> {
    token_id: &'a str,
    device_sn: &'a DeviceSn,
    revoked: bool,
}

#[derive(Debug, Serialize)]
struct ListedToken<'a> {
    token_id: &'a str,
    label: Option<&'a str>,
    created_at: Option<String>,
    expires_at: Option<String>,
    expired: bool,
    last_used_at: Option<String>,
}

#[derive(Debug, Serialize)]
struct TokenList<'a> {
    device_sn: &'a DeviceSn,
    tokens: Vec<ListedToken<'a>>,
}

/// `{"label": "...", "expires_in": seconds}`, both optional; an empty body is `{}`.
fn token_request(p: Params<'_>) -> Result<(Option<String>, i64), ReadError> {
    let body = if p.body().iter().all(u8::is_ascii_whitespace) { serde_json::Map::new() } else { p.json_object()? };
    if let Some(k) = body.keys().find(|k| !matches!(k.as_str(), "label" | "expires_in")) {
        return Err(bad(format!("unknown field {k}: a token takes label and expires_in")));
    }
    let label = match body.get("label") {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(s)) if !s.trim().is_empty() && s.chars().count() <= MAX_LABEL_CHARS => {
            Some(s.trim().to_string())
        }
        Some(_) => return Err(bad(format!("label must be text of 1 to {MAX_LABEL_CHARS} characters"))),
    };
    let life = match body.get("expires_in") {
        None | Some(serde_json::Value::Null) => DEFAULT_TOKEN_LIFE_S,
        Some(v) => v
            .as_i64()
            .filter(|s| (60..=MAX_TOKEN_LIFE_S).contains(s))
            .ok_or_else(|| bad(format!("expires_in must be whole seconds from 60 to {MAX_TOKEN_LIFE_S}")))?,
    };
    Ok((label, life))
}

impl<S: ReadStore, U: RollupStore, T: SensorStore> ReadService<S, U, T> {
    pub(crate) async fn create_token(&self, p: Params<'_>, caller: Option<&str>) -> Result<Answer, ReadError> {
        let sn = DeviceSn::from(p.path("device_sn")?);
        let (label, life_s) = token_request(p)?;
        let token = follow::new_token()?;
        let secret = token.secret.expose();
        let now = Timestamp::now();
        let record = FollowToken {
            token_id: token.id.clone(),
            device_sn: sn.clone(),
            secret_hash: follow::secret_hash(&follow::sha1_hex(secret)),
            label: label.clone().map(Sensitive::new),
            created_at: now,
            expires_at: now.plus_ms(life_s.saturating_mul(1000)),
            last_used_at: None,
        };
        self.store.put_follow_token(&record).await?;
        audit("follow_token_created", &token.id, &sn, caller);
        let body = CreatedToken {
            token_id: &token.id,
            token: secret,
            device_sn: &sn,
            label: label.as_deref(),
            created_at: now.utc_text(),
            expires_at: record.expires_at.utc_text(),
        };
        Ok(Answer::new(reply::json(StatusCode::CREATED, &body)).token_id(token.id.clone()))
    }

    pub(crate) async fn list_tokens(&self, p: Params<'_>) -> Result<Answer, ReadError> {
        let sn = DeviceSn::from(p.path("device_sn")?);
        let tokens = self.store.list_follow_tokens(&sn).await?;
        let now = Timestamp::now();
        let body = TokenList {
            device_sn: &sn,
            tokens: tokens
                .iter()
                .map(|t| ListedToken {
                    token_id: &t.token_id,
                    label: t.label.as_ref().map(|l| l.expose().as_str()),
                    created_at: t.created_at.utc_text(),
                    expires_at: t.expires_at.utc_text(),
                    expired: !t.is_live(now),
                    last_used_at: t.last_used_at.and_then(Timestamp::utc_text),
                })
                .collect(),
        };
        Ok(Answer::new(reply::json(StatusCode::OK, &body)).items(tokens.len()))
    }

    pub(crate) async fn revoke_token(&self, p: Params<'_>, caller: Option<&str>) -> Result<Answer, ReadError> {
        let sn = DeviceSn::from(p.path("device_sn")?);
        let token_id = p.path("token_id")?;
        if !self.store.delete_follow_token(&sn, token_id).await? {
            return Err(ReadError::NotFound("follow token"));
        }
        audit("follow_token_revoked", token_id, &sn, caller);
        let body = RevokedToken { token_id, device_sn: &sn, revoked: true };
        Ok(Answer::new(reply::json(StatusCode::OK, &body)).token_id(clip_for_log(token_id)))
    }

    /// The live token a follower presents: `?token=`, or Nightscout's `api-secret` header
    /// (the SHA-1 hex of the token, the token itself, or `token=<token>`). An expired token
    /// is refused even before the table's TTL removes it.
    pub(crate) async fn follower(&self, p: Params<'_>) -> Result<FollowToken, ReadError> {
        let presented = p.query("token").or_else(|| p.header("api-secret")).ok_or(ReadError::Unauthorized)?;
        let sha1 = follow::presented_sha1(presented).ok_or(ReadError::Unauthorized)?;
        let hash = follow::secret_hash(&sha1);
        let now = Timestamp::now();
        let token = match self.store.find_follow_token(&hash).await? {
            Some(t) => t,
            // A token stored before the rehash: upgraded in place on its first use, so
            // followers of before the upgrade keep working; 90 days from now.
            None => self
                .store
                .upgrade_legacy_follow_token(&sha1, &hash, now.plus_ms(DEFAULT_TOKEN_LIFE_S * 1000))
                .await?
                .ok_or(ReadError::Unauthorized)?,
        };
        if !token.is_live(now) {
            return Err(ReadError::Unauthorized);
        }
        if token.last_used_at.is_none_or(|u| now.since(u) >= LAST_USED_RESOLUTION_MS) {
            self.store.touch_follow_token(&token.token_id, now).await?;
        }
        Ok(token)
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
        let from = gte.map_or(Timestamp::MIN, |g| Timestamp(g).minus_ms(cgm_shared::trend::TREND_WINDOW_MS));
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

/// The audit line of a token's creation or revocation: who (the IAM principal), what, which
/// device. Never the token, its hash or its label.
fn audit(action: &'static str, token_id: &str, device_sn: &DeviceSn, caller: Option<&str>) {
    tracing::info!(
        target: "cgm_read::audit",
        action,
        token_id = clip_for_log(token_id),
        device_sn = clip_for_log(device_sn.as_str()),
        caller = caller.unwrap_or("unknown"),
        "audit"
    );
}
