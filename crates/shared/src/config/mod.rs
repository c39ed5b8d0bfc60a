//! The one configuration type, read from the environment once at cold start.
//!
//! The same names are used in the SAM template and in local runs. A secret may be given
//! directly (`PUSH_KEY`, for local runs) or, in the stack, as `<NAME>_PARAM`: the name of
//! an SSM SecureString that the function that needs it reads once at cold start (see
//! [`crate::aws::resolve_secret`]). Errors name the variable, never its value.
//!
//! Each function family's vocabulary has its own file; this one holds the [`Config`] type,
//! [`ConfigError`], [`SecretSetting`], [`Config::from_lookup`] (which reads every setting, the
//! first invalid one being the error) and the helpers every setting uses (numbers in a range,
//! `true`/`false` flags, secrets, loopback URLs):
//!
//! - `push.rs`: `ALLOWED_SOURCE_CIDRS`, `SOURCE_TIMEZONE`, `PUSH_DEADLINE_MS`, [`split_keys`]
//!   for `PUSH_KEY`;
//! - `tables.rs`: [`Tables`], the `*_TABLE` names;
//! - `partner.rs`: [`PartnerSettings`], `PARTNER_*`;
//! - `alerts.rs`: `ALERT_*`, `SIGNAL_LOST_MINUTES`, `CLOCK_AHEAD_MINUTES`;
//! - `nightscout.rs`: `NIGHTSCOUT_UNITS`;
//! - `fhir.rs`: the FHIR read API's `FHIR_*` and the submitter's [`FhirSubmitSettings`].
//!
//! What is left is read here in one line each: `PUSH_KEY`, `DYNAMODB_ENDPOINT`,
//! `AWS_LAMBDA_FUNCTION_NAME`, `RAW_BODY_RETENTION_DAYS`, `EVENT_BUS_NAME`,
//! `EVENT_PATIENT_FIELDS`, `READ_PATIENT_FIELDS`, `AGP_PATIENT_FIELDS`, `AGP_FONT_DIR`,
//! `NIGHTSCOUT_JWT_KEY`, `NIGHTSCOUT_JWT_HOURS`.

mod alerts;
mod fhir;
mod nightscout;
mod partner;
mod push;
mod tables;

pub use fhir::{
    DEFAULT_FHIR_DEVICE_NAME, DEFAULT_FHIR_IDENTIFIER_PREFIX, DEFAULT_FHIR_SUBMIT_BATCH, DEFAULT_FHIR_SUBMIT_PROFILES,
    DEFAULT_FHIR_SUBMIT_SCOPES, FhirSubmitSettings, PatientReference, SigningAlg,
};
pub use partner::{PartnerPaths, PartnerSettings};
pub use push::{DEFAULT_PUSH_DEADLINE_MS, split_keys};
pub use tables::Tables;

use cgm_domain::alerts::AlertSettings;
use cgm_domain::sensitive::Sensitive;
use cgm_domain::settings::FhirSettings;
use cgm_domain::time::SourceZone;
use ipnet::IpNet;
use std::collections::HashMap;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{var} is not valid: {reason}")]
    Invalid { var: &'static str, reason: String },
    #[error("{var} must be set: {why}")]
    Missing { var: &'static str, why: &'static str },
    #[error("reading the secret named by {var} from SSM failed")]
    Ssm {
        var: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// Where a secret comes from. Resolved at cold start by the function that needs it.
#[derive(Debug, Clone, PartialEq)]
pub enum SecretSetting {
    Unset,
    Value(Sensitive<String>),
    /// The name of an SSM SecureString parameter.
    Param(String),
}

#[derive(Debug, Clone)]
pub struct Config {
    /// `PUSH_KEY` / `PUSH_KEY_PARAM`: one or more keys, comma-separated.
    pub push_key: SecretSetting,
    /// `ALLOWED_SOURCE_CIDRS`: empty means any source.
    pub allowed_source_cidrs: Vec<IpNet>,
    /// `SOURCE_TIMEZONE`: the zone of Sinocare's zone-less `testTime`.
    pub source_timezone: SourceZone,
    pub tables: Tables,
    pub partner: PartnerSettings,
    /// `DYNAMODB_ENDPOINT`: local runs only (DynamoDB Local).
    pub dynamodb_endpoint: Option<String>,
    /// `PUSH_DEADLINE_MS`: the time the push route may spend on storage before answering
    /// 503, well inside Sinocare's 5 s.
    pub push_deadline_ms: u64,
    /// True inside AWS Lambda (`AWS_LAMBDA_FUNCTION_NAME` is set by the service).
    pub in_lambda: bool,
    /// `RAW_BODY_RETENTION_DAYS`: how long a conflicting or quarantined raw body is kept.
    pub raw_body_retention_days: u64,
    /// The alerts' thresholds and timings (`ALERT_*`, `SIGNAL_LOST_MINUTES`).
    pub alerts: AlertSettings,
    /// `EVENT_BUS_NAME`: the EventBridge bus alert and sensor events go to. Unset (local
    /// runs), events go to the local sink.
    pub event_bus: Option<String>,
    /// `EVENT_PATIENT_FIELDS`: `true` puts `patientId` and `visitId` in events; off by default.
    pub event_patient_fields: bool,
    /// `READ_PATIENT_FIELDS`: `true` lets the IAM sensor routes show `patientId` and
    /// `visitId` and serve `/patients/{patient_id}/sensors`; off by default.
    pub read_patient_fields: bool,
    /// `AGP_PATIENT_FIELDS`: `true` puts the patient's name and id in the header of the
    /// AGP PDF (the report function); off by default, and no other read route shows a name.
    pub agp_patient_fields: bool,
    /// `AGP_FONT_DIR`: where the report function finds the fonts it draws and embeds
    /// (the fonts layer, `/opt/fonts` in Lambda; `.tools/fonts` locally).
    pub agp_font_dir: Option<String>,
    /// `NIGHTSCOUT_UNITS`: what the Nightscout status tells followers to display, `mg/dl`
    /// (the default, as Nightscout's) or `mmol`. Entries carry mg/dL either way.
    pub nightscout_mmol: bool,
    /// `NIGHTSCOUT_JWT_KEY` / `NIGHTSCOUT_JWT_KEY_PARAM`: the key the Nightscout feed signs
    /// its JWTs with (HS256, at least 32 characters). Unset, the feed issues none and
    /// accepts no Bearer token; the follower token itself still works.
    pub nightscout_jwt_key: SecretSetting,
    /// `NIGHTSCOUT_JWT_HOURS`: how long a JWT lives (Nightscout's default: 8).
    pub nightscout_jwt_hours: u64,
    /// The FHIR function's settings (`FHIR_*`).
    pub fhir: FhirSettings,
    pub fhir_submit: FhirSubmitSettings,
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        let vars: HashMap<String, String> = std::env::vars().collect();
        Self::from_lookup(|k| vars.get(k).cloned())
    }

    /// Reads the configuration through `get`, so tests and the local server can supply
    /// their own values.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let non_empty = |k: &str| get(k).map(|v| v.trim().to_string()).filter(|v| !v.is_empty());

        let allowed_source_cidrs = push::allowed_source_cidrs(&non_empty)?;
        let source_timezone = push::source_timezone(&non_empty)?;
        let push_deadline_ms = push::push_deadline_ms(&non_empty)?;
        let partner = partner::partner_settings(&non_empty)?;

        Ok(Config {
            push_key: secret_setting(&non_empty, "PUSH_KEY", "PUSH_KEY_PARAM")?,
            allowed_source_cidrs,
            source_timezone,
            tables: tables::tables(&non_empty),
            partner,
            dynamodb_endpoint: non_empty("DYNAMODB_ENDPOINT"),
            push_deadline_ms,
            in_lambda: non_empty("AWS_LAMBDA_FUNCTION_NAME").is_some(),
            raw_body_retention_days: number(&non_empty, "RAW_BODY_RETENTION_DAYS", 400, 1..=3_653, "days")?,
            alerts: alerts::alert_settings(&non_empty)?,
            event_bus: non_empty("EVENT_BUS_NAME"),
            event_patient_fields: flag(&non_empty, "EVENT_PATIENT_FIELDS")?,
            read_patient_fields: flag(&non_empty, "READ_PATIENT_FIELDS")?,
            agp_patient_fields: flag(&non_empty, "AGP_PATIENT_FIELDS")?,
            agp_font_dir: non_empty("AGP_FONT_DIR"),
            nightscout_mmol: nightscout::units_mmol(&non_empty)?,
            nightscout_jwt_key: secret_setting(&non_empty, "NIGHTSCOUT_JWT_KEY", "NIGHTSCOUT_JWT_KEY_PARAM")?,
            nightscout_jwt_hours: number(&non_empty, "NIGHTSCOUT_JWT_HOURS", 8, 1..=168, "hours")?,
            fhir: fhir::fhir_settings(&non_empty)?,
            fhir_submit: fhir::fhir_submit_settings(&non_empty)?,
        })
    }
}

/// A whole number in `range` (unset: `default`); the error names the variable, `what` the unit.
fn number(
    non_empty: &impl Fn(&str) -> Option<String>,
    var: &'static str,
    default: u64,
    range: std::ops::RangeInclusive<u64>,
    what: &str,
) -> Result<u64, ConfigError> {
    match non_empty(var) {
        None => Ok(default),
        Some(v) => match v.parse::<u64>() {
            Ok(n) if range.contains(&n) => Ok(n),
            _ => Err(ConfigError::Invalid {
                var,
                reason: format!("expected {what} between {} and {}", range.start(), range.end()),
            }),
        },
    }
}

/// `true` or `false` (unset: false); anything else is refused, never guessed.
fn flag(non_empty: &impl Fn(&str) -> Option<String>, var: &'static str) -> Result<bool, ConfigError> {
    match non_empty(var).as_deref() {
        None | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(_) => Err(ConfigError::Invalid { var, reason: "expected true or false".into() }),
    }
}

/// `http://127.0.0.1…`, `http://localhost…` or `http://[::1]…`: a stand-in on this machine.
fn is_loopback_http(url: &str) -> bool {
    let Some(rest) = url.strip_prefix("http://") else { return false };
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(h, _)| h),
    };
    host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

fn secret_setting(
    non_empty: &impl Fn(&str) -> Option<String>,
    var: &'static str,
    param_var: &'static str,
) -> Result<SecretSetting, ConfigError> {
    match (non_empty(var), non_empty(param_var)) {
        (Some(_), Some(_)) => {
            Err(ConfigError::Invalid { var: param_var, reason: format!("set either {var} or {param_var}, not both") })
        }
        (Some(v), None) => Ok(SecretSetting::Value(Sensitive::new(v))),
        (None, Some(name)) => Ok(SecretSetting::Param(name)),
        (None, None) => Ok(SecretSetting::Unset),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn cfg(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_fit_a_local_run() {
        let c = cfg(&[]).unwrap();
        assert_eq!(c.push_key, SecretSetting::Unset);
        assert!(c.allowed_source_cidrs.is_empty());
        assert_eq!(c.source_timezone, SourceZone::default());
        assert_eq!(c.tables.readings, "ReadingsTable");
        assert_eq!(c.tables.follow_tokens, "FollowTokensTable");
        assert_eq!(c.push_deadline_ms, DEFAULT_PUSH_DEADLINE_MS);
        assert!(!c.in_lambda);
        assert_eq!(c.partner.base_url, None, "partner routes off until a base URL is configured");
        assert_eq!(c.partner.paths.user_glucose, "/partner/v1/user/glucose");
        assert_eq!(c.partner.app_secret, SecretSetting::Unset);
        assert_eq!(c.partner.max_range_days, 366);
    }

    #[test]
    fn reads_every_setting() {
        let c = cfg(&[
            ("PUSH_KEY_PARAM", "/cgm/push-key"),
            ("ALLOWED_SOURCE_CIDRS", "203.0.113.0/24, 198.51.100.7"),
            ("SOURCE_TIMEZONE", "Asia/Shanghai"),
            ("READINGS_TABLE", "r"),
            ("FOLLOW_TOKENS_TABLE", "f"),
            ("DYNAMODB_ENDPOINT", "http://127.0.0.1:8000"),
            ("AWS_LAMBDA_FUNCTION_NAME", "push"),
        ])
        .unwrap();
        assert_eq!(c.push_key, SecretSetting::Param("/cgm/push-key".into()));
        assert_eq!(c.allowed_source_cidrs.len(), 2);
        assert_eq!(c.tables.readings, "r");
        assert_eq!(c.tables.follow_tokens, "f");
        assert_eq!(c.dynamodb_endpoint.as_deref(), Some("http://127.0.0.1:8000"));
        assert!(c.in_lambda);
    }

    #[test]
    fn errors_name_the_variable_and_not_the_value() {
        let e = cfg(&[("ALLOWED_SOURCE_CIDRS", "10.0.0.0/8,secret-looking-text")]).unwrap_err().to_string();
        assert!(e.contains("ALLOWED_SOURCE_CIDRS") && e.contains("entry 2"), "{e}");
        assert!(!e.contains("secret-looking-text"), "{e}");
        let e = cfg(&[("SOURCE_TIMEZONE", "Nowhere/Else")]).unwrap_err().to_string();
        assert!(e.contains("SOURCE_TIMEZONE"), "{e}");
        let e = cfg(&[("PUSH_KEY", "k"), ("PUSH_KEY_PARAM", "/p")]).unwrap_err().to_string();
        assert!(e.contains("PUSH_KEY_PARAM") && !e.contains(": k"), "{e}");
        let e = cfg(&[("PUSH_DEADLINE_MS", "9000")]).unwrap_err().to_string();
        assert!(e.contains("PUSH_DEADLINE_MS"), "{e}");
        let e = cfg(&[("PARTNER_PATH_TOKEN", "no-slash")]).unwrap_err().to_string();
        assert!(e.contains("PARTNER_PATH_TOKEN"), "{e}");
        let e = cfg(&[("PARTNER_APP_SECRET", "s3cr3t"), ("PARTNER_APP_SECRET_PARAM", "/p")]).unwrap_err().to_string();
        assert!(e.contains("PARTNER_APP_SECRET_PARAM") && !e.contains("s3cr3t"), "{e}");
        let e = cfg(&[("PARTNER_API_BASE_URL", "ftp://x")]).unwrap_err().to_string();
        assert!(e.contains("PARTNER_API_BASE_URL"), "{e}");
        for clear in ["http://partner.example.com", "http://10.0.0.1:8080", "http://127.0.0.1.example.com"] {
            let e = cfg(&[("PARTNER_API_BASE_URL", clear)]).unwrap_err().to_string();
            assert!(e.contains("https://"), "{clear}: {e}");
        }
        for ok in ["https://partner.example.com/", "http://127.0.0.1:9000", "http://localhost:1", "http://[::1]:2"] {
            assert!(cfg(&[("PARTNER_API_BASE_URL", ok)]).is_ok(), "{ok}");
        }
        assert_eq!(
            cfg(&[("PARTNER_API_BASE_URL", "https://p.example.com/")]).unwrap().partner.base_url.as_deref(),
            Some("https://p.example.com")
        );
    }
}
