//! What the read side needs from storage: a device's readings in time order through the
//! device/time index, one page at a time, and the follower tokens of the Nightscout feed.
//! [`DynamoReadStore`] is the DynamoDB implementation.
//!
//! Reading queries name the attributes they fetch (a projection expression), so the patient
//! fields of a stored reading (`idCard`, `patientName`, …) never leave DynamoDB on this path:
//! the read side cannot show them by mistake. Follower tokens are stored only as hashes.

use super::StoreError;
use super::dynamodb::{DEVICE_TIME_INDEX, attr, classify, is_condition_failure};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use std::collections::HashMap;
use std::future::Future;

/// A stored reading as the read side sees it: measurement fields only, never patient data.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredReading {
    pub test_id: String,
    pub device_sn: String,
    /// UTC, ms since the epoch.
    pub measured_at_ms: i64,
    /// mmol/L.
    pub mmol: f64,
    pub serial_no: Option<u64>,
    pub status: Option<String>,
    /// False for warm-up (`status` 1) and other unusable readings.
    pub valid: bool,
    /// Minutes between readings, as the sensor reports it.
    pub incre_minute: Option<u64>,
    /// The device's low and high alert thresholds (mmol/L), when sent as numbers.
    pub low: Option<f64>,
    pub high: Option<f64>,
}

/// A place in a device's time index: the key of the last reading a page covered. The next
/// page starts after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    pub measured_at_ms: i64,
    pub test_id: String,
}

impl StoredReading {
    pub fn position(&self) -> Position {
        Position { measured_at_ms: self.measured_at_ms, test_id: self.test_id.clone() }
    }
}

/// One query on the device/time index. Both ends are inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadingQuery<'a> {
    pub device_sn: &'a str,
    pub from_ms: i64,
    pub to_ms: i64,
    /// Skip invalid (warm-up) readings, in the query itself (a filter expression).
    pub valid_only: bool,
    pub newest_first: bool,
}

/// What one call to the index returned. `next` is set while the index holds more for the
/// query; a batch may be empty and still have a `next` (everything it read was filtered out).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Batch {
    pub readings: Vec<StoredReading>,
    pub next: Option<Position>,
}

/// A follower's token as stored: hashes only, never the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FollowToken {
    pub token_id: String,
    pub device_sn: String,
    /// SHA-256 of the token, lowercase hex (looked up for `?token=`).
    pub token_hash: String,
    /// SHA-1 of the token, lowercase hex (looked up for Nightscout's `api-secret` header).
    pub sha1_hash: String,
    pub created_at_ms: i64,
}

/// Which hash of a token a follower presented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenHash<'a> {
    Sha256(&'a str),
    Sha1(&'a str),
}

/// Attribute and index names of the follower tokens table.
pub mod follow_attr {
    pub const TOKEN_ID: &str = "tokenId";
    pub const TOKEN_HASH: &str = "tokenHash";
    pub const SHA1_HASH: &str = "sha1Hash";
    pub const DEVICE_SN: &str = "deviceSn";
    pub const CREATED_AT: &str = "createdAt";
    /// The indexes are named after their key attribute.
    pub const TOKEN_HASH_INDEX: &str = "tokenHash";
    pub const SHA1_HASH_INDEX: &str = "sha1Hash";
}

pub trait ReadStore: Send + Sync {
    /// One call to the device/time index: at most `limit` readings evaluated (before the
    /// filter), starting after `start`.
    fn query_readings(
        &self,
        q: &ReadingQuery<'_>,
        start: Option<&Position>,
        limit: Option<u32>,
    ) -> impl Future<Output = Result<Batch, StoreError>> + Send;

    /// Stores a new token (never overwrites one with the same id).
    fn put_follow_token(&self, t: &FollowToken) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The live token with this hash, if any.
    fn find_follow_token(
        &self,
        hash: TokenHash<'_>,
    ) -> impl Future<Output = Result<Option<FollowToken>, StoreError>> + Send;

    /// Deletes the device's token; `false` when there is no such token for that device.
    fn delete_follow_token(
        &self,
        device_sn: &str,
        token_id: &str,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
}

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
            .expression_attribute_values(":dev", s(q.device_sn))
            .expression_attribute_values(":from", n(q.from_ms))
            .expression_attribute_values(":to", n(q.to_ms))
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
                .exclusive_start_key(attr::DEVICE_SN, s(q.device_sn))
                .exclusive_start_key(attr::MEASURED_AT, n(p.measured_at_ms))
                .exclusive_start_key(attr::TEST_ID, s(&p.test_id));
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
                    test_id = item.get(attr::TEST_ID).and_then(|v| v.as_s().ok()).map(|s| truncate(s, 128)),
                    "stored reading lacks a usable measuredAt or glucoseMmol; skipped"
                ),
            }
        }
        let next = out.last_evaluated_key.as_ref().and_then(position_of);
        Ok(Batch { readings, next })
    }

    async fn put_follow_token(&self, t: &FollowToken) -> Result<(), StoreError> {
        use follow_attr as f;
        let item = HashMap::from([
            (f::TOKEN_ID.to_string(), s(&t.token_id)),
            (f::DEVICE_SN.to_string(), s(&t.device_sn)),
            (f::TOKEN_HASH.to_string(), s(&t.token_hash)),
            (f::SHA1_HASH.to_string(), s(&t.sha1_hash)),
            (f::CREATED_AT.to_string(), n(t.created_at_ms)),
        ]);
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

    async fn find_follow_token(&self, hash: TokenHash<'_>) -> Result<Option<FollowToken>, StoreError> {
        use follow_attr as f;
        let (index, key, value) = match hash {
            TokenHash::Sha256(h) => (f::TOKEN_HASH_INDEX, f::TOKEN_HASH, h),
            TokenHash::Sha1(h) => (f::SHA1_HASH_INDEX, f::SHA1_HASH, h),
        };
        let out = self
            .client
            .query()
            .table_name(&self.follow_tokens_table)
            .index_name(index)
            .key_condition_expression("#h = :h")
            .expression_attribute_names("#h", key)
            .expression_attribute_values(":h", s(value))
            .limit(1)
            .send()
            .await
            .map_err(classify)?;
        let Some(token_id) = out.items.unwrap_or_default().first().and_then(|i| text(i, f::TOKEN_ID)) else {
            return Ok(None);
        };
        // An index is only eventually consistent: a token deleted a moment ago can still be
        // listed there. The table itself, read consistently, says whether it is still live.
        let item = self
            .client
            .get_item()
            .table_name(&self.follow_tokens_table)
            .key(f::TOKEN_ID, s(&token_id))
            .consistent_read(true)
            .send()
            .await
            .map_err(classify)?
            .item;
        Ok(item.as_ref().and_then(token_of).filter(|t| match hash {
            TokenHash::Sha256(h) => t.token_hash == h,
            TokenHash::Sha1(h) => t.sha1_hash == h,
        }))
    }

    async fn delete_follow_token(&self, device_sn: &str, token_id: &str) -> Result<bool, StoreError> {
        use follow_attr as f;
        let res = self
            .client
            .delete_item()
            .table_name(&self.follow_tokens_table)
            .key(f::TOKEN_ID, s(token_id))
            // A token of another device is not this route's to delete: same answer as none.
            .condition_expression("#d = :d")
            .expression_attribute_names("#d", f::DEVICE_SN)
            .expression_attribute_values(":d", s(device_sn))
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
pub fn reading_of(item: &HashMap<String, AttributeValue>) -> Option<StoredReading> {
    let num = |k: &str| item.get(k).and_then(|v| v.as_n().ok());
    let status = text(item, attr::STATUS);
    Some(StoredReading {
        test_id: text(item, attr::TEST_ID)?,
        device_sn: text(item, attr::DEVICE_SN)?,
        measured_at_ms: num(attr::MEASURED_AT)?.parse().ok()?,
        mmol: num(attr::GLUCOSE_MMOL)?.parse().ok().filter(|v: &f64| v.is_finite())?,
        serial_no: num(attr::SERIAL_NO).and_then(|v| v.parse().ok()),
        // Items always carry `valid`; were one not to, the push rule decides (status 0 only).
        valid: match item.get(attr::VALID) {
            Some(AttributeValue::Bool(b)) => *b,
            _ => status.as_deref() == Some("0"),
        },
        status,
        incre_minute: num(attr::INCRE_MINUTE).and_then(|v| v.parse().ok()),
        low: num(attr::LOW).and_then(|v| v.parse().ok()),
        high: num(attr::HIGH).and_then(|v| v.parse().ok()),
    })
}

fn position_of(key: &HashMap<String, AttributeValue>) -> Option<Position> {
    Some(Position {
        measured_at_ms: key.get(attr::MEASURED_AT)?.as_n().ok()?.parse().ok()?,
        test_id: text(key, attr::TEST_ID)?,
    })
}

fn token_of(item: &HashMap<String, AttributeValue>) -> Option<FollowToken> {
    use follow_attr as f;
    Some(FollowToken {
        token_id: text(item, f::TOKEN_ID)?,
        device_sn: text(item, f::DEVICE_SN)?,
        token_hash: text(item, f::TOKEN_HASH)?,
        sha1_hash: text(item, f::SHA1_HASH)?,
        created_at_ms: item.get(f::CREATED_AT).and_then(|v| v.as_n().ok()).and_then(|v| v.parse().ok()).unwrap_or(0),
    })
}

fn text(item: &HashMap<String, AttributeValue>, k: &str) -> Option<String> {
    item.get(k).and_then(|v| v.as_s().ok()).cloned()
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_string())
}

fn n(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(pairs: &[(&str, AttributeValue)]) -> HashMap<String, AttributeValue> {
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
                measured_at_ms: 1_635_827_613_000,
                mmol: 5.6,
                serial_no: Some(12),
                status: Some("1".into()),
                valid: false,
                incre_minute: Some(3),
                low: None,
                high: Some(10.0),
            }
        );
        assert_eq!(r.position(), Position { measured_at_ms: 1_635_827_613_000, test_id: "t1".into() });
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
            assert!(
                ![attr::ID_CARD, attr::PATIENT_NAME, attr::VISIT_ID, attr::PATIENT_ID, attr::IN_SERIAL_ID]
                    .contains(&name)
            );
        }
    }
}
