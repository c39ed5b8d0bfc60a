//! The Nightscout feed's settings (`NIGHTSCOUT_*`). `NIGHTSCOUT_JWT_KEY` /
//! `NIGHTSCOUT_JWT_KEY_PARAM` and `NIGHTSCOUT_JWT_HOURS` are read in
//! [`super::Config::from_lookup`] with the helpers every setting uses.

use super::ConfigError;

/// `NIGHTSCOUT_UNITS`: `mg/dl` (the default) or `mmol`, in either case; true for `mmol`.
pub(super) fn units_mmol(non_empty: &impl Fn(&str) -> Option<String>) -> Result<bool, ConfigError> {
    match non_empty("NIGHTSCOUT_UNITS").map(|u| u.to_ascii_lowercase()).as_deref() {
        None | Some("mg/dl") => Ok(false),
        Some("mmol") => Ok(true),
        Some(_) => Err(ConfigError::Invalid { var: "NIGHTSCOUT_UNITS", reason: "expected mg/dl or mmol".into() }),
    }
}
