//! The partner proxy's settings (`PARTNER_*`): the vendor's Partner Open API, as the proxy
//! calls it.

use super::{ConfigError, SecretSetting, is_loopback_http, number, secret_setting};

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

pub(super) fn partner_settings(non_empty: &impl Fn(&str) -> Option<String>) -> Result<PartnerSettings, ConfigError> {
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
    Ok(PartnerSettings {
        base_url,
        app_id: non_empty("PARTNER_APP_ID"),
        app_secret: secret_setting(non_empty, "PARTNER_APP_SECRET", "PARTNER_APP_SECRET_PARAM")?,
        paths: PartnerPaths {
            register: path("PARTNER_PATH_REGISTER", "/partner/v1/user/register")?,
            token: path("PARTNER_PATH_TOKEN", "/partner/v1/user/token")?,
            user_glucose: path("PARTNER_PATH_USER_GLUCOSE", "/partner/v1/user/glucose")?,
            device_info: path("PARTNER_PATH_DEVICE_INFO", "/partner/v1/device/info")?,
            device_glucose: path("PARTNER_PATH_DEVICE_GLUCOSE", "/partner/v1/device/glucose")?,
        },
        call_timeout_ms: number(non_empty, "PARTNER_TIMEOUT_MS", 8_000, 100..=25_000, "milliseconds")?,
        max_range_days: number(non_empty, "PARTNER_MAX_RANGE_DAYS", 366, 1..=3_660, "days")? as u32,
    })
}
