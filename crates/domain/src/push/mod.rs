//! The Sinocare push (reservedCode `01`, CGM measurement data): parsing a request body into
//! a [`Reading`], deciding whether a second delivery of a `testId` is the same measurement,
//! and what an unusable body is. Every value of a parsed reading can be stored: what
//! DynamoDB would refuse (a key over its size, a number beyond its range, a time no clock
//! shows) is decided here, never found out at the write.
//!
//! Plain types and functions: no AWS, no HTTP. The contract is in
//! `docs/sinocare-integration.md`.

mod parse;
mod reading;

pub use parse::{
    CGM_DAY_BOUNDS, EARLIEST_MEASURED_AT, INCRE_MINUTE_BOUNDS, MAX_AHEAD_OF_ARRIVAL, MAX_BODY_BYTES, MAX_ID_BYTES,
    MAX_MMOL, MAX_TEXT_BYTES, MAX_THRESHOLD, MeasuredTime, SERIAL_NO_BOUNDS, Unusable, measured_time, parse_push,
    parse_push_arrived,
};
pub use reading::{
    DYNAMODB_MAGNITUDE_BOUND, DYNAMODB_MAX_DIGITS, DYNAMODB_MIN_MAGNITUDE, Glucose, Measurement, Personal, Reading,
    Threshold, dynamodb_accepts, fits_dynamodb_number, format_number,
};
