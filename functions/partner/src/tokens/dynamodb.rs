//! The DynamoDB implementation of [`TokenStore`]: the tokens table (key `openId`) and the
//! device-owners table (key `deviceSn`).

use super::{TokenRecord, TokenStore};
use aws_sdk_dynamodb::Client;
use cgm_domain::sensitive::Sensitive;
use cgm_domain::store::StoreError;
use cgm_domain::time::now_ms;
use cgm_shared::store::attr::{Item, classify, n, num, s, text};
use std::collections::HashMap;

#[derive(Debug, Clone)]
pub struct DynamoTokenStore {
    client: Client,
    tokens_table: String,
    owners_table: String,
}

impl DynamoTokenStore {
    pub fn new(client: Client, tokens_table: String, owners_table: String) -> Self {
        Self { client, tokens_table, owners_table }
    }
}

impl TokenStore for DynamoTokenStore {
    async fn get(&self, open_id: &str) -> Result<Option<TokenRecord>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.tokens_table)
            .key("openId", s(open_id))
            .consistent_read(true)
            .send()
            .await
            .map_err(classify)?;
        Ok(out.item.as_ref().and_then(|item| record_of(open_id, item)))
    }

    async fn put(&self, r: &TokenRecord) -> Result<(), StoreError> {
        let mut item = HashMap::from([
            ("openId".to_string(), s(&r.key)),
            ("currentOpenId".to_string(), s(&r.open_id)),
            ("accessToken".to_string(), s(r.access_token.expose())),
            ("issuedAt".to_string(), n(r.issued_at_ms)),
            ("expiresAt".to_string(), n(r.expires_at_ms)),
        ]);
        if let Some(uid) = &r.partner_uid {
            item.insert("partnerUid".into(), s(uid));
        }
        if let Some(region) = &r.region {
            item.insert("region".into(), s(region));
        }
        self.client.put_item().table_name(&self.tokens_table).set_item(Some(item)).send().await.map_err(classify)?;
        Ok(())
    }

    async fn owner(&self, device_sn: &str) -> Result<Option<String>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.owners_table)
            .key("deviceSn", s(device_sn))
            .send()
            .await
            .map_err(classify)?;
        Ok(out.item.and_then(|i| i.get("openId").and_then(|v| v.as_s().ok()).cloned()))
    }

    async fn set_owner(&self, device_sn: &str, open_id: &str) -> Result<(), StoreError> {
        let item = HashMap::from([
            ("deviceSn".to_string(), s(device_sn)),
            ("openId".to_string(), s(open_id)),
            ("learnedAt".to_string(), n(now_ms())),
        ]);
        self.client.put_item().table_name(&self.owners_table).set_item(Some(item)).send().await.map_err(classify)?;
        Ok(())
    }
}

fn record_of(key: &str, item: &Item) -> Option<TokenRecord> {
    Some(TokenRecord {
        key: key.to_string(),
        open_id: text(item, "currentOpenId").unwrap_or_else(|| key.to_string()),
        access_token: Sensitive::new(text(item, "accessToken")?),
        issued_at_ms: num(item, "issuedAt")?,
        expires_at_ms: num(item, "expiresAt")?,
        partner_uid: text(item, "partnerUid"),
        region: text(item, "region"),
    })
}
