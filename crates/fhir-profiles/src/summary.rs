//! A `cgm-summary`'s figures over whole local days, from the daily rollups (and the
//! readings of days without one), by the metrics every other report uses.

use crate::SummaryFigures;
use cgm_domain::gaps::DEFAULT_INCRE_MINUTE;
use cgm_domain::ids::DeviceSn;
use cgm_domain::metrics;
use cgm_domain::rollup::{self, Period};
use cgm_domain::store::reads::ReadStore;
use cgm_domain::store::reads::paging::ReadAllError;
use cgm_domain::store::rollups::{Bins, RollupStore, read_range};
use cgm_domain::time::SourceZone;
use chrono::NaiveDate;

/// A backstop far above what 90 days of readings without rollups can hold.
pub const MAX_READINGS: usize = 200_000;

/// Why a summary has no figures.
#[derive(Debug, thiserror::Error)]
pub enum SummaryError {
    #[error("those days do not exist in the zone")]
    NoSuchDays,
    #[error(transparent)]
    Read(#[from] ReadAllError),
}

/// The figures of `sn` over the local days `first` to `last`; `None` without two valid
/// readings (one has no CV, and the panel needs all six members).
pub async fn summary_figures<S: ReadStore, U: RollupStore>(
    store: &S,
    rollups: &U,
    zone: &SourceZone,
    sn: &DeviceSn,
    first: NaiveDate,
    last: NaiveDate,
) -> Result<Option<SummaryFigures>, SummaryError> {
    let range = zone.local_days(first, last).ok_or(SummaryError::NoSuchDays)?;
    let pieces = read_range(store, rollups, zone, sn, range, Bins::Without, MAX_READINGS).await?;
    let period = Period::of(zone, &pieces);
    Ok(period.summary().and_then(|sum| {
        let valid = usize::try_from(period.glucose.len()).unwrap_or(usize::MAX);
        let interval = period.usual_interval().unwrap_or(DEFAULT_INCRE_MINUTE);
        let expected = metrics::expected_readings(range.start().ms(), range.end().ms(), interval);
        let b = &sum.bands;
        Some(SummaryFigures {
            first,
            last,
            mean_mmol: sum.mean_mmol,
            gmi_percent: sum.gmi_percent,
            cv_percent: sum.cv_percent?,
            times_in_ranges: [b.very_low, b.low, b.in_range, b.high, b.very_high],
            days_of_wear: rollup::days_with_readings(zone, &pieces),
            active_percent: metrics::capture_percent(valid, expected),
        })
    }))
}
