//! Talking to the vendor's Partner Open API: the application signature, the HTTP client,
//! users' tokens, splitting a time range into the 30-day windows the glucose endpoints
//! accept, and paging the records of those windows behind an opaque cursor.
//!
//! [`ProxyError`] is every way a proxied call can fail; the proxy Lambda maps each to one
//! HTTP status in one place.

pub mod client;
pub mod paging;
pub mod sign;
pub mod tokens;
pub mod window;

use crate::store::StoreError;
use client::UpstreamError;

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// The caller's request is wrong; the text says how (and never echoes secrets).
    #[error("{0}")]
    BadRequest(String),
    #[error("this open_id has no token here: register the user through POST /partner/users first")]
    UnknownUser,
    /// The vendor answered with a non-zero code.
    #[error("the partner API answered code {code}")]
    Refused { code: i64, msg: String },
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    #[error("token storage failed")]
    Store(#[from] StoreError),
    #[error("the request did not finish within {0} s")]
    Deadline(u64),
}
