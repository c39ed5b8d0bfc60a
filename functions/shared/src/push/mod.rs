//! The Sinocare push (reservedCode `01`, CGM measurement data): parsing a request body into
//! a [`Reading`], deciding whether a second delivery of a `testId` is the same measurement,
//! and what an unusable body is.
//!
//! Plain types and functions: no AWS, no HTTP. See `../shared/DESIGN.md` "Push receiver"
//! and the spec in `../shared/seeds/000_*`.

mod parse;
mod reading;

pub use parse::{MAX_BODY_BYTES, MAX_ID_BYTES, Unusable, parse_push};
pub use reading::{Glucose, Measurement, Personal, Reading, format_number};
