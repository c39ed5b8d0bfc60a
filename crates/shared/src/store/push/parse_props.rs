//! Whatever arrives, the parser answers: a reading that keeps its promises, or a reason;
//! and the item a parsed reading becomes holds only what DynamoDB accepts. (A property test
//! of the parser and the push store together, so it lives with the store.)

use crate::store::attr;
use crate::store::push::dynamodb::reading_item;
use aws_sdk_dynamodb::types::AttributeValue;
use cgm_domain::push::{
    EARLIEST_MEASURED_AT, MAX_ID_BYTES, MAX_MMOL, MAX_TEXT_BYTES, MAX_THRESHOLD, Reading, Threshold, dynamodb_accepts,
    parse_push,
};
use cgm_domain::store::push::Arrival;
use cgm_domain::time::SourceZone;
use proptest::prelude::*;
use serde_json::{Map, Value};

const FIELDS: [&str; 20] = [
    "testId",
    "deviceSn",
    "testResult",
    "serialNo",
    "testTime",
    "idCard",
    "visitId",
    "patientName",
    "customerName",
    "patientId",
    "inSerialId",
    "status",
    "cgmDay",
    "increMinute",
    "low",
    "high",
    "cgmStatus",
    "data",
    "reservedCode",
    "x",
];
/// Strings near the edges of what the parser accepts.
const TRICKY: [&str; 29] = [
    "01",
    " 01 ",
    "",
    "  ",
    "5.6",
    "5.",
    ".5",
    "-1",
    "0",
    "100",
    "100.0000001",
    "1e3",
    "NaN",
    "inf",
    "5,6",
    "LO",
    "2021-11-02 12:33:33",
    "2021-11-02T12:33:33+08:00",
    "2024-03-31 02:30:00",
    "2021-13-45 25:61:00",
    "12",
    "\u{0}",
    "1e-300",
    "1e-131",
    "1e-130",
    "123456789012345678901234567890123456789",
    "-1",
    "+262142-12-31 20:00:00",
    "2014-12-31 23:59:59",
];

pub fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        any::<String>().prop_map(Value::String),
        prop::sample::select(&TRICKY[..]).prop_map(|s| Value::String(s.to_string())),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(key(), inner, 0..6).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![prop::sample::select(&FIELDS[..]).prop_map(str::to_string), any::<String>()]
}

/// Bodies shaped like a push, with any values in its fields.
fn envelope() -> impl Strategy<Value = Value> {
    (
        prop::sample::select(&["01", " 01", "02", ""][..]),
        prop::collection::btree_map(key(), json_value(), 0..18),
        prop::collection::btree_map(key(), json_value(), 0..3),
    )
        .prop_map(|(code, data, extra)| {
            let mut root: Map<String, Value> = extra.into_iter().collect();
            root.insert("reservedCode".into(), Value::String(code.into()));
            root.insert("data".into(), Value::Object(data.into_iter().collect()));
            Value::Object(root)
        })
}

fn zones() -> impl Strategy<Value = SourceZone> {
    prop_oneof![
        Just(SourceZone::default()),
        Just("Europe/Berlin".parse::<SourceZone>().expect("a zone")),
        Just("-05:30".parse::<SourceZone>().expect("a zone")),
    ]
}

/// What any parsed reading promises the code after it, and its item promises DynamoDB:
/// every key within [`MAX_ID_BYTES`], every other text within [`MAX_TEXT_BYTES`], every
/// number one DynamoDB holds.
fn check(r: &Reading) {
    assert!(!r.test_id.as_str().trim().is_empty() && r.test_id.as_str().len() <= MAX_ID_BYTES);
    assert!(r.device_sn.as_ref().is_none_or(|d| !d.as_str().is_empty() && d.as_str().len() <= MAX_ID_BYTES));
    assert!(r.glucose.mmol > 0.0 && r.glucose.mmol <= MAX_MMOL, "{}", r.glucose.mmol);
    assert_eq!(r.glucose.text.trim().parse::<f64>().ok(), Some(r.glucose.mmol));
    assert!(!r.test_time.trim().is_empty());
    assert!(r.measured_at >= EARLIEST_MEASURED_AT);
    for t in [r.low, r.high].into_iter().filter_map(Threshold::value) {
        assert!(t.is_finite() && t.abs() < MAX_THRESHOLD);
    }
    let item = reading_item(r, &Arrival { received_at_ms: 1_714_521_600_000, request_id: "req".into() });
    for (name, v) in &item {
        match v {
            AttributeValue::N(n) => assert!(dynamodb_accepts(n), "{name} = {n}"),
            AttributeValue::S(text) if KEYS.contains(&name.as_str()) => {
                assert!(text.len() <= MAX_ID_BYTES, "{name}")
            }
            AttributeValue::S(text) if BOUNDED.contains(&name.as_str()) => {
                assert!(text.len() <= MAX_TEXT_BYTES, "{name}")
            }
            _ => {}
        }
    }
}

const KEYS: [&str; 4] = [attr::TEST_ID, attr::DEVICE_SN, attr::CUSTOMER_NAME, attr::PATIENT_ID];
const BOUNDED: [&str; 6] =
    [attr::VISIT_ID, attr::IN_SERIAL_ID, attr::ID_CARD, attr::PATIENT_NAME, attr::STATUS, attr::CGM_STATUS];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512), zone in zones()) {
        if let Ok(r) = parse_push(&bytes, &zone) {
            check(&r);
        }
    }

    #[test]
    fn arbitrary_json_never_panics(v in json_value(), zone in zones()) {
        if let Ok(r) = parse_push(v.to_string().as_bytes(), &zone) {
            check(&r);
        }
    }

    #[test]
    fn push_shaped_bodies_parse_or_say_why(v in envelope(), zone in zones()) {
        match parse_push(v.to_string().as_bytes(), &zone) {
            Ok(r) => check(&r),
            // The reason is one of the fixed sentences: it never echoes the body.
            Err(why) => prop_assert!(why.to_string().len() < 64),
        }
    }
}
