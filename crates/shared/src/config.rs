//! The one configuration type, read from the environment once at cold start.
//!
//! The same names are used in the SAM template and in local runs. A secret may be given
//! directly (`PUSH_KEY`, for local runs) or, in the stack, as `<NAME>_PARAM`: the name of
//! an SSM SecureString that the function that needs it reads once at cold start (see
//! [`crate::aws::resolve_secret`]). Errors name the variable, never its value.

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

/// DynamoDB table names, each from the variable the template sets with `!Ref`.
#[derive(Debug, Clone, PartialEq)]
pub struct Tables {
    pub readings: String,
    pub conflicts: String,
    pub quarantine: String,
    /// Partner API user tokens, by `open_id`.
    pub tokens: String,
    /// Which `open_id` owns a device, learned from the partner API's answers.
    pub device_owners: String,
    /// Nightscout follower tokens of the read side, stored hashed, by `tokenId`.
    pub follow_tokens: String,
    /// Daily rollups, by `deviceSn` and local `day`, written by the stream consumer.
    pub rollups: String,
    /// Sensor sessions and their alerts, by `deviceSn`, written by the stream consumer.
    pub sensors: String,
    /// The FHIR submitter's checkpoints, by `deviceSn` and `kind`.
    pub submissions: String,
}

impl Tables {
    /// The environment variable that names each table; the local stack matches these with
    /// the template's `!Ref`s.
    pub const VARS: [&'static str; 9] = [
        "READINGS_TABLE",
        "CONFLICTS_TABLE",
        "QUARANTINE_TABLE",
        "TOKENS_TABLE",
        "DEVICE_OWNERS_TABLE",
        "FOLLOW_TOKENS_TABLE",
        "ROLLUPS_TABLE",
        "SENSORS_TABLE",
        "SUBMISSIONS_TABLE",
    ];
}

/// The vendor's Partner Open API, as the proxy calls it.
#[derive(Debug, Clone, PartialEq)]
pub struct PartnerSettings {
    /// `PARTNER_API_BASE_URL`: production is not published, so this is configuration. Unset,
    /// the partner routes answer 503 "not configured" (a stack deploys without one).
    pub base_url: Option<String>,
    /// `PARTNER_APP_ID`: with a secret, every request carries the application signature.
    pub app_id: Option<String>,
    /// `PARTNER_APP_SECRET` / `PARTNER_APP_SECRET_PARAM`.
    pub app_secret: SecretSetting,
    pub paths: PartnerPaths,
    /// `PARTNER_TIMEOUT_MS`: the limit for one upstream call, connection included.
    pub call_timeout_ms: u64,
    /// `PARTNER_MAX_RANGE_DAYS`: the longest glucose range one query may ask for.
    pub max_range_days: u32,
}

/// The five upstream paths (`PARTNER_PATH_REGISTER`, `…_TOKEN`, `…_USER_GLUCOSE`,
/// `…_DEVICE_INFO`, `…_DEVICE_GLUCOSE`), defaulting to the documented ones.
#[derive(Debug, Clone, PartialEq)]
pub struct PartnerPaths {
    pub register: String,
    pub token: String,
    pub user_glucose: String,
    pub device_info: String,
    pub device_glucose: String,
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

pub const DEFAULT_PUSH_DEADLINE_MS: u64 = 3_000;

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        let vars: HashMap<String, String> = std::env::vars().collect();
        Self::from_lookup(|k| vars.get(k).cloned())
    }

    /// Reads the configuration through `get`, so tests and the local server can supply
    /// their own values.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let non_empty = |k: &str| get(k).map(|v| v.trim().to_string()).filter(|v| !v.is_empty());

        let allowed_source_cidrs = match non_empty("ALLOWED_SOURCE_CIDRS") {
            None => Vec::new(),
            Some(list) => parse_cidrs(&list)?,
        };
        let source_timezone = match non_empty("SOURCE_TIMEZONE") {
            None => SourceZone::default(),
            Some(z) => z.parse().map_err(|e: cgm_domain::time::BadZone| ConfigError::Invalid {
                var: "SOURCE_TIMEZONE",
                reason: e.to_string(),
            })?,
        };
        let table = |var: &'static str, default: &str| non_empty(var).unwrap_or_else(|| default.to_string());
        let push_deadline_ms = match non_empty("PUSH_DEADLINE_MS") {
            None => DEFAULT_PUSH_DEADLINE_MS,
            Some(v) => match v.parse::<u64>() {
                Ok(ms) if (100..=4_500).contains(&ms) => ms,
                _ => {
                    return Err(ConfigError::Invalid {
                        var: "PUSH_DEADLINE_MS",
                        reason: "expected milliseconds between 100 and 4500 (Sinocare waits 5 s)".into(),
                    });
                }
            },
        };

        let number =
            |var: &'static str, default: u64, range: std::ops::RangeInclusive<u64>, what: &str| match non_empty(var) {
                None => Ok(default),
                Some(v) => match v.parse::<u64>() {
                    Ok(n) if range.contains(&n) => Ok(n),
                    _ => Err(ConfigError::Invalid {
                        var,
                        reason: format!("expected {what} between {} and {}", range.start(), range.end()),
                    }),
                },
            };
        let base_url = non_empty("PARTNER_API_BASE_URL").map(|u| u.trim_end_matches('/').to_string());
        if let Some(u) = &base_url
            && !(u.starts_with("https://") || is_loopback_http(u))
        {
            return Err(ConfigError::Invalid {
                var: "PARTNER_API_BASE_URL",
                reason: "expected an https:// URL (http:// only to a loopback stand-in: bearer tokens must not \
                         travel in the clear)"
                    .into(),
            });
        }
        let path = |var: &'static str, default: &str| -> Result<String, ConfigError> {
            let p = non_empty(var).unwrap_or_else(|| default.to_string());
            if p.starts_with('/') {
                Ok(p)
            } else {
                Err(ConfigError::Invalid { var, reason: "expected a path starting with /".into() })
            }
        };
        let partner = PartnerSettings {
            base_url,
            app_id: non_empty("PARTNER_APP_ID"),
            app_secret: secret_setting(&non_empty, "PARTNER_APP_SECRET", "PARTNER_APP_SECRET_PARAM")?,
            paths: PartnerPaths {
                register: path("PARTNER_PATH_REGISTER", "/partner/v1/user/register")?,
                token: path("PARTNER_PATH_TOKEN", "/partner/v1/user/token")?,
                user_glucose: path("PARTNER_PATH_USER_GLUCOSE", "/partner/v1/user/glucose")?,
                device_info: path("PARTNER_PATH_DEVICE_INFO", "/partner/v1/device/info")?,
                device_glucose: path("PARTNER_PATH_DEVICE_GLUCOSE", "/partner/v1/device/glucose")?,
            },
            call_timeout_ms: number("PARTNER_TIMEOUT_MS", 8_000, 100..=25_000, "milliseconds")?,
            max_range_days: number("PARTNER_MAX_RANGE_DAYS", 366, 1..=3_660, "days")? as u32,
        };

        Ok(Config {
            push_key: secret_setting(&non_empty, "PUSH_KEY", "PUSH_KEY_PARAM")?,
            allowed_source_cidrs,
            source_timezone,
            tables: Tables {
                readings: table("READINGS_TABLE", "ReadingsTable"),
                conflicts: table("CONFLICTS_TABLE", "ConflictsTable"),
                quarantine: table("QUARANTINE_TABLE", "QuarantineTable"),
                tokens: table("TOKENS_TABLE", "PartnerTokensTable"),
                device_owners: table("DEVICE_OWNERS_TABLE", "DeviceOwnersTable"),
                follow_tokens: table("FOLLOW_TOKENS_TABLE", "FollowTokensTable"),
                rollups: table("ROLLUPS_TABLE", "RollupsTable"),
                sensors: table("SENSORS_TABLE", "SensorsTable"),
                submissions: table("SUBMISSIONS_TABLE", "SubmissionsTable"),
            },
            partner,
            dynamodb_endpoint: non_empty("DYNAMODB_ENDPOINT"),
            push_deadline_ms,
            in_lambda: non_empty("AWS_LAMBDA_FUNCTION_NAME").is_some(),
            raw_body_retention_days: number("RAW_BODY_RETENTION_DAYS", 400, 1..=3_653, "days")?,
            alerts: alert_settings(&non_empty)?,
            event_bus: non_empty("EVENT_BUS_NAME"),
            event_patient_fields: flag(&non_empty, "EVENT_PATIENT_FIELDS")?,
            read_patient_fields: flag(&non_empty, "READ_PATIENT_FIELDS")?,
            agp_patient_fields: flag(&non_empty, "AGP_PATIENT_FIELDS")?,
            agp_font_dir: non_empty("AGP_FONT_DIR"),
            nightscout_mmol: match non_empty("NIGHTSCOUT_UNITS").map(|u| u.to_ascii_lowercase()).as_deref() {
                None | Some("mg/dl") => false,
                Some("mmol") => true,
                Some(_) => {
                    return Err(ConfigError::Invalid {
                        var: "NIGHTSCOUT_UNITS",
                        reason: "expected mg/dl or mmol".into(),
                    });
                }
            },
            nightscout_jwt_key: secret_setting(&non_empty, "NIGHTSCOUT_JWT_KEY", "NIGHTSCOUT_JWT_KEY_PARAM")?,
            nightscout_jwt_hours: number("NIGHTSCOUT_JWT_HOURS", 8, 1..=168, "hours")?,
            fhir: fhir_settings(&non_empty)?,
            fhir_submit: fhir_submit_settings(&non_empty)?,
        })
    }
}

fn fhir_settings(non_empty: &impl Fn(&str) -> Option<String>) -> Result<FhirSettings, ConfigError> {
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

fn fhir_submit_settings(non_empty: &impl Fn(&str) -> Option<String>) -> Result<FhirSubmitSettings, ConfigError> {
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
    let number =
        |var: &'static str, default: u64, range: std::ops::RangeInclusive<u64>, what: &str| match non_empty(var) {
            None => Ok(default),
            Some(v) => match v.parse::<u64>() {
                Ok(n) if range.contains(&n) => Ok(n),
                _ => Err(ConfigError::Invalid {
                    var,
                    reason: format!("expected {what} between {} and {}", range.start(), range.end()),
                }),
            },
        };
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
        summary_period_days: number("FHIR_SUMMARY_PERIOD_DAYS", 14, 1..=90, "days")?,
        batch: usize::try_from(number("FHIR_SUBMIT_BATCH", DEFAULT_FHIR_SUBMIT_BATCH as u64, 1..=5_000, "readings")?)
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

/// `true` or `false` (unset: false); anything else is refused, never guessed.
fn flag(non_empty: &impl Fn(&str) -> Option<String>, var: &'static str) -> Result<bool, ConfigError> {
    match non_empty(var).as_deref() {
        None | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(_) => Err(ConfigError::Invalid { var, reason: "expected true or false".into() }),
    }
}

fn alert_settings(non_empty: &impl Fn(&str) -> Option<String>) -> Result<AlertSettings, ConfigError> {
    let d = AlertSettings::default();
    let mmol = |var: &'static str, default: f64| match non_empty(var) {
        None => Ok(default),
        Some(v) => match v.parse::<f64>() {
            Ok(x) if x.is_finite() && (1.0..=30.0).contains(&x) => Ok(x),
            _ => Err(ConfigError::Invalid { var, reason: "expected mmol/L between 1.0 and 30.0".into() }),
        },
    };
    let minutes = |var: &'static str, default: u64, range: std::ops::RangeInclusive<u64>| match non_empty(var) {
        None => Ok(default),
        Some(v) => match v.parse::<u64>() {
            Ok(m) if range.contains(&m) => Ok(m),
            _ => Err(ConfigError::Invalid {
                var,
                reason: format!("expected minutes between {} and {}", range.start(), range.end()),
            }),
        },
    };
    let s = AlertSettings {
        urgent_low_mmol: mmol("ALERT_URGENT_LOW_MMOL", d.urgent_low_mmol)?,
        low_mmol: mmol("ALERT_LOW_MMOL", d.low_mmol)?,
        high_mmol: mmol("ALERT_HIGH_MMOL", d.high_mmol)?,
        very_high_mmol: mmol("ALERT_VERY_HIGH_MMOL", d.very_high_mmol)?,
        fast_fall_mg_dl_per_min: match non_empty("ALERT_FAST_FALL_MG_DL_PER_MIN") {
            None => d.fast_fall_mg_dl_per_min,
            Some(v) => match v.parse::<f64>() {
                Ok(x) if x.is_finite() && (0.5..=10.0).contains(&x) => x,
                _ => {
                    return Err(ConfigError::Invalid {
                        var: "ALERT_FAST_FALL_MG_DL_PER_MIN",
                        reason: "expected mg/dL per minute between 0.5 and 10 (Nightscout's SingleDown is 2)".into(),
                    });
                }
            },
        },
        hold_minutes: minutes("ALERT_HOLD_MINUTES", d.hold_minutes, 0..=120)?,
        renotify_minutes: minutes("ALERT_RENOTIFY_MINUTES", d.renotify_minutes, 5..=1_440)?,
        max_age_minutes: minutes("ALERT_MAX_AGE_MINUTES", d.max_age_minutes, 1..=1_440)?,
        signal_lost_minutes: minutes("SIGNAL_LOST_MINUTES", d.signal_lost_minutes, 5..=1_440)?,
        clock_ahead_minutes: minutes("CLOCK_AHEAD_MINUTES", d.clock_ahead_minutes, 1..=120)?,
        stream_lag_minutes: minutes("ALERT_STREAM_LAG_MINUTES", d.stream_lag_minutes, 0..=1_440)?,
    };
    if !(s.urgent_low_mmol < s.low_mmol && s.low_mmol < s.high_mmol && s.high_mmol < s.very_high_mmol) {
        return Err(ConfigError::Invalid {
            var: "ALERT_LOW_MMOL",
            reason: "expected urgent low < low < high < very high (ALERT_*_MMOL)".into(),
        });
    }
    Ok(s)
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

fn parse_cidrs(list: &str) -> Result<Vec<IpNet>, ConfigError> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .enumerate()
        .map(|(i, s)| {
            // A bare address means just that host.
            s.parse::<IpNet>().or_else(|_| s.parse::<std::net::IpAddr>().map(IpNet::from)).map_err(|_| {
                ConfigError::Invalid {
                    var: "ALLOWED_SOURCE_CIDRS",
                    reason: format!("entry {} is not a CIDR like 203.0.113.0/24", i + 1),
                }
            })
        })
        .collect()
}

/// Splits a resolved `PUSH_KEY` value into its keys (comma-separated, so two can be live
/// while Sinocare moves from the old to the new one).
pub fn split_keys(value: &str) -> Vec<Sensitive<String>> {
    value.split(',').map(str::trim).filter(|k| !k.is_empty()).map(|k| Sensitive::new(k.to_string())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

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

    #[test]
    fn keys_split_on_commas() {
        let keys = split_keys(" old-key ,new-key,, ");
        let keys: Vec<&str> = keys.iter().map(|k| k.expose().as_str()).collect();
        assert_eq!(keys, ["old-key", "new-key"]);
    }
}
