//! The Sinocare push (reservedCode `01`, CGM measurement data): parsing a request body into
//! a [`Reading`], deciding whether a second delivery of a `testId` is the same measurement,
//! and what an unusable body is.
//!
//! Plain types and functions: no AWS, no HTTP. The contract is in
//! `docs/sinocare-integration.md`.

mod parse;
mod reading;

pub use parse::{
    CGM_DAY_BOUNDS, INCRE_MINUTE_BOUNDS, MAX_BODY_BYTES, MAX_ID_BYTES, MAX_MMOL, MAX_THRESHOLD, SERIAL_NO_BOUNDS,
    Unusable, parse_push,
};
pub use reading::{Glucose, Measurement, Personal, Reading, Threshold, format_number};
