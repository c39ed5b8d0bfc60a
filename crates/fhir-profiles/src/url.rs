//! Percent-encoding of what the FHIR functions write into a URL's query or a form: the read
//! API's search links, the submitter's token request and its searches (`ifNoneExist`, a
//! conditional reference). One set of characters each, written once here.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// RFC 3986's unreserved characters (`A-Z a-z 0-9 - . _ ~`) stay; everything else is
/// percent-encoded, UTF-8 byte by byte. Safe in any query value and in an
/// `application/x-www-form-urlencoded` form value.
pub const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// What stays unencoded in a FHIR search value: [`UNRESERVED`] and the URI punctuation an
/// identifier system or a reference holds (`:`, `/`: `urn:oid:…`, `https://…`,
/// `Patient/<id>`). Both are allowed as they are in a query (RFC 3986 §3.4) and mean nothing
/// to FHIR search there, so the searches stay readable; and the submitter's searches are
/// written into every bundle it sends (`ifNoneExist`), where the same entry must read the same
/// on every resend, so this set does not change. `|`, `,`, `$`, `\`, `&`, `=` and the rest
/// are encoded.
pub const SEARCH_VALUE: &AsciiSet = &UNRESERVED.remove(b':').remove(b'/');

/// A query (or form) value, percent-encoded by [`UNRESERVED`].
pub fn query_value(v: &str) -> String {
    utf8_percent_encode(v, UNRESERVED).to_string()
}

/// A FHIR search value, percent-encoded by [`SEARCH_VALUE`].
pub fn search_value(v: &str) -> String {
    utf8_percent_encode(v, SEARCH_VALUE).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unreserved_characters_stay_and_everything_else_is_encoded() {
        assert_eq!(query_value("aZ09-._~"), "aZ09-._~");
        assert_eq!(query_value("ge2024-05-01T00:00:00+08:00"), "ge2024-05-01T00%3A00%3A00%2B08%3A00");
        assert_eq!(query_value("a b/c|d,e&f=g"), "a%20b%2Fc%7Cd%2Ce%26f%3Dg");
        assert_eq!(query_value("设"), "%E8%AE%BE");
    }

    #[test]
    fn a_search_value_keeps_colons_and_slashes_too() {
        assert_eq!(search_value("urn:x:test-id"), "urn:x:test-id");
        assert_eq!(search_value("https://hospital.example/sid/mpi"), "https://hospital.example/sid/mpi");
        assert_eq!(search_value("Patient/P-1"), "Patient/P-1");
        assert_eq!(search_value("t 1|2,3&4=5+6"), "t%201%7C2%2C3%264%3D5%2B6");
    }
}
