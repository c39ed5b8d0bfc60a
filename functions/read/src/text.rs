//! Text inside the read side's CSV bodies, made safe for what reads it (SVG text:
//! [`cgm_agp::svg::xml_escape`]).

/// One CSV field (RFC 4180): quoted when it holds a comma, a semicolon (the separator
/// spreadsheets use in many locales), a quote or a line break. Text that a spreadsheet would
/// run as a formula (`=`, `+`, `-`, `@`, a tab, a carriage return or a NUL first) gets a
/// leading `'`, so an opened export cannot execute anything (OWASP's CSV injection advice).
pub fn csv_field(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@', '\t', '\r', '\0']) { format!("'{s}") } else { s.to_string() };
    if s.contains([',', ';', '"', '\n', '\r']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_and_defused() {
        assert_eq!(csv_field("abc"), "abc");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("=HYPERLINK(1)"), "'=HYPERLINK(1)");
        assert_eq!(csv_field("-1,2"), "\"'-1,2\"");
        assert_eq!(csv_field("a;b"), "\"a;b\"");
        assert_eq!(csv_field("\0=1"), "'\0=1");
    }
}
