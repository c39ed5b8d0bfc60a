//! Turning the device/time index into pages: keep querying until the page is full or the
//! index has no more (a filter on `valid` can return few readings per call, or none), never
//! past a byte budget, and never past a time budget.
//!
//! A page ends on a reading; the cursor is that reading's index key, so the next page starts
//! right after it and paging to the end returns each reading exactly once.

use crate::ids::DeviceSn;
use crate::store::StoreError;
use crate::store::reads::{Position, ReadStore, ReadingQuery, StoredReading};
use crate::time::{TimeRange, Timestamp};
use std::time::Instant;

/// Readings evaluated per index call at least: a call costs a round trip whatever its size,
/// and with the `valid` filter a small call may return nothing.
const MIN_CALL_LIMIT: usize = 100;

pub struct Page<T> {
    pub items: Vec<T>,
    /// Where the next page starts, while the index may hold more.
    pub next: Option<Position>,
}

/// One page of at most `limit` rendered readings after `start`, their rendered sizes summing
/// to at most `budget_bytes`. `render` turns a reading into what the page holds and its size.
/// If `until` passes, the page ends early with a cursor where the index stopped.
pub async fn fill_page<S: ReadStore, T>(
    store: &S,
    q: &ReadingQuery<'_>,
    start: Option<Position>,
    limit: usize,
    budget_bytes: usize,
    until: Instant,
    render: impl Fn(&StoredReading) -> (T, usize),
) -> Result<Page<T>, StoreError> {
    let mut items: Vec<T> = Vec::new();
    let mut last: Option<Position> = None;
    let mut bytes = 0usize;
    let mut start = start;
    loop {
        // One more than the page needs, so a full page knows whether more follow.
        let want = (limit + 1).saturating_sub(items.len()).max(MIN_CALL_LIMIT);
        let batch = store.query_readings(q, start.as_ref(), Some(want as u32)).await?;
        for r in &batch.readings {
            let (item, size) = render(r);
            if items.len() == limit || (!items.is_empty() && bytes + size > budget_bytes) {
                return Ok(Page { items, next: last });
            }
            bytes += size;
            items.push(item);
            last = Some(r.position());
        }
        match batch.next {
            None => return Ok(Page { items, next: None }),
            Some(p) if Instant::now() >= until => return Ok(Page { items, next: Some(p) }),
            Some(p) => start = Some(p),
        }
    }
}

pub use crate::store::reads::{ReadAllError, read_all};

/// The nearest reading strictly before `before_ms` or strictly after `after_ms` (whichever is
/// given), of any validity: the anchors of a hole that crosses a range's ends.
pub async fn neighbour<S: ReadStore>(
    store: &S,
    device_sn: &DeviceSn,
    side: Side,
) -> Result<Option<StoredReading>, StoreError> {
    let (range, newest_first) = match side {
        Side::Before(t) if t > Timestamp::MIN => (TimeRange::new(Timestamp::MIN, t.minus_ms(1)), true),
        Side::After(t) if t < Timestamp::MAX => (TimeRange::new(t.plus_ms(1), Timestamp::MAX), false),
        _ => return Ok(None),
    };
    let Some(range) = range else { return Ok(None) };
    let q = ReadingQuery { device_sn, range, valid_only: false, newest_first };
    Ok(store.query_readings(&q, None, Some(1)).await?.readings.into_iter().next())
}

#[derive(Debug, Clone, Copy)]
pub enum Side {
    Before(Timestamp),
    After(Timestamp),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::reads::memory::MemoryReadStore;
    use crate::time::TimeRange;
    use std::sync::atomic::Ordering;
    use std::time::Duration;

    type Index = MemoryReadStore;

    fn index(n: usize, valid: impl Fn(usize) -> bool) -> Index {
        let readings = (0..n)
            .map(|i| StoredReading {
                test_id: format!("t{i:05}").into(),
                device_sn: "D".into(),
                measured_at: Timestamp::from_ms(i as i64 * 180_000),
                mmol: 5.0,
                serial_no: Some(i as u64 + 1),
                status: Some(if valid(i) { "0" } else { "1" }.into()),
                valid: valid(i),
                incre_minute: Some(3),
                low: None,
                high: None,
            })
            .collect();
        MemoryReadStore::with_readings(readings)
    }

    fn q(sn: &DeviceSn) -> ReadingQuery<'_> {
        ReadingQuery { device_sn: sn, range: TimeRange::ALL, valid_only: true, newest_first: false }
    }

    fn later() -> Instant {
        Instant::now() + Duration::from_secs(60)
    }

    async fn walk(store: &Index, q: &ReadingQuery<'_>, limit: usize, budget: usize) -> Vec<Vec<String>> {
        let mut pages = Vec::new();
        let mut start = None;
        loop {
            let page =
                fill_page(store, q, start, limit, budget, later(), |r| (r.test_id.to_string(), 100)).await.unwrap();
            pages.push(page.items);
            match page.next {
                Some(p) => start = Some(p),
                None => return pages,
            }
        }
    }

    #[tokio::test]
    async fn pages_fill_through_filtered_stretches_and_end_exactly() {
        // 1,000 readings, only every tenth valid: pages of 30 need several index calls each.
        let store = index(1_000, |i| i % 10 == 0);
        let sn = DeviceSn::from("D");
        let pages = walk(&store, &q(&sn), 30, usize::MAX).await;
        let all: Vec<String> = pages.concat();
        assert_eq!(all.len(), 100);
        let mut dedup = all.clone();
        dedup.dedup();
        assert_eq!(dedup.len(), 100, "each reading once");
        assert!(pages[..pages.len() - 1].iter().all(|p| p.len() == 30));
        assert_eq!(pages.len(), 4, "30 + 30 + 30 + 10, and no empty page after a full one");
    }

    #[tokio::test]
    async fn a_page_that_ends_exactly_with_the_data_has_no_cursor() {
        let store = index(60, |_| true);
        let sn = DeviceSn::from("D");
        let pages = walk(&store, &ReadingQuery { valid_only: false, ..q(&sn) }, 30, usize::MAX).await;
        assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), vec![30, 30]);
    }

    #[tokio::test]
    async fn the_byte_budget_cuts_a_page_and_the_rest_follows() {
        // 100 bytes a reading, 1,000 bytes a page: pages of 10 however large the limit.
        let store = index(45, |_| true);
        let sn = DeviceSn::from("D");
        let pages = walk(&store, &ReadingQuery { valid_only: false, ..q(&sn) }, 5_000, 1_000).await;
        assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), vec![10, 10, 10, 10, 5]);
    }

    #[tokio::test]
    async fn a_spent_time_budget_answers_with_what_it_has_and_a_cursor() {
        let store = index(1_000, |i| i >= 900);
        let sn = DeviceSn::from("D");
        let page = fill_page(&store, &q(&sn), None, 10, usize::MAX, Instant::now(), |r| (r.test_id.to_string(), 1))
            .await
            .unwrap();
        assert!(page.items.is_empty());
        let next = page.next.expect("a cursor to go on from");
        assert_eq!(store.calls.load(Ordering::SeqCst), 1);
        let rest = fill_page(&store, &q(&sn), Some(next), 10, usize::MAX, later(), |r| (r.test_id.to_string(), 1))
            .await
            .unwrap();
        assert_eq!(rest.items.first().map(String::as_str), Some("t00900"));
    }

    #[tokio::test]
    async fn read_all_stops_at_its_backstop() {
        let store = index(50, |_| true);
        let sn = DeviceSn::from("D");
        assert_eq!(read_all(&store, &q(&sn), 100).await.unwrap().len(), 50);
        assert!(matches!(read_all(&store, &q(&sn), 10).await, Err(ReadAllError::TooMany(10))));
    }
}
