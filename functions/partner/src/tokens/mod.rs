//! Users' bearer tokens for the Partner API: kept in DynamoDB, cached per Lambda instance,
//! refreshed before they expire, re-registered when the vendor no longer accepts them.
//!
//! - A token is refreshed through get-token when less than a fifth of its life, or less than
//!   60 s, is left. Get-token is sent the held token even when it has expired.
//! - If get-token itself answers 1001, the user is registered again with the stored
//!   `partner_uid` and region; a changed `open_id` is recorded.
//! - Requests for one `open_id` in one instance share one refresh (a per-user async lock).
//! - Tokens never reach a log line or an error message ([`Sensitive`]).
//!
//! The store is the usual shape: the [`TokenStore`] trait here, its DynamoDB implementation
//! in [`dynamodb`].

pub mod dynamodb;

use crate::client::{Envelope, PartnerClient, UNAUTHORIZED, UpstreamError};
use crate::error::ProxyError;
use cgm_domain::sensitive::Sensitive;
use cgm_domain::store::StoreError;
use cgm_domain::time::now_ms;
use serde_json::Value;
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

/// One user's token, as stored under the `open_id` callers use.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenRecord {
    /// The `open_id` the record is stored under (what callers put in the URL).
    pub key: String,
    /// The `open_id` to send upstream: differs from `key` only after a re-registration
    /// gave the user a new one.
    pub open_id: String,
    pub access_token: Sensitive<String>,
    pub issued_at_ms: i64,
    pub expires_at_ms: i64,
    pub partner_uid: Option<String>,
    pub region: Option<String>,
}

impl TokenRecord {
    /// Seconds of validity left, as the vendor's `expire_in` would say it.
    pub fn expire_in_s(&self, now_ms: i64) -> i64 {
        ((self.expires_at_ms - now_ms) / 1000).max(0)
    }

    /// Fresh while more than a fifth of its life and more than 60 s remain.
    pub fn is_fresh(&self, now_ms: i64) -> bool {
        let life = (self.expires_at_ms - self.issued_at_ms).max(0);
        let margin = (life / 5).max(60_000);
        self.expires_at_ms - now_ms > margin
    }
}

pub trait TokenStore: Send + Sync {
    fn get(&self, open_id: &str) -> impl Future<Output = Result<Option<TokenRecord>, StoreError>> + Send;
    fn put(&self, record: &TokenRecord) -> impl Future<Output = Result<(), StoreError>> + Send;
    fn owner(&self, device_sn: &str) -> impl Future<Output = Result<Option<String>, StoreError>> + Send;
    fn set_owner(&self, device_sn: &str, open_id: &str) -> impl Future<Output = Result<(), StoreError>> + Send;
}

type Slot = Arc<tokio::sync::Mutex<Option<TokenRecord>>>;

pub struct Tokens<S> {
    store: S,
    client: PartnerClient,
    slots: Mutex<HashMap<String, Slot>>,
}

impl<S: TokenStore> Tokens<S> {
    pub fn new(store: S, client: PartnerClient) -> Self {
        Self { store, client, slots: Mutex::new(HashMap::new()) }
    }

    pub fn client(&self) -> &PartnerClient {
        &self.client
    }

    pub fn store(&self) -> &S {
        &self.store
    }

    fn slot(&self, open_id: &str) -> Slot {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        slots.entry(open_id.to_string()).or_default().clone()
    }

    /// Registers a user upstream and keeps the token.
    pub async fn register(&self, partner_uid: &str, region: Option<&str>) -> Result<TokenRecord, ProxyError> {
        let env = self.client.register(partner_uid, region).await?;
        let rec = record_from(env, None, partner_uid, region)?;
        self.store.put(&rec).await?;
        *self.slot(&rec.key).lock().await = Some(rec.clone());
        Ok(rec)
    }

    /// A token for `open_id` that is not about to expire.
    pub async fn current(&self, open_id: &str) -> Result<TokenRecord, ProxyError> {
        let slot = self.slot(open_id);
        let mut held = slot.lock().await;
        self.load(&mut held, open_id).await?;
        match held.as_ref() {
            Some(rec) if rec.is_fresh(now_ms()) => Ok(rec.clone()),
            _ => self.refresh_locked(&mut held, open_id).await,
        }
    }

    /// A new token for `open_id`. With `rejected` (the token the vendor just refused), a
    /// token another request obtained in the meantime is used instead of refreshing again.
    pub async fn refresh(
        &self,
        open_id: &str,
        rejected: Option<&Sensitive<String>>,
    ) -> Result<TokenRecord, ProxyError> {
        let slot = self.slot(open_id);
        let mut held = slot.lock().await;
        self.load(&mut held, open_id).await?;
        if let (Some(bad), Some(rec)) = (rejected, held.as_ref())
            && &rec.access_token != bad
            && rec.is_fresh(now_ms())
        {
            return Ok(rec.clone());
        }
        self.refresh_locked(&mut held, open_id).await
    }

    async fn load(&self, held: &mut Option<TokenRecord>, open_id: &str) -> Result<(), ProxyError> {
        if held.is_none() {
            *held = self.store.get(open_id).await?;
        }
        if held.is_none() {
            return Err(ProxyError::UnknownUser);
        }
        Ok(())
    }

    async fn refresh_locked(&self, held: &mut Option<TokenRecord>, key: &str) -> Result<TokenRecord, ProxyError> {
        let old = held.clone().ok_or(ProxyError::UnknownUser)?;
        let env = self.client.get_token(&old.open_id, &old.access_token).await?;
        let mut rec = if env.code == UNAUTHORIZED {
            self.reregister(&old).await?
        } else {
            record_from(env, Some(&old), old.partner_uid.as_deref().unwrap_or_default(), old.region.as_deref())?
        };
        rec.key = key.to_string();
        self.store.put(&rec).await?;
        *held = Some(rec.clone());
        Ok(rec)
    }

    /// The vendor no longer accepts even get-token: register the user again.
    async fn reregister(&self, old: &TokenRecord) -> Result<TokenRecord, ProxyError> {
        let Some(uid) = old.partner_uid.as_deref() else {
            return Err(ProxyError::Refused {
                code: UNAUTHORIZED,
                msg: "token refresh refused and no partner_uid is stored to register the user again".into(),
            });
        };
        let env = self.client.register(uid, old.region.as_deref()).await?;
        let rec = record_from(env, None, uid, old.region.as_deref())?;
        if rec.open_id != old.open_id {
            tracing::warn!(old_open_id = %old.open_id, new_open_id = %rec.open_id, "re-registration gave the user a new open_id");
            // The new open_id gets its own record, so callers may switch to it.
            self.store.put(&rec).await?;
        }
        Ok(rec)
    }

    /// The `open_id` whose token may read a device, learned from earlier answers.
    pub async fn owner_of(&self, device_sn: &str) -> Result<Option<String>, ProxyError> {
        Ok(self.store.owner(device_sn).await?)
    }

    /// Remembers a device's owner when an answer names one.
    pub async fn learn_owner(&self, device_sn: &str, open_id: &str) -> Result<(), ProxyError> {
        if self.store.owner(device_sn).await?.as_deref() != Some(open_id) {
            self.store.set_owner(device_sn, open_id).await?;
        }
        Ok(())
    }
}

/// A token record from a register or get-token answer.
fn record_from(
    env: Envelope,
    old: Option<&TokenRecord>,
    partner_uid: &str,
    region: Option<&str>,
) -> Result<TokenRecord, ProxyError> {
    if env.code != 0 {
        return Err(ProxyError::Refused { code: env.code, msg: env.msg });
    }
    let d = &env.data;
    let text = |k: &str| match d.get(k) {
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    };
    let open_id = text("open_id").or_else(|| old.map(|o| o.open_id.clone()));
    let open_id = open_id.ok_or(UpstreamError::Malformed("data.open_id is missing"))?;
    let token = match d.get("access_token") {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        _ => return Err(UpstreamError::Malformed("data.access_token is missing").into()),
    };
    let expire_in: i64 = match d.get("expire_in") {
        Some(Value::Number(n)) => n.as_i64(),
        Some(Value::String(s)) => s.trim().parse().ok(),
        _ => None,
    }
    .filter(|s| *s > 0)
    .ok_or(UpstreamError::Malformed("data.expire_in is not a positive number of seconds"))?;
    let now = now_ms();
    Ok(TokenRecord {
        key: old.map(|o| o.key.clone()).unwrap_or_else(|| open_id.clone()),
        open_id,
        access_token: Sensitive::new(token),
        issued_at_ms: now,
        expires_at_ms: now.saturating_add(expire_in.saturating_mul(1000)),
        partner_uid: (!partner_uid.is_empty()).then(|| partner_uid.to_string()),
        region: region.map(str::to_string),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(issued: i64, expires: i64) -> TokenRecord {
        TokenRecord {
            key: "o".into(),
            open_id: "o".into(),
            access_token: Sensitive::new("t".into()),
            issued_at_ms: issued,
            expires_at_ms: expires,
            partner_uid: None,
            region: None,
        }
    }

    #[test]
    fn fresh_until_a_fifth_of_life_or_a_minute_is_left() {
        // Two hours of life: refreshed once fewer than 24 minutes remain.
        let r = rec(0, 7_200_000);
        assert!(r.is_fresh(7_200_000 - 1_440_001));
        assert!(!r.is_fresh(7_200_000 - 1_440_000));
        // Two minutes of life: the 60 s floor applies.
        let r = rec(0, 120_000);
        assert!(r.is_fresh(59_999));
        assert!(!r.is_fresh(60_000));
        assert_eq!(r.expire_in_s(60_000), 60);
        assert_eq!(r.expire_in_s(500_000), 0);
    }

    #[test]
    fn records_come_from_the_vendors_token_answer() {
        let env = Envelope {
            code: 0,
            msg: String::new(),
            data: serde_json::json!({"open_id": "u1", "access_token": "tok", "expire_in": "7200"}),
        };
        let r = record_from(env, None, "p1", Some("CN")).unwrap();
        assert_eq!((r.key.as_str(), r.open_id.as_str(), r.access_token.expose().as_str()), ("u1", "u1", "tok"));
        assert_eq!(r.expires_at_ms - r.issued_at_ms, 7_200_000);
        assert_eq!((r.partner_uid.as_deref(), r.region.as_deref()), (Some("p1"), Some("CN")));

        let bad =
            Envelope { code: 0, msg: String::new(), data: serde_json::json!({"open_id": "u1", "expire_in": 7200}) };
        assert!(matches!(record_from(bad, None, "", None), Err(ProxyError::Upstream(UpstreamError::Malformed(_)))));
        let refused = Envelope { code: 1002, msg: "denied".into(), data: Value::Null };
        assert!(matches!(record_from(refused, None, "", None), Err(ProxyError::Refused { code: 1002, .. })));
    }
}
