//! Attribute and index names of the tables, and the helpers that turn values into
//! DynamoDB attribute values and back. Sinocare's own field names are kept for what it sent;
//! derived values have names of their own.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::AttributeValue;
use cgm_domain::store::{Recorded, StoreError};
use std::collections::HashMap;

/// One DynamoDB item.
pub type Item = HashMap<String, AttributeValue>;

/// A stored reading's attributes (readings table; conflicts keep the measurement ones).
pub const TEST_ID: &str = "testId";
pub const DEVICE_SN: &str = "deviceSn";
pub const TEST_RESULT: &str = "testResult";
/// The parsed `testResult`, mmol/L (number).
pub const GLUCOSE_MMOL: &str = "glucoseMmol";
pub const SERIAL_NO: &str = "serialNo";
pub const TEST_TIME: &str = "testTime";
/// The UTC instant of `testTime`, ms since the epoch (number): the device index's sort key.
pub const MEASURED_AT: &str = "measuredAt";
/// The same instant as RFC 3339 text in UTC, for people reading the table.
pub const MEASURED_AT_UTC: &str = "measuredAtUtc";
pub const STATUS: &str = "status";
/// True only for `status` `0`.
pub const VALID: &str = "valid";
pub const CGM_STATUS: &str = "cgmStatus";
pub const CGM_DAY: &str = "cgmDay";
pub const INCRE_MINUTE: &str = "increMinute";
pub const LOW: &str = "low";
pub const HIGH: &str = "high";
pub const CUSTOMER_NAME: &str = "customerName";
pub const ID_CARD: &str = "idCard";
pub const VISIT_ID: &str = "visitId";
pub const PATIENT_NAME: &str = "patientName";
pub const PATIENT_ID: &str = "patientId";
pub const IN_SERIAL_ID: &str = "inSerialId";
pub const RESERVED_CODE: &str = "reservedCode";
/// Unknown fields of `data`, as JSON text.
pub const EXTRA_DATA: &str = "extraData";
/// Unknown top-level fields, as JSON text.
pub const EXTRA_ENVELOPE: &str = "extraEnvelope";
/// Numeric fields outside their bounds, as sent (JSON text), by name.
pub const OUT_OF_RANGE: &str = "outOfRange";
pub const RECEIVED_AT: &str = "receivedAt";
pub const REQUEST_ID: &str = "requestId";
/// `true` when the reading was measured more than `CLOCK_AHEAD_MINUTES` after it arrived
/// (the device's clock runs ahead); absent otherwise.
pub const CLOCK_AHEAD: &str = "clockAhead";

/// The personal fields of a stored reading: never projected by the read side.
pub const PERSONAL: [&str; 5] = [ID_CARD, PATIENT_NAME, VISIT_ID, PATIENT_ID, IN_SERIAL_ID];

/// Conflicts table sort key.
pub const MEASUREMENT_HASH: &str = "measurementHash";
/// Raw body of a conflicting or quarantined delivery.
pub const BODY: &str = "body";
/// Quarantine table partition key.
pub const BODY_SHA256: &str = "bodySha256";
pub const BODY_LENGTH: &str = "bodyLength";
pub const TRUNCATED: &str = "truncated";
pub const REASON: &str = "reason";
/// When DynamoDB's TTL may remove a raw body (conflicts, quarantine): epoch seconds.
pub const EXPIRES_AT: &str = "expiresAt";

/// The device/time index on the readings table (`deviceSn`, `measuredAt`). It projects what
/// the read side reads ([`READS_PROJECTION`]) and no patient field.
pub const DEVICE_TIME_INDEX: &str = "deviceSn-measuredAt-reads";

/// The non-key attributes the device/time index projects (the template's `NonKeyAttributes`
/// must name exactly these: a test holds it).
pub const READS_PROJECTION: [&str; 10] =
    [GLUCOSE_MMOL, TEST_RESULT, SERIAL_NO, STATUS, VALID, INCRE_MINUTE, CGM_DAY, CGM_STATUS, LOW, HIGH];

/// The follower tokens table (key `tokenId`) and its indexes, named after their key.
pub mod follow {
    pub const TOKEN_ID: &str = "tokenId";
    /// SHA-256 of the SHA-1 hex of the token. (Rows from before the rehash hold SHA-256 of
    /// the token here, beside `sha1Hash`; they are upgraded on first use.)
    pub const TOKEN_HASH: &str = "tokenHash";
    /// Legacy only: the SHA-1 hex of the token, exactly what a Nightscout client sends.
    pub const SHA1_HASH: &str = "sha1Hash";
    pub const DEVICE_SN: &str = "deviceSn";
    pub const LABEL: &str = "label";
    /// ms since the epoch.
    pub const CREATED_AT: &str = "createdAt";
    /// Epoch seconds: the table's TTL attribute.
    pub const EXPIRES_AT: &str = "expiresAt";
    /// ms since the epoch.
    pub const LAST_USED_AT: &str = "lastUsedAt";
    pub const TOKEN_HASH_INDEX: &str = "tokenHash";
    pub const SHA1_HASH_INDEX: &str = "sha1Hash";
    pub const DEVICE_INDEX: &str = "deviceSn";
}

pub fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_string())
}

pub fn n(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

pub fn n_u(v: u64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

/// A string attribute of an item.
pub fn text(item: &Item, k: &str) -> Option<String> {
    item.get(k).and_then(|v| v.as_s().ok()).cloned()
}

/// A number attribute of an item, parsed as `T`; `None` when absent or not a `T`.
pub fn num<T: std::str::FromStr>(item: &Item, k: &str) -> Option<T> {
    item.get(k).and_then(|v| v.as_n().ok()).and_then(|v| v.parse().ok())
}

/// Sets a string attribute when there is a value; an empty string is no value.
pub fn put_opt_s(item: &mut Item, k: &str, v: Option<&str>) {
    if let Some(v) = v.filter(|v| !v.is_empty()) {
        item.insert(k.to_string(), s(v));
    }
}

/// Every item a query matches, page after page (for small result sets: a device's tokens,
/// a range of its daily rollups).
pub async fn query_all(
    query: aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder,
) -> Result<Vec<Item>, StoreError> {
    let mut items = Vec::new();
    let mut start = None;
    loop {
        let page = query.clone().set_exclusive_start_key(start).send().await.map_err(classify)?;
        items.extend(page.items.unwrap_or_default());
        start = page.last_evaluated_key;
        if start.is_none() {
            return Ok(items);
        }
    }
}

/// Every item a scan matches, page after page (for small tables: the submissions table's
/// checkpoints and requests, the quarantine).
pub async fn scan_all(
    scan: aws_sdk_dynamodb::operation::scan::builders::ScanFluentBuilder,
) -> Result<Vec<Item>, StoreError> {
    let mut items = Vec::new();
    let mut start = None;
    loop {
        let page = scan.clone().set_exclusive_start_key(start).send().await.map_err(classify)?;
        items.extend(page.items.unwrap_or_default());
        start = page.last_evaluated_key;
        if start.is_none() {
            return Ok(items);
        }
    }
}

/// Puts `item` only if no item has its key (`key_attr`): one round trip, and a repeat of the
/// same record is [`Recorded::AlreadyThere`], not an error.
pub async fn put_new(client: &Client, table: &str, key_attr: &str, item: Item) -> Result<Recorded, StoreError> {
    let res = client
        .put_item()
        .table_name(table)
        .set_item(Some(item))
        .condition_expression("attribute_not_exists(#k)")
        .expression_attribute_names("#k", key_attr)
        .send()
        .await;
    match res {
        Ok(_) => Ok(Recorded::New),
        Err(e) if is_condition_failure(&e) => Ok(Recorded::AlreadyThere),
        Err(e) => Err(classify(e)),
    }
}

pub fn is_condition_failure<E: ProvideErrorMetadata, R>(e: &SdkError<E, R>) -> bool {
    matches!(e, SdkError::ServiceError(se) if se.err().code() == Some("ConditionalCheckFailedException"))
}

/// Turns an SDK error into a [`StoreError`] whose text names the kind of failure only: the
/// service's message is kept as the source, for debugging, not shown in replies.
pub fn classify<E, R>(e: SdkError<E, R>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let kind = match &e {
        SdkError::TimeoutError(_) => return StoreError::Timeout,
        SdkError::DispatchFailure(d) if d.is_timeout() => return StoreError::Timeout,
        SdkError::DispatchFailure(_) => "DispatchFailure".to_string(),
        SdkError::ResponseError(_) => "ResponseError".to_string(),
        SdkError::ConstructionFailure(_) => "ConstructionFailure".to_string(),
        SdkError::ServiceError(se) => se.err().code().unwrap_or("ServiceError").to_string(),
        _ => "Unknown".to_string(),
    };
    StoreError::Failed { kind, source: Box::new(e) }
}

/// An item's size as DynamoDB counts it (attribute names and values: strings by their UTF-8
/// bytes, numbers by about one byte per two digits plus one, three bytes per list or map
/// plus one per element), to hold items inside a stated budget.
pub fn item_bytes(item: &Item) -> usize {
    item.iter().map(|(k, v)| k.len() + value_bytes(v)).sum()
}

fn value_bytes(v: &AttributeValue) -> usize {
    match v {
        AttributeValue::S(s) => s.len(),
        AttributeValue::N(n) => n.trim_start_matches('-').len().div_ceil(2) + 1,
        AttributeValue::L(l) => 3 + l.iter().map(|v| 1 + value_bytes(v)).sum::<usize>(),
        AttributeValue::M(m) => 3 + m.iter().map(|(k, v)| 1 + k.len() + value_bytes(v)).sum::<usize>(),
        _ => 1,
    }
}
