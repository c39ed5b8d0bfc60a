use crate::ids::{DeviceSn, TestId};
use crate::sensitive::Sensitive;
use crate::time::Timestamp;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// One CGM reading as Sinocare pushed it: the originals kept, the typed values beside them.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    /// Sinocare's unique id of the measurement (a JSON number arrives as its decimal text).
    pub test_id: TestId,
    pub device_sn: Option<DeviceSn>,
    pub glucose: Glucose,
    pub serial_no: Option<u64>,
    /// `testTime` exactly as sent.
    pub test_time: String,
    /// The instant of `testTime`.
    pub measured_at: Timestamp,
    /// `status` as sent (`"0"` valid, `"1"` invalid: sensor warm-up; others kept).
    pub status: Option<String>,
    pub cgm_status: Option<String>,
    pub cgm_day: Option<u64>,
    pub incre_minute: Option<u64>,
    /// The device's alert thresholds, mmol/L.
    pub low: Threshold,
    pub high: Threshold,
    pub customer_name: Option<String>,
    pub personal: Personal,
    /// Fields of `data` this version does not know, kept as sent.
    pub extra_data: Map<String, Value>,
    /// Top-level fields besides `data` and `reservedCode`, kept as sent.
    pub extra_envelope: Map<String, Value>,
    /// Numeric fields outside what the spec means (`increMinute` 2^59) or outside what a
    /// DynamoDB number holds (`low` 1e-300), as sent; their typed fields are absent.
    pub out_of_range: Map<String, Value>,
    /// Measured more than `CLOCK_AHEAD_MINUTES` after the push arrived (but within the day
    /// [`crate::push::parse_push_arrived`] allows): the device's clock runs ahead. Stored and
    /// flagged so the alert path does not take it for the sensor's latest reading. Always
    /// false from [`crate::push::parse_push`], which knows no arrival.
    pub clock_ahead: bool,
}

/// The patient's personal data. Stored with the reading (it is the company's record), but
/// never logged: every field prints as `<redacted>`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Personal {
    pub id_card: Option<Sensitive<String>>,
    pub visit_id: Option<Sensitive<String>>,
    pub patient_name: Option<Sensitive<String>>,
    pub patient_id: Option<Sensitive<String>>,
    pub in_serial_id: Option<Sensitive<String>>,
}

/// A device's `low` or `high` alert threshold as pushed: absent, sent as `null` (or blank),
/// or a number (mmol/L). Absent and `null` are stored differently, so both are kept. A
/// number no threshold can be (`1e-300`, `1e7`) is `NotSent` here and kept as sent in
/// [`Reading::out_of_range`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Threshold {
    NotSent,
    Null,
    Mmol(f64),
}

impl Threshold {
    pub fn value(self) -> Option<f64> {
        match self {
            Threshold::Mmol(v) => Some(v),
            Threshold::NotSent | Threshold::Null => None,
        }
    }
}

/// `testResult`: glucose in mmol/L, as the decimal string sent and as a number.
#[derive(Debug, Clone, PartialEq)]
pub struct Glucose {
    pub text: String,
    pub mmol: f64,
}

impl Reading {
    /// A reading is valid only when Sinocare says so (`status` `0`); warm-up values
    /// (`1`) and statuses this version does not know are stored but not counted as valid.
    pub fn is_valid(&self) -> bool {
        self.status.as_deref() == Some("0")
    }

    pub fn measurement(&self) -> Measurement {
        Measurement {
            device_sn: self.device_sn.clone(),
            serial_no: self.serial_no,
            measured_at: self.measured_at,
            mmol: self.glucose.mmol,
            status: self.status.clone(),
        }
    }
}

/// What makes two deliveries of one `testId` the same reading. `cgmStatus` ("the sensor's
/// latest state") and the patient fields may change between sends without making a
/// conflict.
#[derive(Debug, Clone, PartialEq)]
pub struct Measurement {
    pub device_sn: Option<DeviceSn>,
    pub serial_no: Option<u64>,
    pub measured_at: Timestamp,
    pub mmol: f64,
    pub status: Option<String>,
}

impl Measurement {
    /// SHA-256 (hex) of a canonical encoding: conflicting re-sends of one body collapse
    /// onto one key.
    pub fn hash(&self) -> String {
        let canonical = serde_json::json!([
            self.device_sn,
            self.serial_no,
            self.measured_at.ms(),
            format_number(self.mmol),
            self.status,
        ]);
        hex::encode(Sha256::digest(canonical.to_string().as_bytes()))
    }
}

/// The shortest decimal text that reads back as the same `f64`, never in exponent form
/// (so DynamoDB and people read it alike). Only a value [`fits_dynamodb_number`] may be
/// written as a number attribute.
pub fn format_number(v: f64) -> String {
    format!("{v}")
}

/// The smallest non-zero magnitude a DynamoDB number holds (1E-130).
pub const DYNAMODB_MIN_MAGNITUDE: f64 = 1e-130;
/// Every DynamoDB number is below this magnitude (its largest is 9.99…9E+125, 38 nines).
/// The `f64` nearest 1E+126 is itself refused: `format_number` writes it as 1 and 126 zeros.
pub const DYNAMODB_MAGNITUDE_BOUND: f64 = 1e126;
/// The most significant digits a DynamoDB number holds.
pub const DYNAMODB_MAX_DIGITS: usize = 38;

/// Whether DynamoDB accepts `format_number(v)` as a number attribute. It refuses the whole
/// item otherwise (`ValidationException`), on every re-send: a value that fails this must
/// never reach a number attribute. Whole numbers held as `u64`/`i64` always fit (at most 20
/// digits); this is for the `f64`s.
pub fn fits_dynamodb_number(v: f64) -> bool {
    if !v.is_finite() {
        return false;
    }
    if v != 0.0 && !(DYNAMODB_MIN_MAGNITUDE..DYNAMODB_MAGNITUDE_BOUND).contains(&v.abs()) {
        return false;
    }
    // An f64's shortest text has at most 17 significant digits; counted anyway, so the
    // promise does not rest on how `format_number` is written.
    significant_digits(&format_number(v)) <= DYNAMODB_MAX_DIGITS
}

/// Significant digits of a plain decimal text (no exponent): leading and trailing zeros
/// are not significant, as DynamoDB counts them.
fn significant_digits(text: &str) -> usize {
    let digits: String = text.chars().filter(char::is_ascii_digit).collect();
    digits.trim_start_matches('0').trim_end_matches('0').len()
}

/// DynamoDB's rule for a number's text, written from its documentation (and what
/// DynamoDB Local answers) independently of [`fits_dynamodb_number`]: at most 38
/// significant digits, and zero or a magnitude from 1E-130 to 9.99…9E+125. The oracle the
/// tests of the parser and of the stores check numbers against (panics on a malformed
/// exponent).
pub fn dynamodb_accepts(text: &str) -> bool {
    let t = text.trim_start_matches(['-', '+']);
    let (mantissa, exp) = match t.split_once(['e', 'E']) {
        Some((m, e)) => (m, e.parse::<i64>().expect("an exponent")),
        None => (t, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let all: String = format!("{int}{frac}");
    let Some(first) = all.find(|c: char| c != '0') else { return true };
    let significant = all.trim_start_matches('0').trim_end_matches('0').len();
    // The power of ten of the first significant digit.
    let lead = int.len() as i64 - 1 - first as i64 + exp;
    significant <= 38 && (-130..=125).contains(&lead)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m() -> Measurement {
        Measurement {
            device_sn: Some("sn".into()),
            serial_no: Some(1),
            measured_at: Timestamp::from_ms(1),
            mmol: 5.6,
            status: Some("0".into()),
        }
    }

    #[test]
    fn measurement_hash_depends_on_every_field() {
        let base = m().hash();
        assert_eq!(base, m().hash());
        assert_eq!(base.len(), 64);
        let variants = [
            Measurement { device_sn: None, ..m() },
            Measurement { serial_no: Some(2), ..m() },
            Measurement { measured_at: Timestamp::from_ms(2), ..m() },
            Measurement { mmol: 5.7, ..m() },
            Measurement { status: Some("1".into()), ..m() },
        ];
        for v in variants {
            assert_ne!(v.hash(), base, "{v:?}");
        }
    }

    #[test]
    fn the_oracle_agrees_with_dynamodb_local() {
        // What DynamoDB Local answered to these texts (ValidationException for the false ones).
        for (text, ok) in [
            ("1e-130", true),
            ("1e-131", false),
            (&format!("0.{}1", "0".repeat(129)), true),
            (&format!("0.{}1", "0".repeat(130)), false),
            (&format!("1{}", "0".repeat(125)), true),
            (&format!("1{}", "0".repeat(126)), false),
            ("99999999999999999999999999999999999999", true),
            ("999999999999999999999999999999999999999", false),
            ("9.9999999999999999999999999999999999999E+125", true),
            ("1E+126", false),
            ("-0", true),
        ] {
            assert_eq!(dynamodb_accepts(text), ok, "{text}");
        }
    }

    #[test]
    fn storable_numbers_at_the_edges() {
        for v in [
            0.0,
            -0.0,
            5.6,
            -5.6,
            1e-130,
            -1e-130,
            f64::from_bits(DYNAMODB_MIN_MAGNITUDE.to_bits() + 1),
            9.99999999999999e125,
            -9.99999999999999e125,
            1.2345678901234567e-120,
            f64::MIN_POSITIVE * 1e200,
        ] {
            assert!(fits_dynamodb_number(v), "{v:e}");
            assert!(dynamodb_accepts(&format_number(v)), "{v:e} as {}", format_number(v));
        }
        for v in [
            1e-300,
            1e-131,
            9.99999999999999e-131,
            -1e-131,
            f64::MIN_POSITIVE,
            5e-324,
            1e126,
            -1e126,
            1e300,
            f64::MAX,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::NAN,
        ] {
            assert!(!fits_dynamodb_number(v), "{v:e}");
            if v.is_finite() {
                assert!(!dynamodb_accepts(&format_number(v)), "{v:e} as {}", format_number(v));
            }
        }
        // The f64 just below each bound's own f64 is on the other side.
        assert!(!fits_dynamodb_number(f64::from_bits(DYNAMODB_MIN_MAGNITUDE.to_bits() - 1)));
        assert!(fits_dynamodb_number(f64::from_bits(DYNAMODB_MAGNITUDE_BOUND.to_bits() - 1)));
    }

    #[test]
    fn significant_digits_ignore_leading_and_trailing_zeros() {
        assert_eq!(significant_digits("0.000120"), 2);
        assert_eq!(significant_digits("-1000"), 1);
        assert_eq!(significant_digits("0"), 0);
        assert_eq!(significant_digits("12.5"), 3);
    }

    #[test]
    fn numbers_are_formatted_without_exponents() {
        assert_eq!(format_number(5.6), "5.6");
        assert_eq!(format_number(12.0), "12");
        assert_eq!(format_number(0.001), "0.001");
    }
}
