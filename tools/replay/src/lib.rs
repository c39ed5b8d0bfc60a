//! `cgm-replay`: the operator's way out of quarantine. Lists what the push route kept
//! because it could not be stored as a reading, and re-processes those bodies through the
//! current parser once it has learnt their shape.
//!
//! A body that now parses is stored exactly as the push route would store it (the same
//! conditional put on `testId`; a reading already there is a duplicate or a recorded
//! conflict) and only then removed from quarantine. Truncated stubs of oversized bodies and
//! bodies that still do not parse stay. The default is a dry run that changes nothing.
//!
//! Not a Lambda and not a bulk migration tool: one scan of the quarantine table, which is
//! expected to be small. Bodies hold personal data; nothing here prints one unless asked.
//!
//! The table also holds the stream records the readings-stream consumer gave up on for good
//! (`source` = `stream`, no body): the listing shows them as such and never applies one;
//! [`poison`] (`cgm-replay poison`) redoes them.

pub mod poison;
pub mod rollups;
pub mod stream;

use aws_sdk_dynamodb::types::AttributeValue;
use cgm_domain::alerts::AlertSettings;
use cgm_domain::ids::TestId;
use cgm_domain::push::{EARLIEST_MEASURED_AT, Reading, Unusable, parse_push_arrived};
use cgm_domain::store::StoreError;
use cgm_domain::store::poison::Poisoned;
use cgm_domain::store::push::{Arrival, Conflict, PushStore, PutOutcome};
use cgm_domain::time::{SourceZone, Timestamp};
use cgm_shared::store::attr::{self, classify};
use cgm_shared::store::poison::dynamodb::poisoned_of;
use cgm_shared::store::push::dynamodb::DynamoStore;
use std::collections::HashMap;
use std::time::Duration;

/// One quarantined body, as the push route kept it.
#[derive(Clone, PartialEq)]
pub struct Quarantined {
    pub body_sha256: String,
    pub reason: String,
    pub received_at_ms: Option<i64>,
    pub request_id: Option<String>,
    /// The length of the body as it arrived.
    pub body_length: u64,
    /// True for the stub of an oversized body: `body` holds only its first bytes.
    pub truncated: bool,
    pub body: Vec<u8>,
    /// A stream record the consumer gave up on, not a push body.
    pub stream: Option<Poisoned>,
}

/// The body is personal data: `Debug` shows its length only.
impl std::fmt::Debug for Quarantined {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Quarantined")
            .field("body_sha256", &self.body_sha256)
            .field("reason", &self.reason)
            .field("received_at_ms", &self.received_at_ms)
            .field("body_length", &self.body_length)
            .field("truncated", &self.truncated)
            .field("body", &format_args!("<{} bytes>", self.body.len()))
            .field("stream", &self.stream)
            .finish()
    }
}

/// What the current parser makes of a quarantined body.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// The stub of an oversized body: there is nothing whole to parse.
    Truncated,
    StillUnusable(Unusable),
    /// It parses now, as the reading with this `testId`.
    Parses {
        test_id: TestId,
    },
    /// A readings-stream record the consumer gave up on: `cgm-replay poison` redoes it.
    StreamRecord {
        test_id: TestId,
    },
}

/// What `--apply` did with an item.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Left in quarantine (truncated, or still unusable).
    Kept,
    /// Stored as a new reading and removed from quarantine.
    Stored,
    /// The same reading was already stored; removed from quarantine.
    Duplicate,
    /// Another measurement is stored under its `testId`: recorded in the conflicts table,
    /// as the push route does, and removed from quarantine.
    Conflict,
    /// Storage failed; the item stays in quarantine and a later run tries again.
    Failed(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    pub item: Quarantined,
    pub verdict: Verdict,
    /// `None` in a dry run.
    pub action: Option<Action>,
}

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("reading the quarantine table failed")]
    Scan(#[source] StoreError),
    #[error("a quarantine item has no {0}")]
    Shape(&'static str),
}

/// Every quarantined item, oldest first. `only` keeps those whose `bodySha256` starts with it.
pub async fn list(store: &DynamoStore, only: Option<&str>) -> Result<Vec<Quarantined>, ReplayError> {
    let scan = store.client().scan().table_name(&store.tables().quarantine).consistent_read(true);
    let mut items = Vec::new();
    for item in cgm_shared::store::attr::scan_all(scan).await.map_err(ReplayError::Scan)? {
        let q = from_item(&item)?;
        if only.is_none_or(|p| q.body_sha256.starts_with(p)) {
            items.push(q);
        }
    }
    items.sort_by(|a, b| (a.received_at_ms, &a.body_sha256).cmp(&(b.received_at_ms, &b.body_sha256)));
    Ok(items)
}

fn from_item(item: &HashMap<String, AttributeValue>) -> Result<Quarantined, ReplayError> {
    let s = |k: &str| item.get(k).and_then(|v| v.as_s().ok()).cloned();
    let n = |k: &str| item.get(k).and_then(|v| v.as_n().ok()).and_then(|v| v.parse::<i64>().ok());
    let body = match item.get(attr::BODY) {
        Some(AttributeValue::B(b)) => b.as_ref().to_vec(),
        Some(AttributeValue::S(text)) => text.clone().into_bytes(),
        _ => Vec::new(),
    };
    Ok(Quarantined {
        body_sha256: s(attr::BODY_SHA256).ok_or(ReplayError::Shape("bodySha256"))?,
        reason: s(attr::REASON).unwrap_or_default(),
        received_at_ms: n(attr::RECEIVED_AT),
        request_id: s(attr::REQUEST_ID),
        body_length: n(attr::BODY_LENGTH).map_or(body.len() as u64, |l| l.max(0) as u64),
        truncated: matches!(item.get(attr::TRUNCATED), Some(AttributeValue::Bool(true))),
        body,
        stream: poisoned_of(item),
    })
}

/// What the current parser makes of an item.
pub fn judge(item: &Quarantined, zone: &SourceZone) -> Verdict {
    if let Some(p) = &item.stream {
        return Verdict::StreamRecord { test_id: p.test_id.clone() };
    }
    if item.truncated {
        return Verdict::Truncated;
    }
    match parse(item, zone) {
        Ok(r) => Verdict::Parses { test_id: r.test_id },
        Err(why) => Verdict::StillUnusable(why),
    }
}

/// The body parsed as the push route parsed it: the time rules against the time it arrived
/// (`receivedAt`), so a reading is judged as it was then, not by how long it has waited in
/// quarantine. An item without a `receivedAt`, or with one before any push this stack can
/// have taken (tools write 0 for "unknown"), is judged against now. The clock-ahead flag
/// uses `CLOCK_AHEAD_MINUTES`' default.
fn parse(item: &Quarantined, zone: &SourceZone) -> Result<Reading, Unusable> {
    let received_at = item
        .received_at_ms
        .map(Timestamp::from_ms)
        .filter(|t| *t >= EARLIEST_MEASURED_AT)
        .unwrap_or_else(Timestamp::now);
    let clock_ahead = Duration::from_secs(AlertSettings::default().clock_ahead_minutes.saturating_mul(60));
    parse_push_arrived(&item.body, zone, received_at, clock_ahead)
}

/// Judges every quarantined item (matching `only`) and, with `apply`, stores those that now
/// parse and removes them from quarantine.
pub async fn replay(
    store: &DynamoStore,
    zone: &SourceZone,
    apply: bool,
    only: Option<&str>,
) -> Result<Vec<Line>, ReplayError> {
    let mut lines = Vec::new();
    for item in list(store, only).await? {
        let verdict = judge(&item, zone);
        let action = match (&verdict, apply) {
            (_, false) => None,
            (Verdict::Parses { .. }, true) => Some(store_and_release(store, zone, &item).await),
            (_, true) => Some(Action::Kept),
        };
        lines.push(Line { item, verdict, action });
    }
    Ok(lines)
}

async fn store_and_release(store: &DynamoStore, zone: &SourceZone, item: &Quarantined) -> Action {
    let Ok(reading) = parse(item, zone) else { return Action::Kept };
    // The reading arrived when the push did, through that request.
    let arrival = Arrival {
        received_at_ms: item.received_at_ms.unwrap_or_else(|| chrono::Utc::now().timestamp_millis()),
        request_id: item.request_id.clone().unwrap_or_default(),
    };
    let action = match store.put_reading(&reading, &arrival).await {
        Ok(PutOutcome::Stored) => Action::Stored,
        Ok(PutOutcome::Existing(Some(old))) if old == reading.measurement() => Action::Duplicate,
        Ok(PutOutcome::Existing(_)) => {
            let conflict =
                Conflict { reading: &reading, measurement_hash: reading.measurement().hash(), raw_body: &item.body };
            match store.put_conflict(&conflict, &arrival).await {
                Ok(_) => Action::Conflict,
                Err(e) => return Action::Failed(format!("recording the conflict: {e}")),
            }
        }
        Err(e) => return Action::Failed(format!("storing the reading: {e}")),
    };
    // Only once the reading (or its conflict) is durable does the body leave quarantine.
    let removed = store
        .client()
        .delete_item()
        .table_name(&store.tables().quarantine)
        .key(attr::BODY_SHA256, AttributeValue::S(item.body_sha256.clone()))
        .send()
        .await;
    match removed {
        Ok(_) => action,
        Err(e) => Action::Failed(format!(
            "stored, but removing it from quarantine failed ({}); a later run finds it a duplicate",
            classify(e)
        )),
    }
}

/// One line for the operator: hash, arrival, length, reason and verdict; never the body.
pub fn describe(line: &Line) -> String {
    let q = &line.item;
    let received = q
        .received_at_ms
        .and_then(chrono::DateTime::from_timestamp_millis)
        .map_or_else(|| "unknown".to_string(), |t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
    let verdict = match &line.verdict {
        Verdict::Truncated => "truncated stub of an oversized body: stays".to_string(),
        Verdict::StillUnusable(why) => format!("still unusable ({why}): stays"),
        Verdict::Parses { test_id } => format!("parses now as testId {}", short(test_id.as_str())),
        Verdict::StreamRecord { test_id } => {
            format!("stream record of testId {} given up on: `cgm-replay poison` redoes it", short(test_id.as_str()))
        }
    };
    let action = match &line.action {
        None => String::new(),
        Some(Action::Kept) => String::new(),
        Some(Action::Stored) => " -> stored, removed from quarantine".into(),
        Some(Action::Duplicate) => " -> already stored (duplicate), removed from quarantine".into(),
        Some(Action::Conflict) => " -> another measurement is stored: recorded as a conflict, removed".into(),
        Some(Action::Failed(why)) => format!(" -> FAILED, stays: {why}"),
    };
    format!("{}  {received}  {:>7} B  reason: {}  => {verdict}{action}", q.body_sha256, q.body_length, q.reason)
}

/// The closing summary.
pub fn summary(lines: &[Line], apply: bool) -> String {
    let count = |f: &dyn Fn(&Line) -> bool| lines.iter().filter(|l| f(l)).count();
    let parse = count(&|l| matches!(l.verdict, Verdict::Parses { .. }));
    let unusable = count(&|l| matches!(l.verdict, Verdict::StillUnusable(_)));
    let truncated = count(&|l| l.verdict == Verdict::Truncated);
    let stream = count(&|l| matches!(l.verdict, Verdict::StreamRecord { .. }));
    let mut s = format!(
        "{} quarantined: {parse} parse now, {unusable} still unusable, {truncated} truncated stub(s).",
        lines.len() - stream
    );
    if stream > 0 {
        s.push_str(&format!(" {stream} stream record(s) given up on: see `cgm-replay poison`."));
    }
    if apply {
        let released =
            count(&|l| matches!(l.action, Some(Action::Stored) | Some(Action::Duplicate) | Some(Action::Conflict)));
        let failed = count(&|l| matches!(l.action, Some(Action::Failed(_))));
        s.push_str(&format!(" Applied: {released} released from quarantine, {failed} failed."));
    } else if parse > 0 {
        s.push_str(&format!(" Dry run: nothing changed; --apply stores the {parse} that parse."));
    } else {
        s.push_str(" Dry run: nothing changed.");
    }
    s
}

/// An id as the listing shows it: clipped as log lines clip it, marked when cut.
pub fn short(s: &str) -> String {
    let cut = cgm_domain::ids::clip_for_log(s);
    if cut.len() < s.len() { format!("{cut}…") } else { cut.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(body: &[u8], truncated: bool) -> Quarantined {
        Quarantined {
            body_sha256: "ab".repeat(32),
            reason: "old parser".into(),
            received_at_ms: Some(1_700_000_000_000),
            request_id: None,
            body_length: body.len() as u64,
            truncated,
            body: body.to_vec(),
            stream: None,
        }
    }

    #[test]
    fn verdicts_follow_the_current_parser() {
        let z = SourceZone::default();
        let ok = br#"{"reservedCode":"01","data":{"testId":"t1","testResult":"5.6","testTime":"2023-11-14 08:00:00"}}"#;
        assert_eq!(judge(&item(ok, false), &z), Verdict::Parses { test_id: "t1".into() });
        assert_eq!(judge(&item(ok, true), &z), Verdict::Truncated, "a stub is never parsed");
        assert_eq!(judge(&item(b"{", false), &z), Verdict::StillUnusable(Unusable::NotJson));
    }

    #[test]
    fn the_time_rules_use_the_items_arrival() {
        let z = SourceZone::default();
        // Arrived 2023-11-14T22:13:20Z, 2023-11-15 06:13:20 in China.
        let at = |t: &str| {
            format!(r#"{{"reservedCode":"01","data":{{"testId":"t1","testResult":"5.6","testTime":"{t}"}}}}"#)
        };
        let ahead = item(at("2023-11-15 07:00:00").as_bytes(), false);
        assert_eq!(judge(&ahead, &z), Verdict::Parses { test_id: "t1".into() }, "within the day after arrival");
        let far = item(at("2023-11-16 07:00:00").as_bytes(), false);
        assert_eq!(judge(&far, &z), Verdict::StillUnusable(Unusable::TestTimeAfterArrival));
        let absurd = item(at("+262142-12-31 20:00:00").as_bytes(), false);
        assert_eq!(judge(&absurd, &z), Verdict::StillUnusable(Unusable::TestTimeAfterArrival));
        let unknown = Quarantined { received_at_ms: Some(0), ..item(at("2023-11-16 07:00:00").as_bytes(), false) };
        assert_eq!(judge(&unknown, &z), Verdict::Parses { test_id: "t1".into() }, "an arrival of 0 is unknown: now");
    }

    #[test]
    fn lines_never_show_the_body() {
        let body = br#"{"reservedCode":"01","data":{"patientName":"CANARY-NAME"}}"#;
        let line = Line { item: item(body, false), verdict: Verdict::Truncated, action: Some(Action::Kept) };
        let text = format!("{} {:?}", describe(&line), line);
        assert!(!text.contains("CANARY"), "{text}");
        assert!(text.contains("2023-11-14T22:13:20Z") && text.contains("old parser"), "{text}");
    }

    #[test]
    fn a_stream_record_is_listed_as_one_and_never_parsed() {
        let p = Poisoned::new(
            "t9".into(),
            "SN-9".into(),
            "4200",
            &["rollup: the day has no instants"],
            cgm_domain::time::Timestamp::from_ms(1_700_000_000_000),
        );
        let mut q = item(b"", false);
        q.body_sha256 = p.key.clone();
        q.reason = p.reason.clone();
        q.stream = Some(p);
        let line = Line { verdict: judge(&q, &SourceZone::default()), item: q, action: Some(Action::Kept) };
        assert_eq!(line.verdict, Verdict::StreamRecord { test_id: "t9".into() });
        let text = describe(&line);
        assert!(text.contains("stream record of testId t9") && text.contains("the day has no instants"), "{text}");
        assert!(
            summary(&[line], true)
                .starts_with("0 quarantined: 0 parse now, 0 still unusable, 0 truncated stub(s). 1 stream record(s)")
        );
    }
}
