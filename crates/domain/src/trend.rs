//! The rate of change between two readings and its trend arrow, with the thresholds
//! Nightscout's own uploaders use (mg/dL per minute). The Nightscout feed shows the arrow;
//! the fast-fall alert's default threshold is the arrow `SingleDown`'s. Pure functions.

use crate::metrics::MG_DL_PER_MMOL;
use crate::time::Timestamp;

/// A previous reading further back than this says nothing about the current trend.
pub const TREND_WINDOW_MS: i64 = 15 * 60_000;

/// The trend arrow for a rate of change in mg/dL per minute; `NONE` without one.
pub fn direction(rate_mg_dl_per_min: Option<f64>) -> &'static str {
    match rate_mg_dl_per_min {
        None => "NONE",
        Some(r) if r >= 3.0 => "DoubleUp",
        Some(r) if r >= 2.0 => "SingleUp",
        Some(r) if r >= 1.0 => "FortyFiveUp",
        Some(r) if r > -1.0 => "Flat",
        Some(r) if r > -2.0 => "FortyFiveDown",
        Some(r) if r > -3.0 => "SingleDown",
        Some(_) => "DoubleDown",
    }
}

/// mg/dL per minute from the `previous` (instant, mmol/L) to the `current` one, when the
/// previous is earlier and at most [`TREND_WINDOW_MS`] before. Unrounded values, so an arrow
/// does not jump on rounding.
pub fn rate(current: (Timestamp, f64), previous: Option<(Timestamp, f64)>) -> Option<f64> {
    let (p_at, p_mmol) = previous?;
    let dt = current.0.since(p_at);
    if dt <= 0 || dt > TREND_WINDOW_MS {
        return None;
    }
    Some((current.1 - p_mmol) * MG_DL_PER_MMOL / (dt as f64 / 60_000.0))
}
