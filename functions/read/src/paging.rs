//! Turning the device/time index into pages: keep querying until the page is full or the
//! index has no more (a filter on `valid` can return few readings per call, or none), never
//! past a byte budget, and never past a time budget.
//!
//! A page ends on a reading; the cursor is that reading's index key, so the next page starts
//! right after it and paging to the end returns each reading exactly once.

use cgm_shared::store::StoreError;
use cgm_shared::store::reads::{Position, ReadStore, ReadingQuery, StoredReading};
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

#[derive(Debug, thiserror::Error)]
pub enum ReadAllError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the range holds more than {0} readings")]
    TooMany(usize),
}

/// Every reading of the query, for routes that compute over a whole range (bounded by the
/// caller's maximum range, and by `max` as a backstop).
pub async fn read_all<S: ReadStore>(
    store: &S,
    q: &ReadingQuery<'_>,
    max: usize,
) -> Result<Vec<StoredReading>, ReadAllError> {
    let mut out = Vec::new();
    let mut start = None;
    loop {
        let batch = store.query_readings(q, start.as_ref(), None).await?;
        out.extend(batch.readings);
        if out.len() > max {
            return Err(ReadAllError::TooMany(max));
        }
        match batch.next {
            None => return Ok(out),
            Some(p) => start = Some(p),
        }
    }
}

/// The nearest reading strictly before `before_ms` or strictly after `after_ms` (whichever is
/// given), of any validity: the anchors of a hole that crosses a range's ends.
pub async fn neighbour<S: ReadStore>(
    store: &S,
    device_sn: &str,
    side: Side,
) -> Result<Option<StoredReading>, StoreError> {
    let q = match side {
        Side::Before(t) if t > i64::MIN => {
            ReadingQuery { device_sn, from_ms: i64::MIN, to_ms: t - 1, valid_only: false, newest_first: true }
        }
        Side::After(t) if t < i64::MAX => {
            ReadingQuery { device_sn, from_ms: t + 1, to_ms: i64::MAX, valid_only: false, newest_first: false }
        }
        _ => return Ok(None),
    };
    Ok(store.query_readings(&q, None, Some(1)).await?.readings.into_iter().next())
}

#[derive(Debug, Clone, Copy)]
pub enum Side {
    Before(i64),
    After(i64),
}

#[cfg(test)]
mod tests {
    use super::*;
    use cgm_shared::store::reads::{Batch, FollowToken, TokenHash};
    use std::sync::Mutex;
    use std::time::Duration;

    /// The index in memory: readings in key order, `limit` counting readings evaluated
    /// before the filter, as DynamoDB does.
    #[derive(Default)]
    struct Index {
        readings: Vec<StoredReading>,
        calls: Mutex<usize>,
    }

    impl ReadStore for Index {
        async fn query_readings(
            &self,
            q: &ReadingQuery<'_>,
            start: Option<&Position>,
            limit: Option<u32>,
        ) -> Result<Batch, StoreError> {
            *self.calls.lock().unwrap() += 1;
            let mut rows: Vec<&StoredReading> = self
                .readings
                .iter()
                .filter(|r| r.device_sn == q.device_sn && (q.from_ms..=q.to_ms).contains(&r.measured_at_ms))
                .collect();
            rows.sort_by(|a, b| (a.measured_at_ms, &a.test_id).cmp(&(b.measured_at_ms, &b.test_id)));
            if q.newest_first {
                rows.reverse();
            }
            if let Some(p) = start {
                let key = (p.measured_at_ms, &p.test_id);
                rows.retain(|r| {
                    let k = (r.measured_at_ms, &r.test_id);
                    if q.newest_first { k < key } else { k > key }
                });
            }
            let evaluated = limit.map_or(rows.len(), |l| (l as usize).min(rows.len()));
            let next = (evaluated < rows.len()).then(|| rows[evaluated - 1].position());
            let readings =
                rows[..evaluated].iter().filter(|r| !q.valid_only || r.valid).map(|r| (*r).clone()).collect();
            Ok(Batch { readings, next })
        }
        async fn put_follow_token(&self, _: &FollowToken) -> Result<(), StoreError> {
            Ok(())
        }
        async fn find_follow_token(&self, _: TokenHash<'_>) -> Result<Option<FollowToken>, StoreError> {
            Ok(None)
        }
        async fn delete_follow_token(&self, _: &str, _: &str) -> Result<bool, StoreError> {
            Ok(false)
        }
    }

    fn index(n: usize, valid: impl Fn(usize) -> bool) -> Index {
        let readings = (0..n)
            .map(|i| StoredReading {
                test_id: format!("t{i:05}"),
                device_sn: "D".into(),
                measured_at_ms: i as i64 * 180_000,
                mmol: 5.0,
                serial_no: Some(i as u64 + 1),
                status: Some(if valid(i) { "0" } else { "1" }.into()),
                valid: valid(i),
                incre_minute: Some(3),
                low: None,
                high: None,
            })
            .collect();
        Index { readings, calls: Mutex::new(0) }
    }

    const Q: ReadingQuery<'static> =
        ReadingQuery { device_sn: "D", from_ms: i64::MIN, to_ms: i64::MAX, valid_only: true, newest_first: false };

    fn later() -> Instant {
        Instant::now() + Duration::from_secs(60)
    }

    async fn walk(store: &Index, q: &ReadingQuery<'_>, limit: usize, budget: usize) -> Vec<Vec<String>> {
        let mut pages = Vec::new();
        let mut start = None;
        loop {
            let page = fill_page(store, q, start, limit, budget, later(), |r| (r.test_id.clone(), 100)).await.unwrap();
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
        let pages = walk(&store, &Q, 30, usize::MAX).await;
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
        let pages = walk(&store, &ReadingQuery { valid_only: false, ..Q }, 30, usize::MAX).await;
        assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), vec![30, 30]);
    }

    #[tokio::test]
    async fn the_byte_budget_cuts_a_page_and_the_rest_follows() {
        // 100 bytes a reading, 1,000 bytes a page: pages of 10 however large the limit.
        let store = index(45, |_| true);
        let pages = walk(&store, &ReadingQuery { valid_only: false, ..Q }, 5_000, 1_000).await;
        assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), vec![10, 10, 10, 10, 5]);
    }

    #[tokio::test]
    async fn a_spent_time_budget_answers_with_what_it_has_and_a_cursor() {
        let store = index(1_000, |i| i >= 900);
        let page =
            fill_page(&store, &Q, None, 10, usize::MAX, Instant::now(), |r| (r.test_id.clone(), 1)).await.unwrap();
        assert!(page.items.is_empty());
        let next = page.next.expect("a cursor to go on from");
        assert_eq!(*store.calls.lock().unwrap(), 1);
        let rest =
            fill_page(&store, &Q, Some(next), 10, usize::MAX, later(), |r| (r.test_id.clone(), 1)).await.unwrap();
        assert_eq!(rest.items.first().map(String::as_str), Some("t00900"));
    }

    #[tokio::test]
    async fn read_all_stops_at_its_backstop() {
        let store = index(50, |_| true);
        assert_eq!(read_all(&store, &Q, 100).await.unwrap().len(), 50);
        assert!(matches!(read_all(&store, &Q, 10).await, Err(ReadAllError::TooMany(10))));
    }
}
