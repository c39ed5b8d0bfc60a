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
    /// Numeric fields outside what the spec means (`increMinute` 2^59), as sent; their
    /// typed fields are `None`.
    pub out_of_range: Map<String, Value>,
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
/// or a number (mmol/L). Absent and `null` are stored differently, so both are kept.
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
            measured_at: Timestamp(1),
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
            Measurement { measured_at: Timestamp(2), ..m() },
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
