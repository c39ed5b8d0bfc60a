//! Who wore a sensor: the patient's name and id from the device's newest stored reading,
//! for the one place that may show them (the AGP PDF's header with `AGP_PATIENT_FIELDS=true`).
//!
//! Kept apart from [`super::reads`], whose queries never fetch a patient field: only the
//! report function holds this store, and only when the setting is on. The values are
//! [`Sensitive`], so no log line or error can print them.

use crate::ids::DeviceSn;
use crate::sensitive::Sensitive;
use crate::store::StoreError;

/// The patient fields of a device's newest reading; either may be missing from the push.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PatientRef {
    pub name: Option<Sensitive<String>>,
    pub id: Option<Sensitive<String>>,
}

pub trait PatientStore: Send + Sync {
    /// The patient of `device_sn`'s newest reading, or `None` when it has none.
    fn patient_of(&self, device_sn: &DeviceSn) -> impl Future<Output = Result<Option<PatientRef>, StoreError>> + Send;
}

/// A fixed answer, for unit tests.
#[derive(Debug, Clone, Default)]
pub struct FixedPatient(pub Option<PatientRef>);

impl PatientStore for FixedPatient {
    async fn patient_of(&self, _device_sn: &DeviceSn) -> Result<Option<PatientRef>, StoreError> {
        Ok(self.0.clone())
    }
}
