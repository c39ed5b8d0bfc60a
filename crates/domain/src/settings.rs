//! Settings the domain's outputs are shaped by, read from the environment by
//! `cgm_shared::config` (the alerts' are [`crate::alerts::AlertSettings`]).

/// How the FHIR function (`functions/fhir`) names what it serves and sends.
#[derive(Debug, Clone, PartialEq)]
pub struct FhirSettings {
    /// `FHIR_PATIENT_IDENTIFIER_SYSTEM`: the URI of the hospital's master patient index, the
    /// system of `Patient.identifier` whose value is Sinocare's `patientId`. Unset, the FHIR
    /// routes return no patient data: they answer 403 naming this setting (the CGM profiles
    /// require a subject).
    pub patient_identifier_system: Option<String>,
    /// `FHIR_GLUCOSE_UNIT`: `mmol/L` (the default: the molar reading profile, LOINC
    /// 105272-9) or `mg/dL` (the mass profile, 99504-3).
    pub mg_dl: bool,
    /// `FHIR_IDENTIFIER_SYSTEM_PREFIX`: what the systems of our own identifiers start with
    /// (`<prefix>test-id` for a reading's `testId`, `<prefix>device-sn` for a sensor's
    /// serial, `<prefix>summary` for a summary's resources).
    pub identifier_prefix: String,
    /// `FHIR_DEVICE_NAME`: the sensor's user-friendly name in `Device.deviceName`.
    pub device_name: String,
    /// `FHIR_BASE_URL`: the FHIR base the links in bundles start with (a custom domain);
    /// unset, `https://<Host header>/fhir`.
    pub base_url: Option<String>,
}
