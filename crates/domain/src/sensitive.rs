//! Values that must never reach a log line, an error message or a panic: personal data
//! from the push (`idCard`, `patientName`, …) and secrets (push keys, tokens).
//!
//! `Debug` and `Display` print a placeholder, so a stray `{:?}` of a struct that holds one
//! cannot leak it. The value is read explicitly with [`Sensitive::expose`].

use std::fmt;

#[derive(Clone, PartialEq, Eq, Default)]
pub struct Sensitive<T>(T);

impl<T> Sensitive<T> {
    pub fn new(value: T) -> Self {
        Self(value)
    }

    /// The value itself: for storage and comparison, never for formatting into text that
    /// leaves the process.
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> fmt::Debug for Sensitive<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl<T> fmt::Display for Sensitive<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formatting_never_shows_the_value() {
        let s = Sensitive::new("430424199001011234".to_string());
        assert_eq!(format!("{s:?} {s}"), "<redacted> <redacted>");
        assert_eq!(s.expose(), "430424199001011234");
    }
}
