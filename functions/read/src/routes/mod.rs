//! The read routes, one module per family: `readings` (JSON and CSV pages), `analysis`
//! (gaps and summary), `agp` (the ambulatory glucose profile's numbers), `chart` (the day chart), `follow_tokens` (the Nightscout followers' tokens),
//! `sensors` (the ward's sensors and alerts).
//! Each is an `impl ReadService` block; every JSON reply is a `Serialize` type here, so a
//! field cannot change by accident.

mod agp;
mod analysis;
mod chart;
mod follow_tokens;
mod readings;
mod sensors;

#[cfg(test)]
mod tests;

use std::time::Duration;

/// A paged route stops filling a page after this long and answers with what it has and a
/// cursor, rather than running into the deadline.
const PAGE_TIME_BUDGET: Duration = Duration::from_secs(20);
/// The readings of one page stay well under Lambda's 6 MB reply limit (5 MB with room for
/// the envelope), whatever the ids in them.
const PAGE_BUDGET_BYTES: usize = 4_500_000;
/// A backstop far above what 90 days can hold, so a runaway device cannot exhaust memory.
const MAX_READINGS_IN_MEMORY: usize = 200_000;
