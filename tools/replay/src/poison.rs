//! `cgm-replay poison`: the readings-stream records the consumer gave up on for good (it
//! wrote them aside to the quarantine table, `source` = `stream`, and moved on). Lists them
//! (testId, deviceSn, sequence number, reason, when) and, with `--apply` once the cause is
//! fixed, redoes each: the reading is read again from the readings table by its testId and
//! handed to the consumer's own steps as a stream record of it, as Lambda would have. The
//! steps are idempotent, so what was done before changes nothing. A record is removed only
//! once it went through every step, or when its reading is no longer one the consumer takes
//! (deleted, say: the fix for an absurd reading). The stream's 24 hours do not matter here.

use aws_sdk_dynamodb::types::AttributeValue;
use cgm_domain::store::StoreError;
use cgm_domain::store::poison::{PoisonStore, Poisoned};
use cgm_events::Service;
use cgm_events::sink::EventSink;
use cgm_events::stream;
use cgm_shared::store::attr::{self, classify};

/// What `--apply` did with a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Redo {
    /// Every step took the reading: the record is removed.
    Redone,
    /// The readings table no longer holds a reading the consumer takes under its testId:
    /// nothing is left to do, and the record is removed.
    Gone,
    /// A step still cannot succeed on it (why); it stays (under this reason's record).
    StillPoisoned(String),
    /// A step failed as a retry may cure, or a table did not answer: it stays, and a later
    /// run tries again.
    Failed(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub record: Poisoned,
    /// `None` in a dry run.
    pub redo: Option<Redo>,
}

/// Every record given up on (with `only`, those of that testId or whose key starts with
/// it), oldest first, and with `apply` each redone.
pub async fn run<K: EventSink>(
    client: &aws_sdk_dynamodb::Client,
    readings_table: &str,
    service: &Service<K>,
    apply: bool,
    only: Option<&str>,
) -> Result<Vec<Line>, StoreError> {
    let records = service.poison_store().poisoned().await?;
    let mut lines = Vec::new();
    for record in records {
        if only.is_some_and(|o| record.test_id.as_str() != o && !record.key.starts_with(o)) {
            continue;
        }
        let redo = if apply { Some(redo(client, readings_table, service, &record).await) } else { None };
        lines.push(Line { record, redo });
    }
    Ok(lines)
}

async fn redo<K: EventSink>(
    client: &aws_sdk_dynamodb::Client,
    readings_table: &str,
    service: &Service<K>,
    record: &Poisoned,
) -> Redo {
    let got = client
        .get_item()
        .table_name(readings_table)
        .key(attr::TEST_ID, AttributeValue::S(record.test_id.as_str().to_string()))
        .consistent_read(true)
        .send()
        .await;
    let item = match got {
        Ok(out) => out.item,
        Err(e) => return Redo::Failed(format!("reading the reading: {}", classify(e))),
    };
    let seq = if record.sequence_number.is_empty() { "replay" } else { record.sequence_number.as_str() };
    let batch = stream::readings(&stream::event_of_items(&[(seq.to_string(), item.unwrap_or_default())]));
    let redo = if batch.readings.is_empty() {
        Redo::Gone
    } else {
        let outcome = service.process(&batch).await;
        if !outcome.failed.is_empty() {
            return Redo::Failed("a step failed again (a retry may cure it): it stays".into());
        }
        match outcome.poisoned.first() {
            // Written aside again: the same item, or one under its new reason.
            Some(again) if again.key == record.key => return Redo::StillPoisoned(again.reason.clone()),
            Some(again) => Redo::StillPoisoned(again.reason.clone()),
            None => Redo::Redone,
        }
    };
    match service.poison_store().release(&record.key).await {
        Ok(()) => redo,
        Err(e) => Redo::Failed(format!("done, but removing the record failed ({e}); a later run finds it done")),
    }
}

/// One line for the operator: the record's keys, when, why, and what `--apply` did.
pub fn describe(line: &Line) -> String {
    let p = &line.record;
    let when =
        p.at.to_datetime()
            .map_or_else(|| "unknown".to_string(), |t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
    let redo = match &line.redo {
        None => String::new(),
        Some(Redo::Redone) => " => redone, removed".into(),
        Some(Redo::Gone) => " => no such reading any more, removed".into(),
        Some(Redo::StillPoisoned(why)) => format!(" => STILL given up on, stays: {why}"),
        Some(Redo::Failed(why)) => format!(" => FAILED, stays: {why}"),
    };
    format!(
        "{when}  testId {}  deviceSn {}  sequenceNumber {}  reason: {}{redo}",
        crate::short(p.test_id.as_str()),
        crate::short(p.device_sn.as_str()),
        p.sequence_number,
        p.reason
    )
}

/// The closing summary.
pub fn summary(lines: &[Line], apply: bool) -> String {
    let mut s = format!("{} stream record(s) given up on.", lines.len());
    if apply {
        let count = |f: &dyn Fn(&Redo) -> bool| lines.iter().filter(|l| l.redo.as_ref().is_some_and(f)).count();
        let done = count(&|r| matches!(r, Redo::Redone | Redo::Gone));
        let still = count(&|r| matches!(r, Redo::StillPoisoned(_)));
        let failed = count(&|r| matches!(r, Redo::Failed(_)));
        s.push_str(&format!(" Applied: {done} redone and removed, {still} still given up on, {failed} failed."));
    } else if !lines.is_empty() {
        s.push_str(" Dry run: nothing changed; --apply redoes them once the cause is fixed.");
    }
    s
}

/// True when every record listed is done with (or it was a dry run).
pub fn all_done(lines: &[Line]) -> bool {
    !lines.iter().any(|l| matches!(l.redo, Some(Redo::StillPoisoned(_)) | Some(Redo::Failed(_))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use cgm_domain::time::Timestamp;

    #[test]
    fn a_line_names_the_record_and_what_was_done() {
        let record = Poisoned::new(
            "t1".into(),
            "SN-1".into(),
            "4200",
            &["rollup: the day has no instants"],
            Timestamp::from_ms(1_700_000_000_000),
        );
        let dry = Line { record: record.clone(), redo: None };
        assert_eq!(
            describe(&dry),
            "2023-11-14T22:13:20Z  testId t1  deviceSn SN-1  sequenceNumber 4200  reason: rollup: the day has no instants"
        );
        let still = Line { record, redo: Some(Redo::StillPoisoned("x".into())) };
        assert!(describe(&still).ends_with("=> STILL given up on, stays: x"));
        assert!(all_done(std::slice::from_ref(&dry)) && !all_done(std::slice::from_ref(&still)));
        assert_eq!(
            summary(&[dry, still], true),
            "2 stream record(s) given up on. Applied: 0 redone and removed, 1 still given up on, 0 failed."
        );
    }
}
