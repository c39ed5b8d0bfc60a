use super::reading::{Glucose, Personal, Reading, Threshold, fits_dynamodb_number};
use crate::ids::{DeviceSn, TestId};
use crate::sensitive::Sensitive;
use crate::time::{SourceZone, TimeError, Timestamp};
use serde_json::{Map, Value};
use std::time::Duration;

/// Bodies above this are answered 413 and only a stub is kept (docs/sinocare-integration.md: it also keeps a
/// quarantined body far inside DynamoDB's 400 KB item limit).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Longest value accepted, in UTF-8 bytes, for a field that is a DynamoDB key anywhere in
/// the stack: `testId` (the readings table's key), `deviceSn` (the device index's and the
/// sensors table's), `customerName` and `patientId` (the sensors table's index keys).
/// DynamoDB refuses a partition key over 2,048 bytes and a sort key over 1,024, index keys
/// included, and refuses it on every re-send: a Chinese `customerName` reaches 2,048 bytes
/// at 683 characters. 1,024 fits either kind of key, and no id or hospital name Sinocare
/// sends comes near it, so a longer one is quarantined (with a reason naming the field),
/// never stored, never refused.
pub const MAX_ID_BYTES: usize = 1024;

/// Longest value accepted, in UTF-8 bytes, for the other text fields (`visitId`,
/// `inSerialId`, `idCard`, `patientName`, `status`, `cgmStatus`). They are no key today;
/// but a field a kilobyte long is no name, id or status, and bounding it here keeps any
/// later index on it, or copy of it into another table, safe.
pub const MAX_TEXT_BYTES: usize = 1024;

/// The earliest `testTime` accepted: 2015-01-01T00:00:00Z, years before any iCan sensor. An
/// earlier time is a device whose clock was never set (1970, 2000), not a measurement to
/// chart or alert on.
pub const EARLIEST_MEASURED_AT: Timestamp = Timestamp::from_ms(1_420_070_400_000);

/// How far after its arrival a reading may say it was measured and still be stored: a
/// day. Beyond that the time is not a clock running fast but a wrong one (the year
/// 262142), which would sit at the head of the device's history for ever.
pub const MAX_AHEAD_OF_ARRIVAL: Duration = Duration::from_secs(24 * 60 * 60);

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

/// Thresholds are mmol/L or mg/dL, never astronomically large. A threshold at or above it
/// (or one DynamoDB cannot hold, `1e-300`) is kept as sent in `out_of_range`, not typed.
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
    /// A text field over its bound ([`MAX_ID_BYTES`], [`MAX_TEXT_BYTES`]), by name.
    #[error("{0} is too long")]
    TooLong(&'static str),
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
    #[error("testTime is before 2015")]
    TestTimeBefore2015,
    #[error("testTime is more than a day after arrival")]
    TestTimeAfterArrival,
    #[error("{0} is not a whole number")]
    NotWholeNumber(&'static str),
    #[error("{0} is not a number")]
    NotNumber(&'static str),
}

/// How a reading's measured time stands against the push's arrival.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MeasuredTime {
    /// At or before arrival, or after it by no more than the tolerance.
    Plausible,
    /// After arrival by more than the tolerance but within [`MAX_AHEAD_OF_ARRIVAL`]: stored,
    /// flagged `clockAhead`.
    ClockAhead,
}

/// The time rule: a reading measured before 2015 ([`EARLIEST_MEASURED_AT`]) or more than a
/// day after it arrived ([`MAX_AHEAD_OF_ARRIVAL`]) is unusable; one measured more than
/// `clock_ahead` after it arrived is stored but flagged. A reading measured long before it
/// arrived is normal (Sinocare re-sends a backlog).
pub fn measured_time(
    measured_at: Timestamp,
    received_at: Timestamp,
    clock_ahead: Duration,
) -> Result<MeasuredTime, Unusable> {
    if measured_at < EARLIEST_MEASURED_AT {
        return Err(Unusable::TestTimeBefore2015);
    }
    let ahead_ms = measured_at.since(received_at);
    if ahead_ms > millis(MAX_AHEAD_OF_ARRIVAL) {
        return Err(Unusable::TestTimeAfterArrival);
    }
    if ahead_ms > millis(clock_ahead) {
        return Ok(MeasuredTime::ClockAhead);
    }
    Ok(MeasuredTime::Plausible)
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// [`parse_push`] for a push that arrived at `received_at`, with the rules only an arrival
/// time allows ([`measured_time`]): what the push route and cgm-replay call. `Err` means the
/// body must be quarantined, not refused.
pub fn parse_push_arrived(
    body: &[u8],
    zone: &SourceZone,
    received_at: Timestamp,
    clock_ahead: Duration,
) -> Result<Reading, Unusable> {
    let mut reading = parse_push(body, zone)?;
    reading.clock_ahead = measured_time(reading.measured_at, received_at, clock_ahead)? == MeasuredTime::ClockAhead;
    Ok(reading)
}

/// Parses one push body: every rule that needs no clock. `Err` means the body must be
/// quarantined, not refused. Every value of a reading it returns can be stored: each text
/// field within its bound, each number one DynamoDB holds.
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
        return Err(Unusable::TooLong("testId"));
    }
    let device_sn = bounded_text(&mut data, "deviceSn", MAX_ID_BYTES)?;

    let glucose = glucose(data.remove("testResult"))?;
    let test_time = match data.remove("testTime") {
        Some(Value::String(s)) if !s.trim().is_empty() => s,
        None | Some(Value::Null) | Some(Value::String(_)) => return Err(Unusable::TestTimeMissing),
        Some(_) => return Err(Unusable::TestTimeUnparseable),
    };
    let measured_at = Timestamp::from_ms(
        zone.to_utc(&test_time)
            .map_err(|e| match e {
                TimeError::Unparseable => Unusable::TestTimeUnparseable,
                TimeError::NotInZone => Unusable::TestTimeNotInZone,
            })?
            .timestamp_millis(),
    );
    if measured_at < EARLIEST_MEASURED_AT {
        return Err(Unusable::TestTimeBefore2015);
    }

    let mut out_of_range = Map::new();
    let serial_no = bounded(&mut data, "serialNo", SERIAL_NO_BOUNDS, &mut out_of_range)?;
    let cgm_day = bounded(&mut data, "cgmDay", CGM_DAY_BOUNDS, &mut out_of_range)?;
    let incre_minute = bounded(&mut data, "increMinute", INCRE_MINUTE_BOUNDS, &mut out_of_range)?;
    let low = threshold(&mut data, "low", &mut out_of_range)?;
    let high = threshold(&mut data, "high", &mut out_of_range)?;
    // A blank status is no status: the item leaves empty strings out, so keeping `""` here
    // would make a re-send of the same body compare unequal to what was stored.
    let status =
        bounded_text(&mut data, "status", MAX_TEXT_BYTES)?.map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
    let cgm_status =
        bounded_text(&mut data, "cgmStatus", MAX_TEXT_BYTES)?.map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
    let customer_name = bounded_text(&mut data, "customerName", MAX_ID_BYTES)?;
    let personal = Personal {
        id_card: bounded_text(&mut data, "idCard", MAX_TEXT_BYTES)?.map(Sensitive::new),
        visit_id: bounded_text(&mut data, "visitId", MAX_TEXT_BYTES)?.map(Sensitive::new),
        patient_name: bounded_text(&mut data, "patientName", MAX_TEXT_BYTES)?.map(Sensitive::new),
        patient_id: bounded_text(&mut data, "patientId", MAX_ID_BYTES)?.map(Sensitive::new),
        in_serial_id: bounded_text(&mut data, "inSerialId", MAX_TEXT_BYTES)?.map(Sensitive::new),
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
        clock_ahead: false,
    })
}

/// A whole number within `bounds`; one outside them (negative, or beyond any `u64`: 39
/// digits) is recorded in `out_of_range` as sent and read as absent.
fn bounded(
    data: &mut Map<String, Value>,
    name: &'static str,
    bounds: std::ops::RangeInclusive<u64>,
    out_of_range: &mut Map<String, Value>,
) -> Result<Option<u64>, Unusable> {
    let Some(sent) = data.remove(name) else { return Ok(None) };
    match whole_number(&sent, name)? {
        Whole::Absent => Ok(None),
        Whole::Of(n) if bounds.contains(&n) => Ok(Some(n)),
        Whole::Of(_) | Whole::Outside => {
            out_of_range.insert(name.to_string(), sent);
            Ok(None)
        }
    }
}

/// [`text_field`] at most `max_bytes` long (UTF-8); a longer one makes the body unusable.
fn bounded_text(
    data: &mut Map<String, Value>,
    name: &'static str,
    max_bytes: usize,
) -> Result<Option<String>, Unusable> {
    match text_field(data, name) {
        Some(s) if s.len() > max_bytes => Err(Unusable::TooLong(name)),
        v => Ok(v),
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

/// What a whole-number field holds.
enum Whole {
    /// Absent, `null` or `""`.
    Absent,
    Of(u64),
    /// A whole number no `u64` holds: negative, or above 10^15 (a JSON number beyond that
    /// arrives as an `f64` whose units are not exact).
    Outside,
}

/// A whole number sent as a JSON number (`12`, `12.0`, `-1`, `1e300`) or a string of digits
/// (`"12"`, `"-1"`, 39 digits). Anything else (`2.5`, `"twelve"`, `true`) is not one.
fn whole_number(v: &Value, name: &'static str) -> Result<Whole, Unusable> {
    let bad = Unusable::NotWholeNumber(name);
    match v {
        Value::Null => Ok(Whole::Absent),
        Value::Number(n) => match (n.as_u64(), n.as_i64(), n.as_f64()) {
            (Some(u), _, _) => Ok(Whole::Of(u)),
            (None, Some(_), _) => Ok(Whole::Outside),
            (None, None, Some(f)) if f.fract() == 0.0 && (0.0..1e15).contains(&f) => Ok(Whole::Of(f as u64)),
            (None, None, Some(f)) if f.fract() == 0.0 => Ok(Whole::Outside),
            _ => Err(bad),
        },
        Value::String(s) if s.trim().is_empty() => Ok(Whole::Absent),
        Value::String(s) => {
            let t = s.trim();
            let digits = t.strip_prefix(['-', '+']).unwrap_or(t);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad);
            }
            Ok(t.parse::<u64>().map_or(Whole::Outside, Whole::Of))
        }
        _ => Err(bad),
    }
}

/// `low` / `high`: a number, a numeric string, or `null` (kept as "sent as null"). A number
/// no threshold can be (at or above [`MAX_THRESHOLD`]) or no DynamoDB number can hold
/// (`1e-300`) is recorded in `out_of_range` as sent and read as not sent: storing it would
/// have DynamoDB refuse the whole reading on every re-send.
fn threshold(
    data: &mut Map<String, Value>,
    name: &'static str,
    out_of_range: &mut Map<String, Value>,
) -> Result<Threshold, Unusable> {
    let bad = Unusable::NotNumber(name);
    let Some(sent) = data.remove(name) else { return Ok(Threshold::NotSent) };
    let v = match &sent {
        Value::Null => return Ok(Threshold::Null),
        Value::Number(n) => n.as_f64().ok_or(bad)?,
        Value::String(s) if s.trim().is_empty() => return Ok(Threshold::Null),
        Value::String(s) => s.trim().parse::<f64>().map_err(|_| bad)?,
        _ => return Err(bad),
    };
    // "inf" and "NaN" parse as f64 but are no number a device means.
    if !v.is_finite() {
        return Err(bad);
    }
    if v.abs() >= MAX_THRESHOLD || !fits_dynamodb_number(v) {
        out_of_range.insert(name.to_string(), sent);
        return Ok(Threshold::NotSent);
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
        assert_eq!(r.measured_at, Timestamp::from_ms(1_635_827_613_000));
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
        assert_eq!(r.measured_at, Timestamp::from_ms(1_635_827_613_000));
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
            (json!({"testId": "x".repeat(MAX_ID_BYTES + 1)}), Unusable::TooLong("testId")),
            (json!({"deviceSn": "x".repeat(MAX_ID_BYTES + 1)}), Unusable::TooLong("deviceSn")),
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
            (json!({"testTime": "2014-12-31 23:59:59"}), Unusable::TestTimeBefore2015),
            (json!({"testTime": "1970-01-01 08:00:00"}), Unusable::TestTimeBefore2015),
            (json!({"serialNo": "twelve"}), Unusable::NotWholeNumber("serialNo")),
            (json!({"serialNo": "12.0"}), Unusable::NotWholeNumber("serialNo")),
            (json!({"serialNo": "-"}), Unusable::NotWholeNumber("serialNo")),
            (json!({"increMinute": 2.5}), Unusable::NotWholeNumber("increMinute")),
            (json!({"low": "low"}), Unusable::NotNumber("low")),
            (json!({"low": "NaN"}), Unusable::NotNumber("low")),
            (json!({"high": "inf"}), Unusable::NotNumber("high")),
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
        assert_eq!(Unusable::TooLong("patientId").to_string(), "patientId is too long");
    }

    /// The fields that are a DynamoDB key somewhere in the stack, and the others.
    const KEY_FIELDS: [&str; 4] = ["testId", "deviceSn", "customerName", "patientId"];
    const TEXT_FIELDS: [&str; 6] = ["visitId", "inSerialId", "idCard", "patientName", "status", "cgmStatus"];

    #[test]
    fn every_text_field_is_bounded_in_utf8_bytes_with_its_own_reason() {
        for (field, max) in
            KEY_FIELDS.iter().map(|f| (*f, MAX_ID_BYTES)).chain(TEXT_FIELDS.iter().map(|f| (*f, MAX_TEXT_BYTES)))
        {
            // ASCII: exactly at the bound, and one byte over.
            assert!(parse(&with_data(json!({field: "7".repeat(max)}))).is_ok(), "{field} at {max} bytes");
            assert_eq!(
                parse(&with_data(json!({field: "7".repeat(max + 1)}))),
                Err(Unusable::TooLong(field)),
                "{field} one byte over"
            );
            // Chinese: three bytes a character, so 341 characters fit and 342 do not.
            let fit = "院".repeat(max / 3);
            let over = "院".repeat(max / 3 + 1);
            assert!(parse(&with_data(json!({field: fit}))).is_ok(), "{field}: {} characters", max / 3);
            assert_eq!(parse(&with_data(json!({field: over}))), Err(Unusable::TooLong(field)), "{field} in Chinese");
            // A value that is no string is kept as its JSON text, and bounded as that.
            if field != "testId" {
                let as_array = json!(["x".repeat(max)]);
                assert_eq!(parse(&with_data(json!({field: as_array}))), Err(Unusable::TooLong(field)), "{field}");
            }
        }
    }

    #[test]
    fn a_2100_character_customer_name_or_patient_id_is_unusable() {
        // The issue's case: DynamoDB refused it as an index key, and the route answered 503 for ever.
        for field in ["customerName", "patientId"] {
            for v in ["x".repeat(2_100), "医".repeat(2_100), "医".repeat(683)] {
                assert_eq!(parse(&with_data(json!({field: v}))), Err(Unusable::TooLong(field)));
            }
        }
    }

    #[test]
    fn thresholds_dynamodb_cannot_hold_are_kept_as_sent_not_typed() {
        let r = parse(&with_data(json!({"low": 1e-300, "high": "1e-131"}))).expect("still a reading");
        assert_eq!((r.low, r.high), (Threshold::NotSent, Threshold::NotSent));
        assert_eq!(r.out_of_range.get("low"), Some(&json!(1e-300)));
        assert_eq!(r.out_of_range.get("high"), Some(&json!("1e-131")));

        // A string, parsed exactly: serde_json reads the JSON number 1e-130 a unit in the last
        // place low, which DynamoDB would refuse, so that one is kept as sent.
        let r = parse(&with_data(json!({"low": "1e-130", "high": "-1E-130"}))).unwrap();
        assert_eq!((r.low, r.high), (Threshold::Mmol(1e-130), Threshold::Mmol(-1e-130)), "the smallest DynamoDB holds");
        assert!(r.out_of_range.is_empty());
        let r = parse(&with_data(json!({"low": 2e-130}))).unwrap();
        assert_eq!(r.low.value().map(fits_dynamodb_number), Some(true));

        let r = parse(&with_data(json!({"low": 999_999.9, "high": 1e6}))).unwrap();
        assert_eq!((r.low, r.high), (Threshold::Mmol(999_999.9), Threshold::NotSent));
        assert_eq!(r.out_of_range.get("high"), Some(&json!(1e6)));

        let digits39 = "123456789012345678901234567890123456789";
        let r = parse(&with_data(json!({"low": digits39, "high": 0}))).unwrap();
        assert_eq!((r.low, r.high), (Threshold::NotSent, Threshold::Mmol(0.0)));
        assert_eq!(r.out_of_range.get("low"), Some(&json!(digits39)));
    }

    #[test]
    fn whole_numbers_no_u64_holds_are_kept_as_sent_not_typed() {
        let digits39 = "123456789012345678901234567890123456789";
        let r = parse(&with_data(json!({"serialNo": -1, "cgmDay": digits39, "increMinute": 1e300})))
            .expect("glucose and time are valid: still a reading");
        assert_eq!((r.serial_no, r.cgm_day, r.incre_minute), (None, None, None));
        assert_eq!(r.out_of_range.get("serialNo"), Some(&json!(-1)));
        assert_eq!(r.out_of_range.get("cgmDay"), Some(&json!(digits39)));
        assert_eq!(r.out_of_range.get("increMinute"), Some(&json!(1e300)));
        let r =
            parse(&with_data(json!({"serialNo": 18_446_744_073_709_551_615u64, "cgmDay": "-3", "increMinute": 3.0})))
                .unwrap();
        assert_eq!((r.serial_no, r.cgm_day, r.incre_minute), (None, None, Some(3)));
        assert_eq!(r.out_of_range.len(), 2);
    }

    /// 2024-05-01T00:00:00Z, as epoch ms.
    const ARRIVED: Timestamp = Timestamp::from_ms(1_714_521_600_000);
    const FIVE_MINUTES: Duration = Duration::from_secs(300);
    const MINUTE: i64 = 60_000;
    const DAY: i64 = 86_400_000;

    #[test]
    fn the_time_rule_at_its_edges() {
        let at = |ms: i64| measured_time(ARRIVED.plus_ms(ms), ARRIVED, FIVE_MINUTES);
        assert_eq!(at(0), Ok(MeasuredTime::Plausible));
        assert_eq!(at(-400 * DAY), Ok(MeasuredTime::Plausible), "a backlog re-sent late is normal");
        assert_eq!(at(5 * MINUTE), Ok(MeasuredTime::Plausible));
        assert_eq!(at(5 * MINUTE + 1), Ok(MeasuredTime::ClockAhead));
        assert_eq!(at(DAY), Ok(MeasuredTime::ClockAhead));
        assert_eq!(at(DAY + 1), Err(Unusable::TestTimeAfterArrival));
        assert_eq!(at(i64::MAX), Err(Unusable::TestTimeAfterArrival), "saturates, never overflows");
        let early = |ms: i64| measured_time(Timestamp::from_ms(ms), ARRIVED, FIVE_MINUTES);
        assert_eq!(early(EARLIEST_MEASURED_AT.ms()), Ok(MeasuredTime::Plausible));
        assert_eq!(early(EARLIEST_MEASURED_AT.ms() - 1), Err(Unusable::TestTimeBefore2015));
        assert_eq!(early(i64::MIN), Err(Unusable::TestTimeBefore2015));
        assert_eq!(early(0), Err(Unusable::TestTimeBefore2015));
    }

    #[test]
    fn the_year_262142_is_more_than_a_day_after_arrival() {
        // The issue's case: it was stored and then held the stream consumer for ever.
        let body = with_data(json!({"testTime": "+262142-12-31 20:00:00"})).to_string();
        let z = SourceZone::default();
        assert!(parse_push(body.as_bytes(), &z).is_ok(), "no rule without a clock refuses it");
        assert_eq!(parse_push_arrived(body.as_bytes(), &z, ARRIVED, FIVE_MINUTES), Err(Unusable::TestTimeAfterArrival));
    }

    #[test]
    fn a_reading_from_a_clock_running_ahead_is_flagged() {
        let z = SourceZone::default();
        // Arrival 2024-05-01T00:00:00Z is 08:00:00 in China.
        let read = |t: &str| {
            let body = with_data(json!({"testTime": t})).to_string();
            parse_push_arrived(body.as_bytes(), &z, ARRIVED, FIVE_MINUTES)
        };
        assert!(!read("2024-05-01 08:05:00").unwrap().clock_ahead);
        assert!(!read("2024-04-30 08:00:00").unwrap().clock_ahead);
        assert!(read("2024-05-01 08:05:01").unwrap().clock_ahead);
        assert!(read("2024-05-02 08:00:00").unwrap().clock_ahead);
        assert_eq!(read("2024-05-02 08:00:01"), Err(Unusable::TestTimeAfterArrival));
        assert_eq!(read("2015-01-01 07:59:59"), Err(Unusable::TestTimeBefore2015));
        assert!(read("2015-01-01 08:00:00").is_ok(), "2015-01-01T00:00:00Z itself is accepted");
        assert!(!parse(&with_data(json!({}))).unwrap().clock_ahead, "parse_push never flags");
    }
}
