//! The DynamoDB implementation of [`ReadStore`]: queries on the readings table's device/time
//! index that name the attributes they fetch (never a patient field), and the follower
//! tokens table with its two hash indexes.

use crate::store::attr::{
    self, DEVICE_TIME_INDEX, Item, classify, follow, is_condition_failure, n, num, query_all, s, text,
};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use cgm_domain::ids::{DeviceSn, TestId, clip_for_log};
use cgm_domain::push::{INCRE_MINUTE_BOUNDS, MAX_MMOL, MAX_THRESHOLD, SERIAL_NO_BOUNDS};
use cgm_domain::sensitive::Sensitive;
use cgm_domain::store::StoreError;
use cgm_domain::store::reads::{Batch, FollowToken, Position, ReadStore, ReadingQuery, StoredReading};
use cgm_domain::time::Timestamp;
use std::collections::HashMap;

#[derive(Debug, Clone)]
pub struct DynamoReadStore {
    client: Client,
    readings_table: String,
    follow_tokens_table: String,
}

impl DynamoReadStore {
    pub fn new(client: Client, readings_table: String, follow_tokens_table: String) -> Self {
        Self { client, readings_table, follow_tokens_table }
    }

    /// The id of the token whose `attribute` (an index's key) is `value`.
    async fn token_id_by(&self, index: &str, attribute: &str, value: &str) -> Result<Option<String>, StoreError> {
        let out = self
            .client
            .query()
            .table_name(&self.follow_tokens_table)
            .index_name(index)
            .key_condition_expression("#h = :h")
            .expression_attribute_names("#h", attribute)
            .expression_attribute_values(":h", s(value))
            .limit(1)
            .send()
            .await
            .map_err(classify)?;
        Ok(out.items.unwrap_or_default().first().and_then(|i| text(i, follow::TOKEN_ID)))
    }

    async fn token_item(&self, token_id: &str) -> Result<Option<Item>, StoreError> {
        Ok(self
            .client
            .get_item()
            .table_name(&self.follow_tokens_table)
            .key(follow::TOKEN_ID, s(token_id))
            .consistent_read(true)
            .send()
            .await
            .map_err(classify)?
            .item)
    }
}

/// Every attribute a reading query fetches, with its placeholder: status, low and high are
/// among DynamoDB's reserved words, so all go through placeholders.
const READ_ATTRIBUTES: [(&str, &str); 10] = [
    ("#tid", attr::TEST_ID),
    ("#dev", attr::DEVICE_SN),
    ("#at", attr::MEASURED_AT),
    ("#mmol", attr::GLUCOSE_MMOL),
    ("#sn", attr::SERIAL_NO),
    ("#st", attr::STATUS),
    ("#ok", attr::VALID),
    ("#inc", attr::INCRE_MINUTE),
    ("#lo", attr::LOW),
    ("#hi", attr::HIGH),
];

impl ReadStore for DynamoReadStore {
    async fn query_readings(
        &self,
        q: &ReadingQuery<'_>,
        start: Option<&Position>,
        limit: Option<u32>,
    ) -> Result<Batch, StoreError> {
        let projection = READ_ATTRIBUTES.iter().map(|(p, _)| *p).collect::<Vec<_>>().join(", ");
        let mut req = self
            .client
            .query()
            .table_name(&self.readings_table)
            .index_name(DEVICE_TIME_INDEX)
            .key_condition_expression("#dev = :dev AND #at BETWEEN :from AND :to")
            .projection_expression(projection)
            .expression_attribute_values(":dev", s(q.device_sn.as_str()))
            .expression_attribute_values(":from", n(q.range.start().ms()))
            .expression_attribute_values(":to", n(q.range.end().ms()))
            .scan_index_forward(!q.newest_first)
            .set_limit(limit.map(|l| l.clamp(1, i32::MAX as u32) as i32));
        for (placeholder, name) in READ_ATTRIBUTES {
            req = req.expression_attribute_names(placeholder, name);
        }
        if q.valid_only {
            req = req.filter_expression("#ok = :yes").expression_attribute_values(":yes", AttributeValue::Bool(true));
        }
        if let Some(p) = start {
            req = req
                .exclusive_start_key(attr::DEVICE_SN, s(q.device_sn.as_str()))
                .exclusive_start_key(attr::MEASURED_AT, n(p.measured_at.ms()))
                .exclusive_start_key(attr::TEST_ID, s(p.test_id.as_str()));
        }
        let out = req.send().await.map_err(classify)?;
        let mut readings = Vec::with_capacity(out.items.as_ref().map_or(0, Vec::len));
        for item in out.items.unwrap_or_default() {
            match reading_of(&item) {
                Some(r) => readings.push(r),
                // Written by the push function, so this does not happen; if it ever does, the
                // operator hears of it and the rest of the page is still served.
                None => tracing::warn!(
                    target: "cgm_read",
                    test_id = item.get(attr::TEST_ID).and_then(|v| v.as_s().ok()).map(|s| clip_for_log(s)),
                    "stored reading lacks a usable measuredAt or glucoseMmol; skipped"
                ),
            }
        }
        let next = out.last_evaluated_key.as_ref().and_then(position_of);
        Ok(Batch { readings, next })
    }

    async fn put_follow_token(&self, t: &FollowToken) -> Result<(), StoreError> {
        use follow as f;
        let mut item = HashMap::from([
            (f::TOKEN_ID.to_string(), s(&t.token_id)),
            (f::DEVICE_SN.to_string(), s(t.device_sn.as_str())),
            (f::TOKEN_HASH.to_string(), s(&t.secret_hash)),
            (f::CREATED_AT.to_string(), n(t.created_at.ms())),
            (f::EXPIRES_AT.to_string(), n(t.expires_at.ms().div_euclid(1000))),
        ]);
        if let Some(label) = &t.label {
            item.insert(f::LABEL.to_string(), s(label.expose()));
        }
        self.client
            .put_item()
            .table_name(&self.follow_tokens_table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(#k)")
            .expression_attribute_names("#k", f::TOKEN_ID)
            .send()
            .await
            .map_err(classify)?;
        Ok(())
    }

    async fn find_follow_token(&self, secret_hash: &str) -> Result<Option<FollowToken>, StoreError> {
        let Some(token_id) = self.token_id_by(follow::TOKEN_HASH_INDEX, follow::TOKEN_HASH, secret_hash).await? else {
            return Ok(None);
        };
        // An index is only eventually consistent: a token deleted a moment ago can still be
        // listed there. The table itself, read consistently, says whether it is still live.
        let item = self.token_item(&token_id).await?;
        Ok(item.as_ref().and_then(token_of).filter(|t| t.secret_hash == secret_hash))
    }

    async fn get_follow_token(&self, token_id: &str) -> Result<Option<FollowToken>, StoreError> {
        Ok(self.token_item(token_id).await?.as_ref().and_then(token_of))
    }

    async fn upgrade_legacy_follow_token(
        &self,
        sha1_hex: &str,
        secret_hash: &str,
        expires_at: Timestamp,
    ) -> Result<Option<FollowToken>, StoreError> {
        use follow as f;
        let Some(token_id) = self.token_id_by(f::SHA1_HASH_INDEX, f::SHA1_HASH, sha1_hex).await? else {
            return Ok(None);
        };
        let res = self
            .client
            .update_item()
            .table_name(&self.follow_tokens_table)
            .key(f::TOKEN_ID, s(&token_id))
            .update_expression("SET #h = :h, #e = if_not_exists(#e, :e) REMOVE #s")
            .condition_expression("#s = :s")
            .expression_attribute_names("#h", f::TOKEN_HASH)
            .expression_attribute_names("#e", f::EXPIRES_AT)
            .expression_attribute_names("#s", f::SHA1_HASH)
            .expression_attribute_values(":h", s(secret_hash))
            .expression_attribute_values(":e", n(expires_at.ms().div_euclid(1000)))
            .expression_attribute_values(":s", s(sha1_hex))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllNew)
            .send()
            .await;
        match res {
            Ok(out) => Ok(out.attributes.as_ref().and_then(token_of)),
            Err(e) if is_condition_failure(&e) => Ok(None),
            Err(e) => Err(classify(e)),
        }
    }

    async fn list_follow_tokens(&self, device_sn: &DeviceSn) -> Result<Vec<FollowToken>, StoreError> {
        let query = self
            .client
            .query()
            .table_name(&self.follow_tokens_table)
            .index_name(follow::DEVICE_INDEX)
            .key_condition_expression("#d = :d")
            .expression_attribute_names("#d", follow::DEVICE_SN)
            .expression_attribute_values(":d", s(device_sn.as_str()));
        let mut tokens: Vec<FollowToken> = query_all(query).await?.iter().filter_map(token_of).collect();
        tokens.sort_by_key(|t| t.created_at);
        Ok(tokens)
    }

    async fn touch_follow_token(&self, token_id: &str, at: Timestamp) -> Result<(), StoreError> {
        let res = self
            .client
            .update_item()
            .table_name(&self.follow_tokens_table)
            .key(follow::TOKEN_ID, s(token_id))
            .update_expression("SET #u = :u")
            // Never recreate a token revoked meanwhile.
            .condition_expression("attribute_exists(#k)")
            .expression_attribute_names("#u", follow::LAST_USED_AT)
            .expression_attribute_names("#k", follow::TOKEN_ID)
            .expression_attribute_values(":u", n(at.ms()))
            .send()
            .await;
        match res {
            Ok(_) => Ok(()),
            Err(e) if is_condition_failure(&e) => Ok(()),
            Err(e) => Err(classify(e)),
        }
    }

    async fn delete_follow_token(&self, device_sn: &DeviceSn, token_id: &str) -> Result<bool, StoreError> {
        use follow as f;
        let res = self
            .client
            .delete_item()
            .table_name(&self.follow_tokens_table)
            .key(f::TOKEN_ID, s(token_id))
            // A token of another device is not this route's to delete: same answer as none.
            .condition_expression("#d = :d")
            .expression_attribute_names("#d", f::DEVICE_SN)
            .expression_attribute_values(":d", s(device_sn.as_str()))
            .send()
            .await;
        match res {
            Ok(_) => Ok(true),
            Err(e) if is_condition_failure(&e) => Ok(false),
            Err(e) => Err(classify(e)),
        }
    }
}

/// The reading in an item, or `None` when it lacks what defines one.
pub fn reading_of(item: &Item) -> Option<StoredReading> {
    let status = text(item, attr::STATUS);
    Some(StoredReading {
        test_id: TestId::new(text(item, attr::TEST_ID)?),
        device_sn: DeviceSn::new(text(item, attr::DEVICE_SN)?),
        measured_at: Timestamp::from_ms(num(item, attr::MEASURED_AT)?),
        // Bounded as the push route bounds them now, for items stored before it did (or
        // written by hand): a value outside is no value, never a number to compute with.
        mmol: num(item, attr::GLUCOSE_MMOL).filter(|v: &f64| v.is_finite() && *v > 0.0 && *v <= MAX_MMOL)?,
        serial_no: num(item, attr::SERIAL_NO).filter(|n| SERIAL_NO_BOUNDS.contains(n)),
        // Items always carry `valid`; were one not to, the push rule decides (status 0 only).
        valid: match item.get(attr::VALID) {
            Some(AttributeValue::Bool(b)) => *b,
            _ => status.as_deref() == Some("0"),
        },
        status,
        incre_minute: num(item, attr::INCRE_MINUTE).filter(|n| INCRE_MINUTE_BOUNDS.contains(n)),
        low: num(item, attr::LOW).filter(|v: &f64| v.is_finite() && v.abs() < MAX_THRESHOLD),
        high: num(item, attr::HIGH).filter(|v: &f64| v.is_finite() && v.abs() < MAX_THRESHOLD),
    })
}

fn position_of(key: &Item) -> Option<Position> {
    Some(Position {
        measured_at: Timestamp::from_ms(num(key, attr::MEASURED_AT)?),
        test_id: TestId::new(text(key, attr::TEST_ID)?),
    })
}

fn token_of(item: &Item) -> Option<FollowToken> {
    use follow as f;
    let created_at = Timestamp::from_ms(num(item, f::CREATED_AT).unwrap_or(0));
    Some(FollowToken {
        token_id: text(item, f::TOKEN_ID)?,
        device_sn: DeviceSn::new(text(item, f::DEVICE_SN)?),
        secret_hash: text(item, f::TOKEN_HASH)?,
        label: text(item, f::LABEL).map(Sensitive::new),
        created_at,
        // A row without an expiry is one from before expiries existed and not upgraded yet.
        expires_at: num::<i64>(item, f::EXPIRES_AT).map_or(created_at, |s| Timestamp::from_ms(s.saturating_mul(1000))),
        last_used_at: num(item, f::LAST_USED_AT).map(Timestamp::from_ms),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(pairs: &[(&str, AttributeValue)]) -> Item {
        pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
    }

    #[test]
    fn a_stored_item_becomes_a_reading_without_patient_fields() {
        let it = item(&[
            ("testId", s("t1")),
            ("deviceSn", s("d1")),
            ("measuredAt", n(1_635_827_613_000)),
            ("glucoseMmol", AttributeValue::N("5.6".into())),
            ("serialNo", AttributeValue::N("12".into())),
            ("status", s("1")),
            ("valid", AttributeValue::Bool(false)),
            ("increMinute", AttributeValue::N("3".into())),
            ("low", AttributeValue::Null(true)),
            ("high", AttributeValue::N("10".into())),
            ("patientName", s("张三")),
        ]);
        let r = reading_of(&it).unwrap();
        assert_eq!(
            r,
            StoredReading {
                test_id: "t1".into(),
                device_sn: "d1".into(),
                measured_at: Timestamp::from_ms(1_635_827_613_000),
                mmol: 5.6,
                serial_no: Some(12),
                status: Some("1".into()),
                valid: false,
                incre_minute: Some(3),
                low: None,
                high: Some(10.0),
            }
        );
        assert_eq!(r.position(), Position { measured_at: Timestamp::from_ms(1_635_827_613_000), test_id: "t1".into() });
    }

    #[test]
    fn an_item_without_a_value_or_time_is_not_a_reading() {
        let base = [("testId", s("t1")), ("deviceSn", s("d1")), ("measuredAt", n(1))];
        assert_eq!(reading_of(&item(&base)), None);
        let no_time = [("testId", s("t1")), ("deviceSn", s("d1")), ("glucoseMmol", AttributeValue::N("5".into()))];
        assert_eq!(reading_of(&item(&no_time)), None);
    }

    #[test]
    fn the_projection_names_no_patient_field() {
        for (_, name) in READ_ATTRIBUTES {
            assert!(!attr::PERSONAL.contains(&name), "{name}");
        }
    }
}
