//! The ids that travel furthest, as types: a reading's [`TestId`] and a sensor's
//! [`DeviceSn`]. Both are Sinocare's text, kept exactly as sent; they are not personal data
//! and may appear in log lines, clipped by [`clip_for_log`] (a hostile id can be kilobytes).

use serde::Serialize;
use std::fmt;

/// The longest id written to a log line.
pub const LOG_ID_CHARS: usize = 128;

/// At most [`LOG_ID_CHARS`] characters of an id, for a log line.
pub fn clip_for_log(s: &str) -> &str {
    match s.char_indices().nth(LOG_ID_CHARS) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

macro_rules! text_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Default)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn new(s: impl Into<String>) -> Self {
                $name(s.into())
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        // Hash and Eq are the inner string's, so maps keyed by the id can be read by `&str`.
        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                $name(s.to_string())
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> Self {
                $name(s)
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }
    };
}

text_id!(
    /// Sinocare's unique id of one measurement: the readings table's key. A `testId` pushed
    /// as a JSON number is kept as its decimal text.
    TestId
);

text_id!(
    /// A sensor's serial number (`deviceSn`): the device/time index's partition key.
    DeviceSn
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_their_text() {
        let t = TestId::from("23434335345");
        assert_eq!(t.as_str(), "23434335345");
        assert_eq!(t.to_string(), "23434335345");
        assert_eq!(serde_json::to_string(&DeviceSn::from("SN1")).unwrap(), "\"SN1\"");
        assert!(t == "23434335345");
    }

    #[test]
    fn log_ids_are_cut_short() {
        assert_eq!(clip_for_log(&"é".repeat(300)).chars().count(), LOG_ID_CHARS);
        assert_eq!(clip_for_log("abc"), "abc");
    }
}
