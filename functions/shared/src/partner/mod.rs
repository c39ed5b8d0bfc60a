//! The pure parts of talking to the vendor's Partner Open API: the application signature,
//! splitting a time range into the 30-day windows the glucose endpoints accept, and paging
//! the records of those windows behind an opaque cursor. Nothing here does I/O; the HTTP
//! client and the user-token handling will be added beside these modules.

pub mod paging;
pub mod sign;
pub mod window;
