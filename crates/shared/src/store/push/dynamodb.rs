//! The DynamoDB implementation of [`PushStore`].
//!
//! Readings are written with one conditional `PutItem` (`attribute_not_exists(testId)`,
//! `ReturnValuesOnConditionCheckFailure = ALL_OLD`): one round trip, correct when two
//! deliveries race, and on a second delivery the stored measurement comes back without a
//! second read.

use crate::config::Tables;
use crate::store::attr::{self, classify, is_condition_failure, n_u, put_opt_s, s};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure};
use cgm_domain::ids::{DeviceSn, TestId};
use cgm_domain::push::{Measurement, Reading, Threshold, format_number};
use cgm_domain::store::StoreError;
use cgm_domain::store::push::{Arrival, Conflict, PushStore, PutOutcome, Quarantined, Recorded};
use cgm_domain::time::Timestamp;
use std::collections::HashMap;

#[derive(Debug, Clone)]
pub struct DynamoStore {
    client: Client,
    tables: Tables,
    /// How long a raw body (conflict, quarantine) is kept before the tables' TTL removes it.
    raw_body_retention_s: i64,
}

/// `RAW_BODY_RETENTION_DAYS`' default.
pub const DEFAULT_RAW_BODY_RETENTION_DAYS: u64 = 400;

impl DynamoStore {
    pub fn new(client: Client, tables: Tables) -> Self {
        Self { client, tables, raw_body_retention_s: retention_s(DEFAULT_RAW_BODY_RETENTION_DAYS) }
    }

    /// Raw bodies kept `days` days (`RAW_BODY_RETENTION_DAYS`).
    pub fn retaining_raw_bodies(mut self, days: u64) -> Self {
        self.raw_body_retention_s = retention_s(days);
        self
    }

    /// The TTL of a raw body that arrived at `received_at_ms`: epoch seconds.
    fn expires_at(&self, received_at_ms: i64) -> AttributeValue {
        n_i(received_at_ms.div_euclid(1000).saturating_add(self.raw_body_retention_s))
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn tables(&self) -> &Tables {
        &self.tables
    }

    /// Opens (and with TLS, handshakes) a connection to the table's endpoint, so the first
    /// push does not pay for it. A read of a key that never exists; its outcome is ignored.
    pub async fn warm_up(&self) {
        let _ =
            self.client.get_item().table_name(&self.tables.readings).key(attr::TEST_ID, s("__warm-up__")).send().await;
    }

    async fn consistent_measurement(&self, test_id: &TestId) -> Result<Option<Measurement>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.tables.readings)
            .key(attr::TEST_ID, s(test_id.as_str()))
            .consistent_read(true)
            .send()
            .await
            .map_err(classify)?;
        Ok(out.item.as_ref().and_then(measurement_of))
    }
}

impl PushStore for DynamoStore {
    async fn put_reading(&self, reading: &Reading, arrival: &Arrival) -> Result<PutOutcome, StoreError> {
        let res = self
            .client
            .put_item()
            .table_name(&self.tables.readings)
            .set_item(Some(reading_item(reading, arrival)))
            .condition_expression("attribute_not_exists(testId)")
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        let err = match res {
            Ok(_) => return Ok(PutOutcome::Stored),
            Err(e) => e,
        };
        if !is_condition_failure(&err) {
            return Err(classify(err));
        }
        let old = match err.into_service_error() {
            PutItemError::ConditionalCheckFailedException(ex) => ex.item,
            _ => None,
        };
        match old {
            Some(item) => Ok(PutOutcome::Existing(measurement_of(&item))),
            // An engine that does not return the old item: read it, consistently.
            None => Ok(PutOutcome::Existing(self.consistent_measurement(&reading.test_id).await?)),
        }
    }

    async fn put_conflict(&self, c: &Conflict<'_>, arrival: &Arrival) -> Result<Recorded, StoreError> {
        let r = c.reading;
        let mut item = HashMap::new();
        item.insert(attr::TEST_ID.into(), s(r.test_id.as_str()));
        item.insert(attr::MEASUREMENT_HASH.into(), s(&c.measurement_hash));
        put_opt_s(&mut item, attr::DEVICE_SN, r.device_sn.as_ref().map(DeviceSn::as_str));
        if let Some(n) = r.serial_no {
            item.insert(attr::SERIAL_NO.into(), n_u(n));
        }
        item.insert(attr::TEST_TIME.into(), s(&r.test_time));
        item.insert(attr::MEASURED_AT.into(), AttributeValue::N(r.measured_at.ms().to_string()));
        item.insert(attr::TEST_RESULT.into(), s(&r.glucose.text));
        item.insert(attr::GLUCOSE_MMOL.into(), AttributeValue::N(format_number(r.glucose.mmol)));
        put_opt_s(&mut item, attr::STATUS, r.status.as_deref());
        item.insert(attr::BODY.into(), AttributeValue::S(String::from_utf8_lossy(c.raw_body).into_owned()));
        put_arrival(&mut item, arrival);
        item.insert(attr::EXPIRES_AT.into(), self.expires_at(arrival.received_at_ms));
        attr::put_new(&self.client, &self.tables.conflicts, attr::TEST_ID, item).await
    }

    async fn put_quarantine(&self, q: &Quarantined<'_>, arrival: &Arrival) -> Result<Recorded, StoreError> {
        let mut item = HashMap::new();
        item.insert(attr::BODY_SHA256.into(), s(&q.body_sha256));
        item.insert(attr::REASON.into(), s(q.reason));
        if !q.body.is_empty() {
            item.insert(attr::BODY.into(), AttributeValue::B(Blob::new(q.body)));
        }
        item.insert(attr::BODY_LENGTH.into(), n_u(q.body_length as u64));
        item.insert(attr::TRUNCATED.into(), AttributeValue::Bool(q.truncated));
        put_arrival(&mut item, arrival);
        item.insert(attr::EXPIRES_AT.into(), self.expires_at(arrival.received_at_ms));
        attr::put_new(&self.client, &self.tables.quarantine, attr::BODY_SHA256, item).await
    }
}

/// The readings-table item for a reading. Every value in it is one DynamoDB accepts because
/// the parser bounded it: keys and text within their byte limits, `f64`s that
/// [`cgm_domain::push::fits_dynamodb_number`], whole numbers as `u64`/`i64` (20 digits at most).
pub fn reading_item(r: &Reading, arrival: &Arrival) -> HashMap<String, AttributeValue> {
    let mut item = HashMap::with_capacity(28);
    item.insert(attr::TEST_ID.into(), s(r.test_id.as_str()));
    put_opt_s(&mut item, attr::DEVICE_SN, r.device_sn.as_ref().map(DeviceSn::as_str));
    item.insert(attr::TEST_RESULT.into(), s(&r.glucose.text));
    item.insert(attr::GLUCOSE_MMOL.into(), AttributeValue::N(format_number(r.glucose.mmol)));
    if let Some(n) = r.serial_no {
        item.insert(attr::SERIAL_NO.into(), n_u(n));
    }
    item.insert(attr::TEST_TIME.into(), s(&r.test_time));
    item.insert(attr::MEASURED_AT.into(), AttributeValue::N(r.measured_at.ms().to_string()));
    if let Some(t) = r.measured_at.utc_text() {
        item.insert(attr::MEASURED_AT_UTC.into(), s(&t));
    }
    put_opt_s(&mut item, attr::STATUS, r.status.as_deref());
    item.insert(attr::VALID.into(), AttributeValue::Bool(r.is_valid()));
    put_opt_s(&mut item, attr::CGM_STATUS, r.cgm_status.as_deref());
    for (name, v) in [(attr::CGM_DAY, r.cgm_day), (attr::INCRE_MINUTE, r.incre_minute)] {
        if let Some(n) = v {
            item.insert(name.into(), n_u(n));
        }
    }
    for (name, v) in [(attr::LOW, r.low), (attr::HIGH, r.high)] {
        match v {
            Threshold::NotSent => {}
            Threshold::Null => {
                item.insert(name.into(), AttributeValue::Null(true));
            }
            Threshold::Mmol(x) => {
                item.insert(name.into(), AttributeValue::N(format_number(x)));
            }
        }
    }
    put_opt_s(&mut item, attr::CUSTOMER_NAME, r.customer_name.as_deref());
    let p = &r.personal;
    for (name, v) in [
        (attr::ID_CARD, &p.id_card),
        (attr::VISIT_ID, &p.visit_id),
        (attr::PATIENT_NAME, &p.patient_name),
        (attr::PATIENT_ID, &p.patient_id),
        (attr::IN_SERIAL_ID, &p.in_serial_id),
    ] {
        put_opt_s(&mut item, name, v.as_ref().map(|v| v.expose().as_str()));
    }
    item.insert(attr::RESERVED_CODE.into(), s("01"));
    if !r.extra_data.is_empty() {
        item.insert(attr::EXTRA_DATA.into(), s(&serde_json::Value::Object(r.extra_data.clone()).to_string()));
    }
    if !r.out_of_range.is_empty() {
        let fields = r.out_of_range.iter().map(|(k, v)| (k.clone(), s(&v.to_string()))).collect();
        item.insert(attr::OUT_OF_RANGE.into(), AttributeValue::M(fields));
    }
    if !r.extra_envelope.is_empty() {
        item.insert(attr::EXTRA_ENVELOPE.into(), s(&serde_json::Value::Object(r.extra_envelope.clone()).to_string()));
    }
    if r.clock_ahead {
        item.insert(attr::CLOCK_AHEAD.into(), AttributeValue::Bool(true));
    }
    put_arrival(&mut item, arrival);
    item
}

/// The measurement of a stored reading, or `None` when the item lacks what defines one.
pub fn measurement_of(item: &HashMap<String, AttributeValue>) -> Option<Measurement> {
    let text = |k: &str| item.get(k).and_then(|v| v.as_s().ok()).cloned();
    let num = |k: &str| item.get(k).and_then(|v| v.as_n().ok());
    Some(Measurement {
        device_sn: text(attr::DEVICE_SN).map(DeviceSn::new),
        serial_no: match num(attr::SERIAL_NO) {
            Some(n) => Some(n.parse().ok()?),
            None => None,
        },
        measured_at: Timestamp::from_ms(num(attr::MEASURED_AT)?.parse().ok()?),
        mmol: num(attr::GLUCOSE_MMOL)?.parse().ok()?,
        status: text(attr::STATUS),
    })
}

fn retention_s(days: u64) -> i64 {
    i64::try_from(days).unwrap_or(i64::MAX).saturating_mul(86_400)
}

fn n_i(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn put_arrival(item: &mut HashMap<String, AttributeValue>, arrival: &Arrival) {
    item.insert(attr::RECEIVED_AT.into(), AttributeValue::N(arrival.received_at_ms.to_string()));
    if !arrival.request_id.is_empty() {
        item.insert(attr::REQUEST_ID.into(), s(&arrival.request_id));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cgm_domain::push::parse_push;
    use cgm_domain::time::SourceZone;
    use chrono::{NaiveDateTime, SecondsFormat};
    use proptest::prelude::*;

    fn s_of<'a>(item: &'a HashMap<String, AttributeValue>, k: &str) -> Option<&'a str> {
        item.get(k).and_then(|v| v.as_s().ok()).map(String::as_str)
    }

    fn n_of<'a>(item: &'a HashMap<String, AttributeValue>, k: &str) -> Option<&'a str> {
        item.get(k).and_then(|v| v.as_n().ok()).map(String::as_str)
    }

    /// Any id Sinocare might send: not blank, at most 1 KiB.
    fn id() -> impl Strategy<Value = String> {
        any::<String>().prop_filter("not blank, at most 1 KiB", |s| !s.trim().is_empty() && s.len() <= 1024)
    }

    const SEED_EXAMPLE: &str = include_str!("../../../../../crates/domain/tests/data/seed-example.json");

    fn seed_with(patch: serde_json::Value) -> Vec<u8> {
        let mut body: serde_json::Value = serde_json::from_str(SEED_EXAMPLE).expect("the seed example");
        for (k, v) in patch.as_object().expect("an object") {
            body["data"][k] = v.clone();
        }
        body.to_string().into_bytes()
    }

    #[test]
    fn clock_ahead_is_true_when_ahead_and_absent_otherwise() {
        // The seed's testTime, 2021-11-02 12:33:33 in China, is 2021-11-02T04:33:33Z.
        let measured = Timestamp::from_ms(1_635_827_613_000);
        let five = std::time::Duration::from_secs(300);
        let arrival = |at: Timestamp| Arrival { received_at_ms: at.ms(), request_id: String::new() };
        let body = seed_with(serde_json::json!({}));
        let early = measured.minus_ms(3_600_000);
        let r = cgm_domain::push::parse_push_arrived(&body, &SourceZone::default(), early, five).expect("a reading");
        assert_eq!(reading_item(&r, &arrival(early)).get(attr::CLOCK_AHEAD), Some(&AttributeValue::Bool(true)));
        let r = cgm_domain::push::parse_push_arrived(&body, &SourceZone::default(), measured, five).expect("a reading");
        assert_eq!(reading_item(&r, &arrival(measured)).get(attr::CLOCK_AHEAD), None);
    }

    #[test]
    fn thresholds_dynamodb_cannot_hold_are_no_number_attribute() {
        let body = seed_with(serde_json::json!({"low": 1e-300, "high": "1e-131"}));
        let r = parse_push(&body, &SourceZone::default()).expect("a reading");
        let item = reading_item(&r, &Arrival { received_at_ms: 7, request_id: String::new() });
        assert_eq!((item.get(attr::LOW), item.get(attr::HIGH)), (None, None));
        let AttributeValue::M(kept) = &item[attr::OUT_OF_RANGE] else { panic!("outOfRange is a map") };
        assert_eq!(kept.get("low"), Some(&s("1e-300")));
        assert_eq!(kept.get("high"), Some(&s("\"1e-131\"")));
        for (name, v) in &item {
            if let AttributeValue::N(n) = v {
                assert!(cgm_domain::push::dynamodb_accepts(n), "{name} = {n}");
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// A valid reading's item holds what was sent: the strings as sent, the value as a
        /// number equal to the text, and the instant 8 hours before the China wall clock.
        #[test]
        fn the_item_holds_what_was_sent(
            test_id in id(),
            device_sn in id(),
            whole in 0u32..=99,
            frac in 0u32..10,
            digits in 0usize..3,
            // China wall clock from 2015-01-01 08:00:00 (2015-01-01T00:00:00Z): earlier is unusable.
            secs in 1_420_099_200i64..4_102_444_800,
            serial in 0u32..=1_000_000,
            status in prop::sample::select(&["0", "1", "7"][..]),
        ) {
            let whole = if whole == 0 && (digits == 0 || frac == 0) { 1 } else { whole };
            let text = match digits {
                0 => whole.to_string(),
                1 => format!("{whole}.{frac}"),
                _ => format!("{whole}.{frac}0"),
            };
            let local: NaiveDateTime = chrono::DateTime::from_timestamp(secs, 0).expect("in range").naive_utc();
            let test_time = local.format("%Y-%m-%d %H:%M:%S").to_string();
            let body = serde_json::json!({
                "reservedCode": "01",
                "data": {"testId": test_id, "deviceSn": device_sn, "testResult": text, "testTime": test_time,
                         "serialNo": serial, "status": status, "cgmStatus": "2", "low": null},
            });
            let reading = parse_push(body.to_string().as_bytes(), &SourceZone::default()).expect("a valid reading");
            let item = reading_item(&reading, &Arrival { received_at_ms: 7, request_id: "req".into() });

            prop_assert_eq!(s_of(&item, attr::TEST_ID), Some(test_id.as_str()));
            prop_assert_eq!(s_of(&item, attr::DEVICE_SN), Some(device_sn.as_str()));
            prop_assert_eq!(s_of(&item, attr::TEST_RESULT), Some(text.as_str()));
            let mmol: f64 = n_of(&item, attr::GLUCOSE_MMOL).expect("glucoseMmol").parse().expect("a number");
            prop_assert_eq!(mmol, text.parse::<f64>().expect("a number"));
            prop_assert_eq!(s_of(&item, attr::TEST_TIME), Some(test_time.as_str()));
            let utc = local.and_utc() - chrono::Duration::hours(8);
            let millis = utc.timestamp_millis().to_string();
            prop_assert_eq!(n_of(&item, attr::MEASURED_AT), Some(millis.as_str()));
            let rfc = utc.to_rfc3339_opts(SecondsFormat::Millis, true);
            prop_assert_eq!(s_of(&item, attr::MEASURED_AT_UTC), Some(rfc.as_str()));
            let serial_text = serial.to_string();
            prop_assert_eq!(n_of(&item, attr::SERIAL_NO), Some(serial_text.as_str()));
            prop_assert_eq!(s_of(&item, attr::STATUS), Some(status));
            prop_assert_eq!(item.get(attr::VALID), Some(&AttributeValue::Bool(status == "0")));
            prop_assert_eq!(item.get(attr::LOW), Some(&AttributeValue::Null(true)));
            prop_assert_eq!(measurement_of(&item), Some(reading.measurement()), "read back as the same measurement");
        }
    }
}
