//! The ambulatory glucose profile (AGP) of one device over a period of local days, as the
//! international consensus reports it (Battelino et al., Diabetes Care 2019;42:1593):
//!
//! - [`summary`]: the period's glucose statistics (what `/summary` answers);
//! - [`report`]: the AGP's numbers (statistics beside the consensus targets, time in
//!   ranges, the modal day, each day's profile, the data-sufficiency notice), read from the
//!   daily rollups, and the page that draws them;
//! - [`page`]: the page itself, one SVG in A4 proportions;
//! - [`pdf`] (feature `pdf`): that page as an A4 PDF in bundled fonts.
//!
//! A library, not a function: the read function serves `agp.json` and `agp.svg`, the report
//! function `agp.pdf`, and the FHIR function the summary PDF, all from this one drawing, so
//! they cannot drift apart. No HTTP and no AWS crate: the stores come in as
//! `cgm-shared`'s traits.

pub mod page;
#[cfg(feature = "pdf")]
pub mod pdf;
pub mod report;
pub mod summary;
pub mod svg;
