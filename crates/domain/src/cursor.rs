//! Opaque page cursors, one format for every paged route.
//!
//! A cursor is URL-safe base64 (no padding) of `c2:<kind>:<query hash>:<payload>`: the kind
//! says which listing it continues (a readings position, a gap, a partner window), the query
//! hash ties it to the exact query it was issued for (a cursor passed with another query is
//! refused rather than silently skipping or repeating data), and the payload is the
//! position itself. Only the exact text [`encode`] produces is accepted, so a truncated or
//! edited cursor fails rather than decoding to another position.
//!
//! The text is opaque to clients, not secret: it holds no personal data, and refusals never
//! echo it. Old formats are not accepted: a client holding one starts its listing again.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

const VERSION: &str = "c2";
/// Longer than any cursor we issue (test ids are at most 1 KiB).
const MAX_CURSOR_CHARS: usize = 2_048;

/// Why a client's cursor was refused. The messages never echo the cursor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CursorError {
    #[error("cursor is malformed")]
    Malformed,
    #[error("cursor belongs to a different query")]
    WrongQuery,
}

/// A stable hash of a query's identifying parts: the first 8 bytes of SHA-256 over the
/// parts, each prefixed with its length (so `["ab","c"]` and `["a","bc"]` differ). Stable
/// across builds and processes, unlike `std`'s hasher, because cursors outlive an instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueryHash(u64);

impl QueryHash {
    pub fn of(parts: &[&str]) -> Self {
        let mut h = Sha256::new();
        for p in parts {
            h.update((p.len() as u64).to_be_bytes());
            h.update(p.as_bytes());
        }
        let d = h.finalize();
        let mut first = [0u8; 8];
        first.copy_from_slice(&d[..8]);
        QueryHash(u64::from_be_bytes(first))
    }
}

/// What a cursor of one kind holds. `write` and `read` must round-trip; `read` gets the text
/// after the query hash, which may contain `:` (a test id can).
pub trait CursorPayload: Sized {
    const KIND: &'static str;
    fn write(&self) -> String;
    fn read(text: &str) -> Option<Self>;
}

pub fn encode<P: CursorPayload>(payload: &P, query: QueryHash) -> String {
    URL_SAFE_NO_PAD.encode(format!("{VERSION}:{}:{:016x}:{}", P::KIND, query.0, payload.write()))
}

pub fn decode<P: CursorPayload>(text: &str, query: QueryHash) -> Result<P, CursorError> {
    if text.is_empty() || text.len() > MAX_CURSOR_CHARS {
        return Err(CursorError::Malformed);
    }
    let bytes = URL_SAFE_NO_PAD.decode(text).map_err(|_| CursorError::Malformed)?;
    let raw = std::str::from_utf8(&bytes).map_err(|_| CursorError::Malformed)?;
    let mut parts = raw.splitn(4, ':');
    let (Some(VERSION), Some(kind), Some(hash), Some(rest)) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(CursorError::Malformed);
    };
    if kind != P::KIND || hash.len() != 16 {
        return Err(CursorError::Malformed);
    }
    let hash = u64::from_str_radix(hash, 16).map_err(|_| CursorError::Malformed)?;
    let payload = P::read(rest).ok_or(CursorError::Malformed)?;
    if encode(&payload, QueryHash(hash)) != text {
        return Err(CursorError::Malformed);
    }
    if hash != query.0 {
        return Err(CursorError::WrongQuery);
    }
    Ok(payload)
}

/// Two numbers joined by `:`, the shape most payloads take.
pub fn read_pair<A: std::str::FromStr, B: std::str::FromStr>(text: &str) -> Option<(A, B)> {
    let (a, b) = text.split_once(':')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq)]
    struct At(i64, String);

    impl CursorPayload for At {
        const KIND: &'static str = "at";
        fn write(&self) -> String {
            format!("{}:{}", self.0, self.1)
        }
        fn read(text: &str) -> Option<Self> {
            let (n, id) = text.split_once(':')?;
            if id.is_empty() {
                return None;
            }
            Some(At(n.parse().ok()?, id.to_string()))
        }
    }

    #[derive(Debug, PartialEq)]
    struct Pair(u64, u64);

    impl CursorPayload for Pair {
        const KIND: &'static str = "pair";
        fn write(&self) -> String {
            format!("{}:{}", self.0, self.1)
        }
        fn read(text: &str) -> Option<Self> {
            read_pair(text).map(|(a, b)| Pair(a, b))
        }
    }

    #[test]
    fn payloads_round_trip_and_stay_with_their_query() {
        let q = QueryHash::of(&["readings", "SN1", "0", "99"]);
        let p = At(1_635_827_613_000, "id:with:colons".into());
        let c = encode(&p, q);
        assert!(c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'), "{c}");
        assert_eq!(decode::<At>(&c, q), Ok(p));
        assert_eq!(decode::<At>(&c, QueryHash::of(&["readings", "SN2", "0", "99"])), Err(CursorError::WrongQuery));
    }

    #[test]
    fn query_parts_cannot_run_into_each_other() {
        assert_ne!(QueryHash::of(&["ab", "c"]), QueryHash::of(&["a", "bc"]));
    }

    #[test]
    fn junk_other_kinds_and_other_spellings_are_malformed() {
        let q = QueryHash::of(&["x"]);
        for bad in ["", "!!!", "bm90LWEtY3Vyc29y", &"A".repeat(5_000)] {
            assert_eq!(decode::<At>(bad, q), Err(CursorError::Malformed), "{bad}");
        }
        let pair = encode(&Pair(1, 2), q);
        assert_eq!(decode::<At>(&pair, q), Err(CursorError::Malformed), "a pair cursor is not an `at` cursor");
        // The same payload spelled differently ("01" for "1") is not the cursor we issued.
        let edited = URL_SAFE_NO_PAD.encode(format!("c2:pair:{:016x}:01:2", QueryHash::of(&["x"]).0));
        assert_eq!(decode::<Pair>(&edited, q), Err(CursorError::Malformed));
        assert_eq!(decode::<Pair>(&pair, q), Ok(Pair(1, 2)));
    }
}
