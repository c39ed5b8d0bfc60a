use crate::sensitive::Sensitive;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// One CGM reading as Sinocare pushed it: the originals kept, the typed values beside them.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    /// Sinocare's unique id of the measurement (a JSON number arrives as its decimal text).
    pub test_id: String,
    pub device_sn: Option<String>,
    pub glucose: Glucose,
    pub serial_no: Option<u64>,
    /// `testTime` exactly as sent.
    pub test_time: String,
    /// The instant of `testTime`, in milliseconds since the Unix epoch (UTC).
    pub measured_at_ms: i64,
    /// `status` as sent (`"0"` valid, `"1"` invalid: sensor warm-up; others kept).
    pub status: Option<String>,
    pub cgm_status: Option<String>,
    pub cgm_day: Option<u64>,
    pub incre_minute: Option<u64>,
    /// Thresholds: `Some(None)` when sent as `null`, `None` when absent.
    pub low: Option<Option<f64>>,
    pub high: Option<Option<f64>>,
    pub customer_name: Option<String>,
    pub personal: Personal,
    /// Fields of `data` this version does not know, kept as sent.
    pub extra_data: Map<String, Value>,
    /// Top-level fields besides `data` and `reservedCode`, kept as sent.
    pub extra_envelope: Map<String, Value>,
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
            measured_at_ms: self.measured_at_ms,
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
    pub device_sn: Option<String>,
    pub serial_no: Option<u64>,
    pub measured_at_ms: i64,
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
            self.measured_at_ms,
            format_number(self.mmol),
            self.status,
        ]);
        hex::encode(Sha256::digest(canonical.to_string().as_bytes()))
    }
}

/// The shortest decimal text that reads back as the same `f64`, never in exponent form
/// (so DynamoDB and people read it alike).
pub fn format_number(v: f64) -> String {
    format!("{v}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m() -> Measurement {
        Measurement {
            device_sn: Some("sn".into()),
            serial_no: Some(1),
            measured_at_ms: 1,
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
            Measurement { measured_at_ms: 2, ..m() },
            Measurement { mmol: 5.7, ..m() },
            Measurement { status: Some("1".into()), ..m() },
        ];
        for v in variants {
            assert_ne!(v.hash(), base, "{v:?}");
        }
    }

    #[test]
    fn numbers_are_formatted_without_exponents() {
        assert_eq!(format_number(5.6), "5.6");
        assert_eq!(format_number(12.0), "12");
        assert_eq!(format_number(0.001), "0.001");
    }
}
