//! CloudWatch Logs JSON filter patterns (`{ $.message = "push" && $.status = 503 }`), as
//! far as the template's metric filters use them, evaluated over a JSON log line: so a test
//! can run the template's own patterns over the log lines the functions really write.
//!
//! Supported: selectors `$.a.b`, `=` and `!=` against a quoted string (`*` matches any run
//! of characters, as CloudWatch allows) or a number, `<`, `>`, `<=`, `>=` against a number,
//! `&&`, `||` and parentheses (`&&` binds tighter). As in CloudWatch, a string comparison
//! never matches a number and a numeric comparison never matches a string. Anything else is
//! an error, so an unsupported pattern cannot silently pass.

use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Open,
    Close,
    And,
    Or,
    Sel(Vec<String>),
    Op(&'static str),
    Str(String),
    Num(f64),
}

fn lex(p: &str) -> Result<Vec<Tok>, String> {
    let mut out = Vec::new();
    let b: Vec<char> = p.chars().collect();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        match c {
            ' ' | '\t' => i += 1,
            '(' => {
                out.push(Tok::Open);
                i += 1
            }
            ')' => {
                out.push(Tok::Close);
                i += 1
            }
            '&' if b.get(i + 1) == Some(&'&') => {
                out.push(Tok::And);
                i += 2
            }
            '|' if b.get(i + 1) == Some(&'|') => {
                out.push(Tok::Or);
                i += 2
            }
            '$' => {
                let start = i;
                i += 1;
                while i < b.len() && (b[i].is_alphanumeric() || b[i] == '.' || b[i] == '_') {
                    i += 1;
                }
                let sel: String = b[start..i].iter().collect();
                let path = sel.strip_prefix("$.").ok_or(format!("selector {sel} does not start with $."))?;
                out.push(Tok::Sel(path.split('.').map(str::to_string).collect()));
            }
            '"' => {
                let start = i + 1;
                i = start;
                while i < b.len() && b[i] != '"' {
                    i += 1;
                }
                if i == b.len() {
                    return Err("unterminated string".into());
                }
                out.push(Tok::Str(b[start..i].iter().collect()));
                i += 1;
            }
            '=' | '!' | '<' | '>' => {
                let two: String = b[i..(i + 2).min(b.len())].iter().collect();
                let op = match two.as_str() {
                    "!=" => "!=",
                    "<=" => "<=",
                    ">=" => ">=",
                    _ if c == '=' => "=",
                    _ if c == '<' => "<",
                    _ if c == '>' => ">",
                    _ => return Err(format!("unknown operator at {i}")),
                };
                i += op.len();
                out.push(Tok::Op(op));
            }
            c if c.is_ascii_digit() || c == '-' => {
                let start = i;
                i += 1;
                while i < b.len() && (b[i].is_ascii_digit() || b[i] == '.') {
                    i += 1;
                }
                let text: String = b[start..i].iter().collect();
                out.push(Tok::Num(text.parse().map_err(|_| format!("bad number {text}"))?));
            }
            other => return Err(format!("unsupported character {other:?} at {i}")),
        }
    }
    Ok(out)
}

#[derive(Debug)]
enum Expr {
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Cmp(Vec<String>, &'static str, Tok),
}

struct Parser {
    toks: Vec<Tok>,
    at: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.at)
    }

    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.at).cloned();
        self.at += 1;
        t
    }

    fn or(&mut self) -> Result<Expr, String> {
        let mut left = self.and()?;
        while self.peek() == Some(&Tok::Or) {
            self.next();
            left = Expr::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, String> {
        let mut left = self.term()?;
        while self.peek() == Some(&Tok::And) {
            self.next();
            left = Expr::And(Box::new(left), Box::new(self.term()?));
        }
        Ok(left)
    }

    fn term(&mut self) -> Result<Expr, String> {
        match self.next() {
            Some(Tok::Open) => {
                let e = self.or()?;
                match self.next() {
                    Some(Tok::Close) => Ok(e),
                    other => Err(format!("expected ) but found {other:?}")),
                }
            }
            Some(Tok::Sel(path)) => match (self.next(), self.next()) {
                (Some(Tok::Op(op)), Some(v @ (Tok::Str(_) | Tok::Num(_)))) => {
                    if matches!(v, Tok::Str(_)) && !matches!(op, "=" | "!=") {
                        return Err(format!("{op} needs a number"));
                    }
                    Ok(Expr::Cmp(path, op, v))
                }
                other => Err(format!("expected an operator and a value, found {other:?}")),
            },
            other => Err(format!("expected a comparison, found {other:?}")),
        }
    }
}

/// A parsed pattern.
#[derive(Debug)]
pub struct FilterPattern(Expr);

impl FilterPattern {
    pub fn parse(pattern: &str) -> Result<Self, String> {
        let inner = pattern
            .trim()
            .strip_prefix('{')
            .and_then(|p| p.strip_suffix('}'))
            .ok_or("a JSON filter pattern is enclosed in { }")?;
        let mut p = Parser { toks: lex(inner)?, at: 0 };
        let e = p.or()?;
        if p.at != p.toks.len() {
            return Err(format!("unexpected {:?}", p.peek()));
        }
        Ok(FilterPattern(e))
    }

    pub fn matches(&self, line: &Value) -> bool {
        eval(&self.0, line)
    }
}

fn eval(e: &Expr, line: &Value) -> bool {
    match e {
        Expr::And(a, b) => eval(a, line) && eval(b, line),
        Expr::Or(a, b) => eval(a, line) || eval(b, line),
        Expr::Cmp(path, op, want) => {
            let Some(got) = path.iter().try_fold(line, |v, k| v.get(k)) else { return false };
            match (want, got) {
                (Tok::Str(w), Value::String(g)) => (*op == "=") == glob(w, g),
                (Tok::Num(w), Value::Number(g)) => {
                    let g = g.as_f64().unwrap_or(f64::NAN);
                    match *op {
                        "=" => g == *w,
                        "!=" => g != *w,
                        "<" => g < *w,
                        ">" => g > *w,
                        "<=" => g <= *w,
                        ">=" => g >= *w,
                        _ => false,
                    }
                }
                _ => false,
            }
        }
    }
}

fn glob(pattern: &str, text: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == text,
        Some((head, rest)) => {
            let Some(after) = text.strip_prefix(head) else { return false };
            (0..=after.len()).filter(|i| after.is_char_boundary(*i)).any(|i| glob(rest, &after[i..]))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn patterns_match_as_cloudwatch_reads_them() {
        let p = FilterPattern::parse(r#"{ $.message = "push" && ($.outcome = "stored" || $.outcome = "duplicate") }"#)
            .unwrap();
        assert!(p.matches(&json!({"message": "push", "outcome": "stored"})));
        assert!(p.matches(&json!({"message": "push", "outcome": "duplicate"})));
        assert!(!p.matches(&json!({"message": "push", "outcome": "conflict"})));
        assert!(!p.matches(&json!({"message": "read", "outcome": "stored"})));
        let n = FilterPattern::parse(r#"{ $.status = 503 }"#).unwrap();
        assert!(n.matches(&json!({"status": 503})) && !n.matches(&json!({"status": "503"})));
        let q = FilterPattern::parse(r#"{ $.status = "4*" }"#).unwrap();
        assert!(q.matches(&json!({"status": "429"})) && !q.matches(&json!({"status": 429})));
        assert!(FilterPattern::parse(r#"{ $.status IS NULL }"#).is_err(), "unsupported is an error");
    }
}
