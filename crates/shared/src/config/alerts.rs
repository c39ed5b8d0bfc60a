//! The alerts' settings (`ALERT_*`, `SIGNAL_LOST_MINUTES`, `CLOCK_AHEAD_MINUTES`), read
//! into the domain's [`AlertSettings`].

use super::ConfigError;
use cgm_domain::alerts::AlertSettings;

pub(super) fn alert_settings(non_empty: &impl Fn(&str) -> Option<String>) -> Result<AlertSettings, ConfigError> {
    let d = AlertSettings::default();
    let mmol = |var: &'static str, default: f64| match non_empty(var) {
        None => Ok(default),
        Some(v) => match v.parse::<f64>() {
            Ok(x) if x.is_finite() && (1.0..=30.0).contains(&x) => Ok(x),
            _ => Err(ConfigError::Invalid { var, reason: "expected mmol/L between 1.0 and 30.0".into() }),
        },
    };
    let minutes = |var: &'static str, default: u64, range: std::ops::RangeInclusive<u64>| {
        super::number(non_empty, var, default, range, "minutes")
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
