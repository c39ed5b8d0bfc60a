//! Follower tokens: `POST`, `GET` and `DELETE /devices/{device_sn}/follow-tokens[/{token_id}]`
//! (IAM). A follower presents one to the Nightscout function (`functions/nightscout`) to read
//! one device's feed.

use crate::ReadService;
use crate::error::{ReadError, bad};
use cgm_domain::follow;
use cgm_domain::ids::{DeviceSn, clip_for_log};
use cgm_domain::sensitive::Sensitive;
use cgm_domain::store::reads::{FollowToken, ReadStore};
use cgm_domain::store::rollups::RollupStore;
use cgm_domain::store::sensors::SensorStore;
use cgm_domain::time::Timestamp;
use cgm_edge::{Answer, Params, reply};
use lambda_http::http::StatusCode;
use serde::Serialize;

/// A new token lives this long unless `expires_in` says otherwise.
pub const DEFAULT_TOKEN_LIFE_S: i64 = 90 * 86_400;
pub const MAX_TOKEN_LIFE_S: i64 = 366 * 86_400;
const MAX_LABEL_CHARS: usize = 200;

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
        p.only(&[])?;
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
        p.only(&[])?;
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
        p.only(&[])?;
        let sn = DeviceSn::from(p.path("device_sn")?);
        let token_id = p.path("token_id")?;
        if !self.store.delete_follow_token(&sn, token_id).await? {
            return Err(ReadError::NotFound("follow token"));
        }
        audit("follow_token_revoked", token_id, &sn, caller);
        let body = RevokedToken { token_id, device_sn: &sn, revoked: true };
        Ok(Answer::new(reply::json(StatusCode::OK, &body)).token_id(clip_for_log(token_id)))
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
