//! Where alert and sensor events go: the stack's EventBridge bus, or (locally, and in tests)
//! a sink in memory that prints each event and keeps it for a test to read.
//!
//! `PutEvents` takes at most 10 entries a call and reports failures per entry inside a
//! successful answer (`FailedEntryCount`): [`publish`] sends in tens, sends the failed
//! entries once more, and reports which still failed, so their stream records are failed
//! and Lambda redelivers them (the events carry stable ids: a consumer drops a repeat).

use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use std::future::Future;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The bus's source for every event of this stack.
pub const SOURCE: &str = "cgm-bridge";
/// Entries per `PutEvents` call (the service's limit).
pub const MAX_ENTRIES: usize = 10;

/// One event as the bus takes it (`cgm.alert.opened`, `cgm.sensor.started`, …, and its JSON
/// detail): what a session's outbox keeps until it is sent.
pub use cgm_domain::session::Outgoing as BusEntry;

pub trait EventSink: Send + Sync {
    /// Sends up to [`MAX_ENTRIES`]; returns the indexes of the entries that were not taken
    /// (all of them when the call itself failed).
    fn put(&self, entries: &[BusEntry]) -> impl Future<Output = Vec<usize>> + Send;
}

/// Sends every entry, ten at a time, failed ones once more; the indexes that still failed.
pub async fn publish<S: EventSink>(sink: &S, entries: &[BusEntry]) -> Vec<usize> {
    let mut failed = Vec::new();
    for (c, chunk) in entries.chunks(MAX_ENTRIES).enumerate() {
        let first = sink.put(chunk).await;
        if first.is_empty() {
            continue;
        }
        let again: Vec<BusEntry> = first.iter().map(|i| chunk[*i].clone()).collect();
        let second = sink.put(&again).await;
        failed.extend(second.into_iter().map(|j| c * MAX_ENTRIES + first[j]));
    }
    failed
}

#[derive(Debug, Clone)]
pub struct EventBridgeSink {
    client: aws_sdk_eventbridge::Client,
    bus: String,
}

impl EventBridgeSink {
    pub fn new(client: aws_sdk_eventbridge::Client, bus: String) -> Self {
        Self { client, bus }
    }
}

impl EventSink for EventBridgeSink {
    async fn put(&self, entries: &[BusEntry]) -> Vec<usize> {
        let all = || (0..entries.len()).collect::<Vec<_>>();
        let built: Vec<PutEventsRequestEntry> = entries
            .iter()
            .map(|e| {
                PutEventsRequestEntry::builder()
                    .event_bus_name(&self.bus)
                    .source(SOURCE)
                    .detail_type(&e.detail_type)
                    .detail(&e.detail)
                    .build()
            })
            .collect();
        match self.client.put_events().set_entries(Some(built)).send().await {
            Ok(out) if out.failed_entry_count() == 0 => Vec::new(),
            Ok(out) => {
                // Entries answer in request order; one with an error code was not taken.
                let codes: Vec<Option<&str>> = out.entries().iter().map(|e| e.error_code()).collect();
                tracing::warn!(target: "cgm_events", failed = out.failed_entry_count(), codes = ?codes.iter().flatten().collect::<Vec<_>>(), "PutEvents refused entries");
                (0..entries.len()).filter(|i| codes.get(*i).is_none_or(|c| c.is_some())).collect()
            }
            Err(e) => {
                tracing::warn!(target: "cgm_events", error = %aws_sdk_eventbridge::error::DisplayErrorContext(&e), "PutEvents failed");
                all()
            }
        }
    }
}

/// Events kept in memory (and printed, for `make dev`): what the tests read.
#[derive(Debug, Default)]
pub struct MemorySink {
    pub events: Mutex<Vec<BusEntry>>,
    /// Refuse this many entries (one by one, as `PutEvents` reports them) before taking any.
    pub refuse: AtomicUsize,
    pub print: bool,
}

impl MemorySink {
    pub fn printing() -> Self {
        MemorySink { print: true, ..MemorySink::default() }
    }

    pub fn taken(&self) -> Vec<BusEntry> {
        self.events.lock().expect("sink lock").clone()
    }
}

impl EventSink for MemorySink {
    async fn put(&self, entries: &[BusEntry]) -> Vec<usize> {
        let mut failed = Vec::new();
        let mut kept = self.events.lock().expect("sink lock");
        for (i, e) in entries.iter().enumerate() {
            let refused = self.refuse.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok();
            if refused {
                failed.push(i);
                continue;
            }
            if self.print {
                println!("event {} {}", e.detail_type, e.detail);
            }
            kept.push(e.clone());
        }
        failed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(n: usize) -> Vec<BusEntry> {
        (0..n).map(|i| BusEntry { detail_type: "t".into(), detail: format!("{{\"i\":{i}}}") }).collect()
    }

    #[tokio::test]
    async fn refused_entries_are_sent_again_once_and_what_still_fails_is_reported() {
        let sink = MemorySink::default();
        sink.refuse.store(3, Ordering::SeqCst);
        // 25 entries: calls of 10, 10, 5; the first three refused, then taken on the retry.
        assert!(publish(&sink, &entries(25)).await.is_empty());
        assert_eq!(sink.taken().len(), 25);
        let sink = MemorySink::default();
        sink.refuse.store(100, Ordering::SeqCst);
        assert_eq!(publish(&sink, &entries(12)).await, (0..12).collect::<Vec<_>>());
    }
}
