//! The FHIR read API's settings (`FHIR_*`, into the domain's [`FhirSettings`]) and the FHIR
//! submitter's (`FHIR_EHR_BASE_URL`, `FHIR_CLIENT_*`, `FHIR_SUBMIT_*`, `FHIR_PATIENT_REFERENCE`,
//! `FHIR_SUMMARY_PERIOD_DAYS`, `FHIR_READ_STANDING_ORDERS`).

use super::{ConfigError, SecretSetting, flag, is_loopback_http, number, secret_setting};
use cgm_domain::settings::FhirSettings;

/// How the FHIR submitter reaches the hospital's EHR (the CGM IG's Data Receiver), and what
/// it sends. The submitter refuses to start without the EHR's base, the client id, the key id
/// and the private key, naming the one that is missing.
#[derive(Debug, Clone, PartialEq)]
pub struct FhirSubmitSettings {
    /// `FHIR_EHR_BASE_URL`: the EHR's FHIR base (https; http only to a loopback stand-in).
    pub ehr_base_url: Option<String>,
    /// `FHIR_CLIENT_ID`: the client id the EHR registered for this submitter.
    pub client_id: Option<String>,
    /// `FHIR_CLIENT_KEY_ID`: the `kid` of the registered public key (the JWT header's).
    pub key_id: Option<String>,
    /// `FHIR_CLIENT_PRIVATE_KEY` (PEM) or `FHIR_CLIENT_PRIVATE_KEY_PARAM` (an SSM
    /// SecureString holding it): signs the client assertion.
    pub private_key: SecretSetting,
    /// `FHIR_CLIENT_SIGNING_ALG`: `RS384` (the default) or `ES384`, the two SMART Backend
    /// Services names.
    pub signing_alg: SigningAlg,
    /// `FHIR_SUBMIT_SCOPES`: the scopes asked for, space-separated; the IG's by default.
    pub scopes: String,
    /// `FHIR_PATIENT_REFERENCE`: how an entry names the patient (see [`PatientReference`]).
    pub patient_reference: PatientReference,
    /// `FHIR_SUBMIT_PROFILES`: what is sent, as the IG's profile ids (comma-separated):
    /// `cgm-sensor-reading` (the readings, in `FHIR_GLUCOSE_UNIT`), `cgm-summary`,
    /// `cgm-summary-pdf`.
    pub submit_readings: bool,
    pub submit_summary: bool,
    /// `cgm-summary-pdf`: each summary's ambulatory glucose profile as a PDF report (the
    /// fonts of `AGP_FONT_DIR`); it goes with the summary, so it needs `cgm-summary`.
    pub submit_summary_pdf: bool,
    /// `FHIR_SUMMARY_PERIOD_DAYS`: the days one summary covers, and how often one is sent.
    pub summary_period_days: u64,
    /// `FHIR_SUBMIT_BATCH`: readings per submission bundle at most.
    pub batch: usize,
    /// `FHIR_READ_STANDING_ORDERS`: `true` to send, for each patient, what the EHR's active
    /// `cgm-data-submission-standing-order`s ask for, as often as they ask (the IG's
    /// `data-submission-schedule`), instead of `FHIR_SUBMIT_PROFILES` and
    /// `FHIR_SUMMARY_PERIOD_DAYS`; a patient without one gets nothing sent.
    pub read_standing_orders: bool,
}

/// The algorithm of the submitter's client assertion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SigningAlg {
    Rs384,
    Es384,
}

/// How a submitted resource names its patient.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatientReference {
    /// `conditional` (the default): `Patient?identifier=<system>|<patientId>`, which the EHR
    /// resolves to its own patient when it processes the transaction.
    Conditional,
    /// `search`: the submitter searches `Patient?identifier=…` first and sends `Patient/<id>`
    /// (needs the `system/Patient.rs` scope).
    Search,
    /// `identifier`: a logical reference (`Reference.identifier`) the EHR matches itself.
    Identifier,
}

/// The scopes the CGM IG lists for a system-level Data Submitter.
pub const DEFAULT_FHIR_SUBMIT_SCOPES: &str = "system/Observation.cu?category=laboratory \
                                              system/DiagnosticReport.cu?category=LAB system/Device.cu \
                                              system/ServiceRequest.rs?code=cgm-data-submission-standing-order";
pub const DEFAULT_FHIR_SUBMIT_BATCH: usize = 500;
/// What the submitter sends unless told otherwise: the readings, and for each period the
/// summary and its PDF (what the IG's example standing order asks for).
pub const DEFAULT_FHIR_SUBMIT_PROFILES: &str = "cgm-sensor-reading,cgm-summary,cgm-summary-pdf";

pub const DEFAULT_FHIR_IDENTIFIER_PREFIX: &str = "urn:cgm-bridge:sinocare:";
pub const DEFAULT_FHIR_DEVICE_NAME: &str = "Sinocare CGM sensor";

pub(super) fn fhir_settings(non_empty: &impl Fn(&str) -> Option<String>) -> Result<FhirSettings, ConfigError> {
    let uri = |var: &'static str| -> Result<Option<String>, ConfigError> {
        match non_empty(var) {
            None => Ok(None),
            Some(v) if is_absolute_uri(&v) => Ok(Some(v)),
            Some(_) => {
                Err(ConfigError::Invalid { var, reason: "expected an absolute URI (https://… or urn:…)".into() })
            }
        }
    };
    let mg_dl = match non_empty("FHIR_GLUCOSE_UNIT").as_deref() {
        None | Some("mmol/L") => false,
        Some("mg/dL") => true,
        Some(_) => {
            return Err(ConfigError::Invalid { var: "FHIR_GLUCOSE_UNIT", reason: "expected mmol/L or mg/dL".into() });
        }
    };
    let base_url = match non_empty("FHIR_BASE_URL") {
        None => None,
        Some(u) if u.starts_with("https://") || is_loopback_http(&u) => Some(u.trim_end_matches('/').to_string()),
        Some(_) => {
            return Err(ConfigError::Invalid {
                var: "FHIR_BASE_URL",
                reason: "expected an https:// URL (http:// only on loopback)".into(),
            });
        }
    };
    Ok(FhirSettings {
        patient_identifier_system: uri("FHIR_PATIENT_IDENTIFIER_SYSTEM")?,
        mg_dl,
        identifier_prefix: uri("FHIR_IDENTIFIER_SYSTEM_PREFIX")?
            .unwrap_or_else(|| DEFAULT_FHIR_IDENTIFIER_PREFIX.to_string()),
        device_name: non_empty("FHIR_DEVICE_NAME").unwrap_or_else(|| DEFAULT_FHIR_DEVICE_NAME.to_string()),
        base_url,
    })
}

pub(super) fn fhir_submit_settings(
    non_empty: &impl Fn(&str) -> Option<String>,
) -> Result<FhirSubmitSettings, ConfigError> {
    let ehr_base_url = match non_empty("FHIR_EHR_BASE_URL") {
        None => None,
        Some(u) if u.starts_with("https://") || is_loopback_http(&u) => Some(u.trim_end_matches('/').to_string()),
        Some(_) => {
            return Err(ConfigError::Invalid {
                var: "FHIR_EHR_BASE_URL",
                reason: "expected an https:// URL (http:// only to a loopback stand-in: tokens must not travel in \
                         the clear)"
                    .into(),
            });
        }
    };
    let signing_alg = match non_empty("FHIR_CLIENT_SIGNING_ALG").as_deref() {
        None | Some("RS384") => SigningAlg::Rs384,
        Some("ES384") => SigningAlg::Es384,
        Some(_) => {
            return Err(ConfigError::Invalid {
                var: "FHIR_CLIENT_SIGNING_ALG",
                reason: "expected RS384 or ES384".into(),
            });
        }
    };
    let patient_reference = match non_empty("FHIR_PATIENT_REFERENCE").as_deref() {
        None | Some("conditional") => PatientReference::Conditional,
        Some("search") => PatientReference::Search,
        Some("identifier") => PatientReference::Identifier,
        Some(_) => {
            return Err(ConfigError::Invalid {
                var: "FHIR_PATIENT_REFERENCE",
                reason: "expected conditional, search or identifier".into(),
            });
        }
    };
    let (mut submit_readings, mut submit_summary, mut submit_summary_pdf) = (false, false, false);
    let profiles = non_empty("FHIR_SUBMIT_PROFILES").unwrap_or_else(|| DEFAULT_FHIR_SUBMIT_PROFILES.into());
    for p in profiles.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match p {
            "cgm-sensor-reading" => submit_readings = true,
            "cgm-summary" => submit_summary = true,
            "cgm-summary-pdf" => submit_summary_pdf = true,
            other => {
                return Err(ConfigError::Invalid {
                    var: "FHIR_SUBMIT_PROFILES",
                    reason: format!(
                        "unknown profile {other:?}: expected cgm-sensor-reading, cgm-summary or cgm-summary-pdf"
                    ),
                });
            }
        }
    }
    if submit_summary_pdf && !submit_summary {
        return Err(ConfigError::Invalid {
            var: "FHIR_SUBMIT_PROFILES",
            reason: "cgm-summary-pdf goes with its summary: add cgm-summary".into(),
        });
    }
    Ok(FhirSubmitSettings {
        ehr_base_url,
        client_id: non_empty("FHIR_CLIENT_ID"),
        key_id: non_empty("FHIR_CLIENT_KEY_ID"),
        private_key: secret_setting(non_empty, "FHIR_CLIENT_PRIVATE_KEY", "FHIR_CLIENT_PRIVATE_KEY_PARAM")?,
        signing_alg,
        scopes: non_empty("FHIR_SUBMIT_SCOPES").unwrap_or_else(|| DEFAULT_FHIR_SUBMIT_SCOPES.to_string()),
        patient_reference,
        submit_readings,
        submit_summary,
        submit_summary_pdf,
        summary_period_days: number(non_empty, "FHIR_SUMMARY_PERIOD_DAYS", 14, 1..=90, "days")?,
        batch: usize::try_from(number(
            non_empty,
            "FHIR_SUBMIT_BATCH",
            DEFAULT_FHIR_SUBMIT_BATCH as u64,
            1..=5_000,
            "readings",
        )?)
        .unwrap_or(DEFAULT_FHIR_SUBMIT_BATCH),
        read_standing_orders: flag(non_empty, "FHIR_READ_STANDING_ORDERS")?,
    })
}

/// A URI with a scheme (`https:`, `urn:`, `http:`): what FHIR's `Identifier.system` takes.
fn is_absolute_uri(v: &str) -> bool {
    let Some((scheme, rest)) = v.split_once(':') else { return false };
    !rest.is_empty()
        && !v.chars().any(char::is_whitespace)
        && scheme.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && scheme.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::cfg;

    #[test]
    fn fhir_settings_take_uris_and_one_of_two_units_and_refuse_the_rest_by_name() {
        let d = cfg(&[]).unwrap().fhir;
        assert_eq!((d.patient_identifier_system, d.mg_dl), (None, false));
        assert_eq!(d.identifier_prefix, DEFAULT_FHIR_IDENTIFIER_PREFIX);
        let c = cfg(&[
            ("FHIR_PATIENT_IDENTIFIER_SYSTEM", "urn:oid:1.2.36.146.595.217.0.1"),
            ("FHIR_GLUCOSE_UNIT", "mg/dL"),
            ("FHIR_BASE_URL", "https://ehr-bridge.example/fhir/"),
        ])
        .unwrap()
        .fhir;
        assert_eq!(c.patient_identifier_system.as_deref(), Some("urn:oid:1.2.36.146.595.217.0.1"));
        assert!(c.mg_dl);
        assert_eq!(c.base_url.as_deref(), Some("https://ehr-bridge.example/fhir"));
        for (var, value) in [
            ("FHIR_PATIENT_IDENTIFIER_SYSTEM", "hospital mpi"),
            ("FHIR_PATIENT_IDENTIFIER_SYSTEM", "mpi"),
            ("FHIR_GLUCOSE_UNIT", "mmol"),
            ("FHIR_BASE_URL", "http://ehr.example/fhir"),
            ("FHIR_IDENTIFIER_SYSTEM_PREFIX", "cgm-bridge"),
        ] {
            match cfg(&[(var, value)]) {
                Err(ConfigError::Invalid { var: v, .. }) => assert_eq!(v, var),
                other => panic!("{var}={value}: {other:?}"),
            }
        }
    }
}
