//! Opaque page cursors. A readings cursor is the device/time index key of the last reading
//! a page covered (`measuredAt`, `testId`); a gaps cursor is the start of the last gap shown.
//! Both carry a short hash of the query they belong to, so a cursor passed with another
//! query is refused rather than silently skipping or repeating data. base64url, no padding:
//! safe in a URL without escaping.
//!
//! The text is opaque to clients, not secret: it holds no personal data, and refusals never
//! echo it.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use cgm_shared::store::reads::Position;
use sha2::{Digest, Sha256};

/// Longer than any cursor we issue (test ids are at most 1 KiB).
const MAX_CURSOR_CHARS: usize = 2_048;

/// The same refusals, in the same words, as the partner routes' cursors.
pub use cgm_shared::partner::paging::CursorError;

/// Ties a cursor to its query: the first four bytes of the SHA-256 of the parts.
pub fn query_hash(parts: &[&str]) -> u32 {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_be_bytes());
        h.update(p.as_bytes());
    }
    let d = h.finalize();
    u32::from_be_bytes([d[0], d[1], d[2], d[3]])
}

pub fn encode_position(p: &Position, query: u32) -> String {
    URL_SAFE_NO_PAD.encode(format!("r1:{}:{query:08x}:{}", p.measured_at_ms, p.test_id))
}

pub fn decode_position(text: &str, query: u32) -> Result<Position, CursorError> {
    let raw = decode(text)?;
    let mut parts = raw.splitn(4, ':');
    let (Some("r1"), Some(at), Some(qh), Some(test_id)) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(CursorError::Malformed);
    };
    let at: i64 = at.parse().map_err(|_| CursorError::Malformed)?;
    check(qh, query)?;
    if test_id.is_empty() {
        return Err(CursorError::Malformed);
    }
    Ok(Position { measured_at_ms: at, test_id: test_id.to_string() })
}

/// Where the next page of gaps starts: after the gap due at `expected_from_ms` that begins
/// with serial number `first_serial_no`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GapPosition {
    pub expected_from_ms: i64,
    pub first_serial_no: u64,
}

pub fn encode_gap(p: GapPosition, query: u32) -> String {
    URL_SAFE_NO_PAD.encode(format!("g1:{}:{}:{query:08x}", p.expected_from_ms, p.first_serial_no))
}

pub fn decode_gap(text: &str, query: u32) -> Result<GapPosition, CursorError> {
    let raw = decode(text)?;
    let parts: Vec<&str> = raw.split(':').collect();
    let ["g1", at, serial, qh] = parts[..] else { return Err(CursorError::Malformed) };
    let expected_from_ms = at.parse().map_err(|_| CursorError::Malformed)?;
    let first_serial_no = serial.parse().map_err(|_| CursorError::Malformed)?;
    check(qh, query)?;
    Ok(GapPosition { expected_from_ms, first_serial_no })
}

fn decode(text: &str) -> Result<String, CursorError> {
    let text = text.trim();
    if text.is_empty() || text.len() > MAX_CURSOR_CHARS {
        return Err(CursorError::Malformed);
    }
    let bytes = URL_SAFE_NO_PAD.decode(text).map_err(|_| CursorError::Malformed)?;
    String::from_utf8(bytes).map_err(|_| CursorError::Malformed)
}

fn check(qh: &str, query: u32) -> Result<(), CursorError> {
    let got = u32::from_str_radix(qh, 16).map_err(|_| CursorError::Malformed)?;
    if qh.len() != 8 {
        return Err(CursorError::Malformed);
    }
    if got != query {
        return Err(CursorError::WrongQuery);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_round_trip_and_stay_with_their_query() {
        let q = query_hash(&["readings", "SN1", "0", "99"]);
        let p = Position { measured_at_ms: 1_635_827_613_000, test_id: "id:with:colons".into() };
        let c = encode_position(&p, q);
        assert!(c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'), "{c}");
        assert_eq!(decode_position(&c, q), Ok(p));
        let other = query_hash(&["readings", "SN2", "0", "99"]);
        assert_eq!(decode_position(&c, other), Err(CursorError::WrongQuery));
    }

    #[test]
    fn query_parts_cannot_run_into_each_other() {
        assert_ne!(query_hash(&["ab", "c"]), query_hash(&["a", "bc"]));
    }

    #[test]
    fn junk_is_malformed() {
        let q = query_hash(&["x"]);
        for bad in ["", "!!!", "bm90LWEtY3Vyc29y", &"A".repeat(5_000), &URL_SAFE_NO_PAD.encode("r1:abc:00000000:t")] {
            assert_eq!(decode_position(bad, q), Err(CursorError::Malformed), "{bad}");
        }
        assert_eq!(decode_gap(&URL_SAFE_NO_PAD.encode("g1:1:2"), q), Err(CursorError::Malformed));
        let r = encode_position(&Position { measured_at_ms: 1, test_id: "t".into() }, q);
        assert_eq!(decode_gap(&r, q), Err(CursorError::Malformed), "a readings cursor is not a gaps cursor");
    }

    #[test]
    fn gap_positions_round_trip() {
        let q = query_hash(&["gaps"]);
        let p = GapPosition { expected_from_ms: 42, first_serial_no: 8 };
        assert_eq!(decode_gap(&encode_gap(p, q), q), Ok(p));
    }
}
