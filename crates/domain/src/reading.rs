//! A stored reading as every consumer of the readings table sees it: the measurement, never
//! the patient. The read routes, rollups, sessions and the AGP all work on it; the stores
//! ([`crate::store::reads`]) fetch it.

use crate::ids::{DeviceSn, TestId};
use crate::time::Timestamp;

/// A stored reading as the read side sees it: measurement fields only, never patient data.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredReading {
    pub test_id: TestId,
    pub device_sn: DeviceSn,
    pub measured_at: Timestamp,
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
