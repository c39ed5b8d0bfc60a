//! The EHR as the CGM IG's Data Receiver: `POST [base]/$submit-cgm-bundle` (the IG's only
//! submission path) and, when the patient is found by search, `GET [base]/Patient`.
//!
//! A bundle is tried again, the same bundle, after a 429 (as long as `Retry-After` says, or
//! backing off without one), a 5xx, a timeout or a lost connection, with exponential backoff
//! and jitter, while the run has time; after a 401 once with a new token. Any other answer
//! is final for that bundle. The reply's `transaction-response` gives each entry's status in
//! the order sent.

use crate::smart::{SmartError, Tokens, reqwest_class};
use serde_json::Value;
use std::time::{Duration, Instant};

pub const FHIR_JSON: &str = "application/fhir+json";
/// One request's longest wait for its whole answer.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// A `Retry-After` longer than this is read as this (the run gives up sooner anyway).
const MAX_RETRY_AFTER: Duration = Duration::from_secs(3_600);

/// How a bundle is retried.
#[derive(Debug, Clone, Copy)]
pub struct Retry {
    pub attempts: u32,
    pub first_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Retry { attempts: 6, first_backoff: Duration::from_millis(500), max_backoff: Duration::from_secs(30) }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EhrError {
    #[error(transparent)]
    Auth(#[from] SmartError),
    #[error("the EHR refused the request with {status}{}", if issues.is_empty() { String::new() } else { format!(" (issues: {})", issues.join(", ")) })]
    Refused { status: u16, issues: Vec<String> },
    #[error("the EHR did not take the request after {attempts} tries (last: {last})")]
    GaveUp { attempts: u32, last: String },
    #[error("the EHR's reply is not what was asked for ({0})")]
    Malformed(&'static str),
    #[error("the EHR found {0} patients with the patient's identifier")]
    AmbiguousPatient(usize),
}

impl EhrError {
    /// Whether the EHR itself is unavailable (the run stops rather than try each device).
    pub fn is_outage(&self) -> bool {
        match self {
            EhrError::GaveUp { .. } => true,
            EhrError::Auth(e) => e.is_transient(),
            _ => false,
        }
    }
}

pub struct Ehr {
    http: reqwest::Client,
    base: String,
    tokens: Tokens,
    retry: Retry,
}

enum Attempt {
    Done(reqwest::StatusCode, Vec<u8>),
    Again { wait: Option<Duration>, why: String },
}

impl Ehr {
    pub fn new(http: reqwest::Client, base: String, tokens: Tokens, retry: Retry) -> Self {
        Ehr { http, base, tokens, retry }
    }

    /// Submits `bundle` of `entries` entries; each entry's HTTP status, in order.
    pub async fn submit(&self, bundle: &str, entries: usize, until: Instant) -> Result<Vec<u16>, EhrError> {
        let url = format!("{}/$submit-cgm-bundle", self.base);
        let (status, body) =
            self.send(|http| http.post(&url).header("content-type", FHIR_JSON).body(bundle.to_string()), until).await?;
        if !status.is_success() {
            return Err(EhrError::Refused { status: status.as_u16(), issues: issue_codes(&body) });
        }
        entry_statuses(&body, entries)
    }

    /// What the EHR's CapabilityStatement (`[base]/metadata`) declares of conditional create
    /// on Observation: `None` when it says nothing (or cannot be read; the submitter then
    /// finds out from the first bundle's answers).
    pub async fn declares_conditional_create(&self, until: Instant) -> Option<bool> {
        let url = format!("{}/metadata", self.base);
        let (status, body) = self.send(|http| http.get(&url), until).await.ok()?;
        if !status.is_success() {
            return None;
        }
        let v: Value = serde_json::from_slice(&body).ok()?;
        v["rest"].as_array()?.iter().filter(|r| r["mode"] == "server").find_map(|r| {
            r["resource"].as_array()?.iter().find(|t| t["type"] == "Observation")?["conditionalCreate"].as_bool()
        })
    }

    /// A search of `resource` with the parameters of `form` (URL-encoded), sent as FHIR's
    /// `POST [type]/_search` so the patient's identifier never sits in a URL (where access
    /// logs keep it): the searchset Bundle.
    pub async fn search(&self, resource: &str, form: &str, until: Instant) -> Result<Value, EhrError> {
        let url = format!("{}/{resource}/_search", self.base);
        let (status, body) = self
            .send(
                |http| {
                    // Strict handling: a parameter the EHR does not support is an error, not
                    // silently dropped (which would widen the search).
                    http.post(&url)
                        .header("content-type", "application/x-www-form-urlencoded")
                        .header("prefer", "handling=strict")
                        .body(form.to_string())
                },
                until,
            )
            .await?;
        if !status.is_success() {
            return Err(EhrError::Refused { status: status.as_u16(), issues: issue_codes(&body) });
        }
        let v: Value = serde_json::from_slice(&body).map_err(|_| EhrError::Malformed("not JSON"))?;
        if v["resourceType"] != "Bundle" {
            return Err(EhrError::Malformed("a search answered something other than a Bundle"));
        }
        Ok(v)
    }

    /// The EHR's logical id of the patient with this identifier (`search`:
    /// `identifier=system|value`; `None`: no such patient).
    pub async fn find_patient(&self, search: &str, until: Instant) -> Result<Option<String>, EhrError> {
        let v = self.search("Patient", &format!("{search}&_elements=id"), until).await?;
        let ids: Vec<&str> = v["entry"]
            .as_array()
            .map(|e| {
                e.iter()
                    .filter(|e| e["search"]["mode"].as_str().is_none_or(|m| m == "match"))
                    .filter_map(|e| e["resource"]["id"].as_str())
                    .collect()
            })
            .unwrap_or_default();
        match ids.as_slice() {
            [] => Ok(None),
            [one] => Ok(Some((*one).to_string())),
            more => Err(EhrError::AmbiguousPatient(more.len())),
        }
    }

    async fn send(
        &self,
        request: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
        until: Instant,
    ) -> Result<(reqwest::StatusCode, Vec<u8>), EhrError> {
        let mut backoff = self.retry.first_backoff;
        let mut refreshed = false;
        let mut attempt = 0;
        loop {
            attempt += 1;
            // No attempt starts after the run's time, and none outlasts it.
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(EhrError::GaveUp { attempts: attempt - 1, last: "out of time".into() });
            }
            let token = self.tokens.token().await?;
            let sent = request(&self.http)
                .header("accept", FHIR_JSON)
                .bearer_auth(token.expose())
                .timeout(left.min(REQUEST_TIMEOUT))
                .send()
                .await;
            let outcome = match sent {
                Err(e) => Attempt::Again { wait: None, why: reqwest_class(&e) },
                Ok(r) => {
                    let status = r.status();
                    let retry_after =
                        r.headers().get("retry-after").and_then(|v| v.to_str().ok()).and_then(retry_after);
                    match r.bytes().await {
                        Err(e) => Attempt::Again { wait: None, why: reqwest_class(&e) },
                        Ok(body) if status.as_u16() == 401 && !refreshed => {
                            drop(body);
                            self.tokens.forget().await;
                            refreshed = true;
                            attempt -= 1;
                            continue;
                        }
                        Ok(_) if status.as_u16() == 429 => Attempt::Again { wait: retry_after, why: "429".into() },
                        Ok(_) if status.is_server_error() => {
                            Attempt::Again { wait: retry_after, why: status.as_u16().to_string() }
                        }
                        Ok(body) => Attempt::Done(status, body.to_vec()),
                    }
                }
            };
            match outcome {
                Attempt::Done(status, body) => return Ok((status, body)),
                Attempt::Again { wait, why } => {
                    let wait = wait.unwrap_or_else(|| jitter(backoff));
                    backoff = backoff.saturating_mul(2).min(self.retry.max_backoff);
                    if attempt >= self.retry.attempts || wait >= until.saturating_duration_since(Instant::now()) {
                        return Err(EhrError::GaveUp { attempts: attempt, last: why });
                    }
                    tracing::warn!(attempt, wait_ms = wait.as_millis() as u64, why = %why, "the EHR did not take the request; trying again");
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }
}

/// A `Retry-After` value: delta-seconds or an HTTP-date.
fn retry_after(v: &str) -> Option<Duration> {
    if let Ok(s) = v.trim().parse::<u64>() {
        return Some(Duration::from_secs(s).min(MAX_RETRY_AFTER));
    }
    let at = chrono::DateTime::parse_from_rfc2822(v.trim()).ok()?;
    let ms = at.timestamp_millis().saturating_sub(chrono::Utc::now().timestamp_millis());
    Some(Duration::from_millis(u64::try_from(ms).unwrap_or(0)).min(MAX_RETRY_AFTER))
}

/// A wait between half of `d` and `d` (so retries from many runs spread out).
fn jitter(d: Duration) -> Duration {
    let mut b = [0u8; 2];
    let r = if getrandom::fill(&mut b).is_ok() { u16::from_le_bytes(b) } else { u16::MAX / 2 };
    d / 2 + (d / 2).mul_f64(f64::from(r) / f64::from(u16::MAX))
}

/// The statuses of a `transaction-response`, one per entry sent, as numbers (`"201 Created"`
/// is 201).
fn entry_statuses(body: &[u8], entries: usize) -> Result<Vec<u16>, EhrError> {
    let v: Value = serde_json::from_slice(body).map_err(|_| EhrError::Malformed("not JSON"))?;
    if v["resourceType"] != "Bundle" || v["type"] != "transaction-response" {
        return Err(EhrError::Malformed("not a transaction-response Bundle"));
    }
    let got = v["entry"].as_array().map(Vec::as_slice).unwrap_or_default();
    if got.len() != entries {
        return Err(EhrError::Malformed("not one entry per entry sent"));
    }
    got.iter()
        .map(|e| {
            e["response"]["status"]
                .as_str()
                .and_then(|s| s.split_whitespace().next())
                .and_then(|c| c.parse::<u16>().ok())
                .filter(|c| (100..600).contains(c))
                .ok_or(EhrError::Malformed("an entry without a response status"))
        })
        .collect()
}

/// The `issue.code`s of an OperationOutcome: FHIR's own vocabulary, never its diagnostics
/// (which may repeat what was sent).
fn issue_codes(body: &[u8]) -> Vec<String> {
    let Ok(v) = serde_json::from_slice::<Value>(body) else { return Vec::new() };
    v["issue"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|i| i["code"].as_str())
                .filter(|c| c.len() <= 32 && c.bytes().all(|b| b.is_ascii_lowercase() || b == b'-'))
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_come_in_order_and_must_match_the_entries_sent() {
        let body = br#"{"resourceType":"Bundle","type":"transaction-response","entry":[
            {"response":{"status":"201 Created"}},{"response":{"status":"200"}},{"response":{"status":"400 Bad Request"}}]}"#;
        assert_eq!(entry_statuses(body, 3).unwrap(), vec![201, 200, 400]);
        assert!(matches!(entry_statuses(body, 4), Err(EhrError::Malformed(_))));
        assert!(matches!(
            entry_statuses(br#"{"resourceType":"Bundle","type":"batch-response","entry":[]}"#, 0),
            Err(EhrError::Malformed(_))
        ));
        let no_status = br#"{"resourceType":"Bundle","type":"transaction-response","entry":[{"response":{}}]}"#;
        assert!(matches!(entry_statuses(no_status, 1), Err(EhrError::Malformed(_))));
    }

    #[test]
    fn retry_after_in_seconds_or_as_a_date() {
        assert_eq!(retry_after("7"), Some(Duration::from_secs(7)));
        let soon = (chrono::Utc::now() + chrono::Duration::seconds(30)).to_rfc2822().replace("+0000", "GMT");
        let d = retry_after(&soon).unwrap();
        assert!(d <= Duration::from_secs(30) && d >= Duration::from_secs(25), "{d:?}");
        assert_eq!(retry_after("Sun, 06 Nov 1994 08:49:37 GMT"), Some(Duration::ZERO));
        assert_eq!(retry_after("soon"), None);
    }

    #[test]
    fn only_issue_codes_are_kept_of_an_outcome() {
        let body = br#"{"resourceType":"OperationOutcome","issue":[{"code":"invalid","diagnostics":"patient Zhang San"},{"code":"Zhang San"}]}"#;
        assert_eq!(issue_codes(body), vec!["invalid".to_string()]);
    }

    #[test]
    fn jitter_stays_between_half_and_whole() {
        for _ in 0..100 {
            let j = jitter(Duration::from_millis(1000));
            assert!(j >= Duration::from_millis(500) && j <= Duration::from_millis(1000));
        }
    }
}
