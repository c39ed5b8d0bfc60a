use super::reading::{Glucose, Personal, Reading, Threshold};
use crate::ids::{DeviceSn, TestId};
use crate::sensitive::Sensitive;
use crate::time::{SourceZone, TimeError, Timestamp};
use serde_json::{Map, Value};

/// Bodies above this are answered 413 and only a stub is kept (docs/sinocare-integration.md: it also keeps a
/// quarantined body far inside DynamoDB's 400 KB item limit).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Longest `testId` / `deviceSn` accepted, in bytes. DynamoDB allows 2,048 for a partition
/// key; anything near that is not an id Sinocare generates, and storing it would fail on
/// every re-send, so it goes to quarantine instead.
pub const MAX_ID_BYTES: usize = 1024;

/// What the spec's numbers can mean: `increMinute` is minutes between readings, `cgmDay`
/// a sensor's days of wear, `serialNo` a reading's number in a sensor's life (a 30-day
/// sensor at one reading a minute takes 43,200; the ceiling leaves room for 23 of those).
/// A value outside its bound is kept as sent and left out of the typed field: the reading,
/// whose glucose and time are valid, is still stored.
pub const INCRE_MINUTE_BOUNDS: std::ops::RangeInclusive<u64> = 1..=60;
pub const CGM_DAY_BOUNDS: std::ops::RangeInclusive<u64> = 1..=30;
pub const SERIAL_NO_BOUNDS: std::ops::RangeInclusive<u64> = 0..=1_000_000;

/// Plausibility ceiling for `testResult` in mmol/L. Meters read up to about 33; a value
/// above 100 is a unit or format error (mg/dL sent as mmol/L), not a reading to chart.
pub const MAX_MMOL: f64 = 100.0;

/// Thresholds are mmol/L or mg/dL, never astronomically large; the bound also keeps the
/// value inside what DynamoDB numbers hold.
pub const MAX_THRESHOLD: f64 = 1e6;

/// Why an authenticated body cannot be stored as a reading. It is quarantined with this
/// reason; the text is short English and never contains any part of the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Unusable {
    #[error("body is not valid UTF-8")]
    NotUtf8,
    #[error("body is empty")]
    Empty,
    #[error("body is not JSON")]
    NotJson,
    #[error("body is not a JSON object")]
    NotObject,
    #[error("reservedCode is missing or unknown")]
    UnknownReservedCode,
    #[error("data is missing or not an object")]
    DataNotObject,
    #[error("testId is missing")]
    TestIdMissing,
    #[error("testId is empty")]
    TestIdEmpty,
    #[error("testId is not a string or number")]
    TestIdWrongType,
    #[error("testId is too long")]
    TestIdTooLong,
    #[error("deviceSn is too long")]
    DeviceSnTooLong,
    #[error("testResult is missing")]
    TestResultMissing,
    #[error("testResult is not a decimal number")]
    TestResultNotDecimal,
    #[error("testResult is not positive")]
    TestResultNotPositive,
    #[error("testResult is above 100 mmol/L")]
    TestResultOutOfRange,
    #[error("testTime is missing")]
    TestTimeMissing,
    #[error("testTime is not a date-time")]
    TestTimeUnparseable,
    #[error("testTime does not exist in SOURCE_TIMEZONE")]
    TestTimeNotInZone,
    #[error("{0} is not a whole number")]
    NotWholeNumber(&'static str),
    #[error("{0} is not a number")]
    NotNumber(&'static str),
}

/// Parses one push body. `Err` means the body must be quarantined, not refused.
pub fn parse_push(body: &[u8], zone: &SourceZone) -> Result<Reading, Unusable> {
    let text = std::str::from_utf8(body).map_err(|_| Unusable::NotUtf8)?;
    if text.trim().is_empty() {
        return Err(Unusable::Empty);
    }
    let root: Value = serde_json::from_str(text).map_err(|_| Unusable::NotJson)?;
    let Value::Object(mut root) = root else {
        return Err(Unusable::NotObject);
    };
    match root.remove("reservedCode") {
        Some(Value::String(code)) if code.trim() == "01" => {}
        _ => return Err(Unusable::UnknownReservedCode),
    }
    let Some(Value::Object(mut data)) = root.remove("data") else {
        return Err(Unusable::DataNotObject);
    };

    let test_id = match data.remove("testId") {
        None | Some(Value::Null) => return Err(Unusable::TestIdMissing),
        Some(Value::String(s)) if s.trim().is_empty() => return Err(Unusable::TestIdEmpty),
        Some(Value::String(s)) => s,
        Some(Value::Number(n)) => n.to_string(),
        Some(_) => return Err(Unusable::TestIdWrongType),
    };
    if test_id.len() > MAX_ID_BYTES {
        return Err(Unusable::TestIdTooLong);
    }
    let device_sn = text_field(&mut data, "deviceSn");
    if device_sn.as_ref().is_some_and(|s| s.len() > MAX_ID_BYTES) {
        return Err(Unusable::DeviceSnTooLong);
    }

    let glucose = glucose(data.remove("testResult"))?;
    let test_time = match data.remove("testTime") {
        Some(Value::String(s)) if !s.trim().is_empty() => s,
        None | Some(Value::Null) | Some(Value::String(_)) => return Err(Unusable::TestTimeMissing),
        Some(_) => return Err(Unusable::TestTimeUnparseable),
    };
    let measured_at = Timestamp(
        zone.to_utc(&test_time)
            .map_err(|e| match e {
                TimeError::Unparseable => Unusable::TestTimeUnparseable,
                TimeError::NotInZone => Unusable::TestTimeNotInZone,
            })?
            .timestamp_millis(),
    );

    let mut out_of_range = Map::new();
    let serial_no = bounded(&mut data, "serialNo", SERIAL_NO_BOUNDS, &mut out_of_range)?;
    let cgm_day = bounded(&mut data, "cgmDay", CGM_DAY_BOUNDS, &mut out_of_range)?;
    let incre_minute = bounded(&mut data, "increMinute", INCRE_MINUTE_BOUNDS, &mut out_of_range)?;
    let low = threshold(&mut data, "low")?;
    let high = threshold(&mut data, "high")?;
    // A blank status is no status: the item leaves empty strings out, so keeping `""` here
    // would make a re-send of the same body compare unequal to what was stored.
    let status = text_field(&mut data, "status").map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
    let cgm_status = text_field(&mut data, "cgmStatus").map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
    let customer_name = text_field(&mut data, "customerName");
    let personal = Personal {
        id_card: text_field(&mut data, "idCard").map(Sensitive::new),
        visit_id: text_field(&mut data, "visitId").map(Sensitive::new),
        patient_name: text_field(&mut data, "patientName").map(Sensitive::new),
        patient_id: text_field(&mut data, "patientId").map(Sensitive::new),
        in_serial_id: text_field(&mut data, "inSerialId").map(Sensitive::new),
    };

    Ok(Reading {
        test_id: TestId::new(test_id),
        device_sn: device_sn.map(DeviceSn::new),
        glucose,
        serial_no,
        test_time,
        measured_at,
        status,
        cgm_status,
        cgm_day,
        incre_minute,
        low,
        high,
        customer_name,
        personal,
        extra_data: data,
        extra_envelope: root,
        out_of_range,
    })
}

/// A whole number within `bounds`; one outside them is recorded in `out_of_range` as sent
/// and read as absent.
fn bounded(
    data: &mut Map<String, Value>,
    name: &'static str,
    bounds: std::ops::RangeInclusive<u64>,
    out_of_range: &mut Map<String, Value>,
) -> Result<Option<u64>, Unusable> {
    let sent = data.get(name).cloned();
    match whole_number(data, name)? {
        Some(n) if !bounds.contains(&n) => {
            out_of_range.insert(name.to_string(), sent.unwrap_or(Value::Null));
            Ok(None)
        }
        n => Ok(n),
    }
}

/// A text field: a string as sent, a number as its decimal text, anything else (a bool, an
/// object) as its JSON text so nothing is lost. Absent, `null` and `""` are `None`.
fn text_field(data: &mut Map<String, Value>, name: &str) -> Option<String> {
    match data.remove(name)? {
        Value::Null => None,
        Value::String(s) if s.is_empty() => None,
        Value::String(s) => Some(s),
        other => Some(other.to_string()),
    }
}

/// `testResult`: mmol/L as a plain decimal (`5.6`, `12`, `.5` is not). A JSON number is
/// taken as its text.
fn glucose(v: Option<Value>) -> Result<Glucose, Unusable> {
    let text = match v {
        None | Some(Value::Null) => return Err(Unusable::TestResultMissing),
        Some(Value::String(s)) => s,
        Some(Value::Number(n)) => n.to_string(),
        Some(_) => return Err(Unusable::TestResultNotDecimal),
    };
    let t = text.trim();
    let digits = t.strip_prefix(['-', '+']).unwrap_or(t);
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let well_formed = !int.is_empty()
        && int.bytes().all(|b| b.is_ascii_digit())
        && frac.bytes().all(|b| b.is_ascii_digit())
        && !(digits.contains('.') && frac.is_empty())
        && digits.len() <= 32;
    if !well_formed {
        return Err(Unusable::TestResultNotDecimal);
    }
    let mmol: f64 = t.parse().map_err(|_| Unusable::TestResultNotDecimal)?;
    // The grammar above admits only finite values.
    if mmol <= 0.0 {
        return Err(Unusable::TestResultNotPositive);
    }
    if mmol > MAX_MMOL {
        return Err(Unusable::TestResultOutOfRange);
    }
    Ok(Glucose { text, mmol })
}

/// A whole number sent as a JSON number (`12`, `12.0`) or a numeric string (`"12"`).
/// Absent, `null` and `""` are `None`.
fn whole_number(data: &mut Map<String, Value>, name: &'static str) -> Result<Option<u64>, Unusable> {
    let bad = Unusable::NotWholeNumber(name);
    match data.remove(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match (n.as_u64(), n.as_f64()) {
            (Some(u), _) => Ok(Some(u)),
            (None, Some(f)) if f >= 0.0 && f.fract() == 0.0 && f < 1e15 => Ok(Some(f as u64)),
            _ => Err(bad),
        },
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => s.trim().parse::<u64>().map(Some).map_err(|_| bad),
        Some(_) => Err(bad),
    }
}

/// `low` / `high`: a number, a numeric string, or `null` (kept as "sent as null").
fn threshold(data: &mut Map<String, Value>, name: &'static str) -> Result<Threshold, Unusable> {
    let bad = Unusable::NotNumber(name);
    let v = match data.remove(name) {
        None => return Ok(Threshold::NotSent),
        Some(Value::Null) => return Ok(Threshold::Null),
        Some(Value::Number(n)) => n.as_f64().ok_or(bad)?,
        Some(Value::String(s)) if s.trim().is_empty() => return Ok(Threshold::Null),
        Some(Value::String(s)) => s.trim().parse::<f64>().map_err(|_| bad)?,
        Some(_) => return Err(bad),
    };
    if !v.is_finite() || v.abs() >= MAX_THRESHOLD {
        return Err(bad);
    }
    Ok(Threshold::Mmol(v))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The seed's example payload, verbatim (Sinocare's push spec, section 1.2.1).
    const SEED_EXAMPLE: &str = include_str!("../../tests/data/seed-example.json");

    fn parse(v: &Value) -> Result<Reading, Unusable> {
        parse_push(v.to_string().as_bytes(), &SourceZone::default())
    }

    fn with_data(patch: Value) -> Value {
        let mut body: Value = serde_json::from_str(SEED_EXAMPLE).unwrap();
        for (k, v) in patch.as_object().unwrap() {
            if v == &json!("__remove__") {
                body["data"].as_object_mut().unwrap().remove(k);
            } else {
                body["data"][k] = v.clone();
            }
        }
        body
    }

    #[test]
    fn numbers_outside_what_the_spec_means_are_kept_as_sent_not_typed() {
        let r =
            parse(&with_data(json!({"increMinute": 576_460_752_303_423_488u64, "cgmDay": 0, "serialNo": "2000000"})))
                .expect("glucose and time are valid: still a reading");
        assert_eq!((r.incre_minute, r.cgm_day, r.serial_no), (None, None, None));
        assert_eq!(r.out_of_range.get("increMinute"), Some(&json!(576_460_752_303_423_488u64)));
        assert_eq!(r.out_of_range.get("cgmDay"), Some(&json!(0)));
        assert_eq!(r.out_of_range.get("serialNo"), Some(&json!("2000000")));
        let r = parse(&with_data(json!({"increMinute": 60, "cgmDay": 30, "serialNo": 1_000_000}))).unwrap();
        assert_eq!((r.incre_minute, r.cgm_day, r.serial_no), (Some(60), Some(30), Some(1_000_000)));
        assert!(r.out_of_range.is_empty());
    }

    #[test]
    fn seed_example_parses_with_every_field() {
        let r = parse_push(SEED_EXAMPLE.as_bytes(), &SourceZone::default()).unwrap();
        assert_eq!(r.test_id, "23434335345");
        assert_eq!(r.device_sn.as_ref().map(DeviceSn::as_str), Some("23xxdrt33"));
        assert_eq!(r.glucose, Glucose { text: "5.6".into(), mmol: 5.6 });
        assert_eq!(r.serial_no, Some(1));
        assert_eq!(r.test_time, "2021-11-02 12:33:33");
        // 2021-11-02T04:33:33Z
        assert_eq!(r.measured_at, Timestamp(1_635_827_613_000));
        assert_eq!(r.status.as_deref(), Some("1"));
        assert!(!r.is_valid(), "status 1 is sensor warm-up");
        assert_eq!(r.cgm_status.as_deref(), Some("2"));
        assert_eq!((r.cgm_day, r.incre_minute), (Some(8), Some(3)));
        assert_eq!((r.low, r.high), (Threshold::Null, Threshold::Null));
        assert_eq!(r.customer_name.as_deref(), Some("测试医院"));
        assert_eq!(r.personal.patient_name.as_ref().map(|s| s.expose().as_str()), Some("张三"));
        assert_eq!(r.personal.id_card.as_ref().map(|s| s.expose().as_str()), Some("430424"));
        assert!(r.extra_data.is_empty() && r.extra_envelope.is_empty() && r.out_of_range.is_empty());
    }

    #[test]
    fn debug_output_hides_personal_data() {
        let r = parse_push(SEED_EXAMPLE.as_bytes(), &SourceZone::default()).unwrap();
        let dbg = format!("{r:?}");
        for canary in ["张三", "430424", "1234321", "12343211"] {
            assert!(!dbg.contains(canary), "{canary} in {dbg}");
        }
    }

    #[test]
    fn numeric_strings_and_numbers_are_accepted_alike() {
        let r = parse(&with_data(
            json!({"serialNo": "12", "cgmDay": "8", "testId": 23434335345u64, "testResult": 5.6, "status": 0}),
        ))
        .unwrap();
        assert_eq!(r.serial_no, Some(12));
        assert_eq!(r.cgm_day, Some(8));
        assert_eq!(r.test_id, "23434335345");
        assert_eq!(r.glucose.mmol, 5.6);
        assert_eq!(r.status.as_deref(), Some("0"));
        assert!(r.is_valid());
    }

    #[test]
    fn thresholds_may_be_numbers_or_null() {
        let r = parse(&with_data(json!({"low": 3.9, "high": "10"}))).unwrap();
        assert_eq!((r.low, r.high), (Threshold::Mmol(3.9), Threshold::Mmol(10.0)));
        let r = parse(&with_data(json!({"low": "__remove__", "high": null}))).unwrap();
        assert_eq!((r.low, r.high), (Threshold::NotSent, Threshold::Null));
    }

    #[test]
    fn unknown_fields_and_enum_values_are_kept() {
        let mut body = with_data(json!({"newField": {"a": 1}, "cgmStatus": "9", "status": "7"}));
        body["traceId"] = json!("t-1");
        let r = parse(&body).unwrap();
        assert_eq!(r.extra_data.get("newField"), Some(&json!({"a": 1})));
        assert_eq!(r.extra_envelope.get("traceId"), Some(&json!("t-1")));
        assert_eq!(r.cgm_status.as_deref(), Some("9"));
        assert_eq!(r.status.as_deref(), Some("7"));
        assert!(!r.is_valid());
    }

    #[test]
    fn blank_statuses_are_absent() {
        // Found by the push_body fuzz target: a status of " " was kept as "", which the stored
        // item leaves out, so an identical re-send looked like a conflict.
        let r = parse(&with_data(json!({"status": "  ", "cgmStatus": " "}))).unwrap();
        assert_eq!((r.status, r.cgm_status), (None, None));
        let r = parse(&with_data(json!({"status": " 0 "}))).unwrap();
        assert_eq!(r.status.as_deref(), Some("0"));
    }

    #[test]
    fn explicit_offset_is_accepted() {
        let r = parse(&with_data(json!({"testTime": "2021-11-02T12:33:33+08:00"}))).unwrap();
        assert_eq!(r.measured_at, Timestamp(1_635_827_613_000));
        assert_eq!(r.test_time, "2021-11-02T12:33:33+08:00");
    }

    #[test]
    fn unusable_bodies_say_why() {
        let z = SourceZone::default();
        let raw = |b: &[u8]| parse_push(b, &z).unwrap_err();
        assert_eq!(raw(b""), Unusable::Empty);
        assert_eq!(raw(b"\xff\xfe"), Unusable::NotUtf8);
        assert_eq!(raw(b"not json"), Unusable::NotJson);
        assert_eq!(raw(b"[1,2]"), Unusable::NotObject);
        assert_eq!(raw(br#"{"reservedCode":"01"}"#), Unusable::DataNotObject);
        assert_eq!(raw(br#"{"reservedCode":"01","data":null}"#), Unusable::DataNotObject);
        assert_eq!(raw(br#"{"reservedCode":"02","data":{}}"#), Unusable::UnknownReservedCode);
        assert_eq!(raw(br#"{"data":{}}"#), Unusable::UnknownReservedCode);

        let cases = [
            (json!({"testId": "__remove__"}), Unusable::TestIdMissing),
            (json!({"testId": ""}), Unusable::TestIdEmpty),
            (json!({"testId": "  "}), Unusable::TestIdEmpty),
            (json!({"testId": ["x"]}), Unusable::TestIdWrongType),
            (json!({"testId": "x".repeat(MAX_ID_BYTES + 1)}), Unusable::TestIdTooLong),
            (json!({"deviceSn": "x".repeat(MAX_ID_BYTES + 1)}), Unusable::DeviceSnTooLong),
            (json!({"testResult": "abc"}), Unusable::TestResultNotDecimal),
            (json!({"testResult": ""}), Unusable::TestResultNotDecimal),
            (json!({"testResult": "5,6"}), Unusable::TestResultNotDecimal),
            (json!({"testResult": "LO"}), Unusable::TestResultNotDecimal),
            (json!({"testResult": "1e3"}), Unusable::TestResultNotDecimal),
            (json!({"testResult": "5."}), Unusable::TestResultNotDecimal),
            (json!({"testResult": "NaN"}), Unusable::TestResultNotDecimal),
            (json!({"testResult": "-1"}), Unusable::TestResultNotPositive),
            (json!({"testResult": "0"}), Unusable::TestResultNotPositive),
            (json!({"testResult": "0.0"}), Unusable::TestResultNotPositive),
            (json!({"testResult": "180"}), Unusable::TestResultOutOfRange),
            (json!({"testResult": null}), Unusable::TestResultMissing),
            (json!({"testTime": "2021-13-45 25:61:00"}), Unusable::TestTimeUnparseable),
            (json!({"testTime": ""}), Unusable::TestTimeMissing),
            (json!({"testTime": "__remove__"}), Unusable::TestTimeMissing),
            (json!({"testTime": 1635827613000u64}), Unusable::TestTimeUnparseable),
            (json!({"serialNo": "twelve"}), Unusable::NotWholeNumber("serialNo")),
            (json!({"serialNo": -1}), Unusable::NotWholeNumber("serialNo")),
            (json!({"increMinute": 2.5}), Unusable::NotWholeNumber("increMinute")),
            (json!({"low": "low"}), Unusable::NotNumber("low")),
            (json!({"serialNo": 1e300}), Unusable::NotWholeNumber("serialNo")),
            (json!({"high": true}), Unusable::NotNumber("high")),
        ];
        for (patch, want) in cases {
            assert_eq!(parse(&with_data(patch.clone())), Err(want), "{patch}");
        }
    }

    #[test]
    fn reasons_never_contain_input() {
        // Every reason is a fixed sentence; a spot check that none formats a value in.
        let msg = Unusable::NotWholeNumber("serialNo").to_string();
        assert_eq!(msg, "serialNo is not a whole number");
    }
}

/// Whatever arrives, the parser answers: a reading that keeps its promises, or a reason.
#[cfg(test)]
mod props {
    use super::*;
    use proptest::prelude::*;

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
    const TRICKY: [&str; 22] = [
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

    /// What any parsed reading promises the code after it.
    fn check(r: &Reading) {
        assert!(!r.test_id.as_str().trim().is_empty() && r.test_id.as_str().len() <= MAX_ID_BYTES);
        assert!(r.device_sn.as_ref().is_none_or(|d| !d.as_str().is_empty() && d.as_str().len() <= MAX_ID_BYTES));
        assert!(r.glucose.mmol > 0.0 && r.glucose.mmol <= MAX_MMOL, "{}", r.glucose.mmol);
        assert_eq!(r.glucose.text.trim().parse::<f64>().ok(), Some(r.glucose.mmol));
        assert!(!r.test_time.trim().is_empty());
        for t in [r.low, r.high].into_iter().filter_map(Threshold::value) {
            assert!(t.is_finite());
        }
    }

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
}
