//! Turning the glucose records of consecutive upstream windows into pages with an opaque
//! cursor, so a client can walk a long range without the proxy keeping any state.
//!
//! Records are passed through as the vendor sent them (unknown fields kept); only
//! `measured_at`, `device_sn` and `package_num` are read.

use crate::window::Window;
use cgm_domain::cursor::{CursorPayload, read_pair};
use cgm_domain::time::Timestamp;
use serde_json::Value;
use std::collections::HashSet;

/// A record's measurement time in ms: a JSON integer, or a string holding one (tolerated
/// because the vendor's SDKs are not consistent about number types).
pub fn measured_at(r: &Value) -> Option<i64> {
    match r.get("measured_at")? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// The de-duplication key `(device_sn, package_num)`: the sensor's packet sequence number is
/// steadier than its clock. Numbers and strings give the same text, so `100` and `"100"` are
/// one packet. `None` when either part is missing or not a string/number; such records are
/// never duplicates of each other.
pub fn record_key(r: &Value) -> Option<(String, String)> {
    Some((key_text(r.get("device_sn")?)?, key_text(r.get("package_num")?)?))
}

fn key_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// One window's upstream records made ready for paging: records the window does not own are
/// dropped (an edge record returned for two adjacent windows is then kept once), the rest are
/// sorted by `measured_at` (stable), and duplicates by [`record_key`] are removed keeping the
/// first in that order, so the result does not depend on the upstream's ordering.
///
/// Records without a usable `measured_at` are kept, at the end, window or not: they cannot be
/// placed in time, but dropping them would silently lose vendor data the client may want.
pub fn prepare_window(records: Vec<Value>, window: Option<Window>) -> Vec<Value> {
    let mut records: Vec<Value> = match window {
        Some(w) => {
            records.into_iter().filter(|r| measured_at(r).is_none_or(|t| w.contains(Timestamp::from_ms(t)))).collect()
        }
        None => records,
    };
    records.sort_by_key(|r| {
        let t = measured_at(r);
        (t.is_none(), t)
    });
    let mut seen = HashSet::new();
    records.retain(|r| record_key(r).is_none_or(|k| seen.insert(k)));
    records
}

/// A position in a windowed listing: the next record to return is `offset` in window
/// `window`. It travels as a cursor of kind `win` (see `cgm_domain::cursor`), tied to the
/// query it was issued for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowCursor {
    pub window: usize,
    pub offset: usize,
}

impl CursorPayload for WindowCursor {
    const KIND: &'static str = "win";

    fn write(&self) -> String {
        format!("{}:{}", self.window, self.offset)
    }

    fn read(text: &str) -> Option<Self> {
        read_pair(text).map(|(window, offset)| WindowCursor { window, offset })
    }
}

/// One page of records and where the next one starts (`None`: nothing after it).
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    pub records: Vec<Value>,
    pub next: Option<WindowCursor>,
}

/// Takes up to `limit` records starting at `start_offset` of window `first_window`, carrying
/// on into the following windows. `windows_records[k]` is the [`prepare_window`] output of
/// window `first_window + k`; windows at or past `total_windows` are ignored.
///
/// `next` points just after the last record taken. When that is the end of a window it points
/// at offset 0 of the next window that is non-empty as far as the supplied windows show, and it
/// is `None` once every window up to `total_windows - 1` is exhausted. If the supplied windows
/// run out before the page is full while more windows remain, the page is short and `next`
/// points at the first window not supplied: callers normally fetch enough windows to fill it.
///
/// A record whose [`record_key`] already appeared in this page is skipped and does not count
/// toward `limit`. De-duplication is per page: without server state, a key repeated in a later
/// page cannot be recognised. Windows never overlap, so after [`prepare_window`] that happens
/// only when one packet was reported with two different times.
pub fn take_page(
    windows_records: &[Vec<Value>],
    first_window: usize,
    start_offset: usize,
    limit: usize,
    total_windows: usize,
) -> Page {
    let mut records = Vec::new();
    let mut seen = HashSet::new();
    let mut position = (first_window, start_offset);

    for (k, window_records) in windows_records.iter().enumerate() {
        let Some(window) = first_window.checked_add(k).filter(|w| *w < total_windows) else {
            break;
        };
        let mut offset = if k == 0 { start_offset } else { 0 };
        while offset < window_records.len() && records.len() < limit {
            let record = &window_records[offset];
            offset += 1;
            if record_key(record).is_none_or(|key| seen.insert(key)) {
                records.push(record.clone());
            }
        }
        if offset < window_records.len() {
            position = (window, offset);
            break;
        }
        // `window < total_windows <= usize::MAX`, so the next index exists.
        position = (window + 1, 0);
    }

    let next = (position.0 < total_windows).then_some(WindowCursor { window: position.0, offset: position.1 });
    Page { records, next }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::window::window;
    use cgm_domain::cursor::{QueryHash, decode, encode};
    use serde_json::json;

    fn rec(sn: &str, num: i64, t: i64) -> Value {
        json!({"device_sn": sn, "package_num": num, "measured_at": t, "value": 6.3, "extra": {"kept": true}})
    }

    fn nums(records: &[Value]) -> Vec<i64> {
        records.iter().map(|r| r["package_num"].as_i64().unwrap()).collect()
    }

    /// Pages through `windows` to the end the way a handler would, fetching `supply` windows
    /// per call, and returns every page.
    fn walk(windows: &[Vec<Value>], limit: usize, supply: usize) -> Vec<Page> {
        let hash = QueryHash::of(&["user", "1", "2"]);
        let mut pages = Vec::new();
        let mut cursor = Some(WindowCursor { window: 0, offset: 0 });
        while let Some(c) = cursor {
            let decoded: WindowCursor = decode(&encode(&c, hash), hash).unwrap();
            let to = (decoded.window + supply).min(windows.len());
            let page = take_page(&windows[decoded.window..to], decoded.window, decoded.offset, limit, windows.len());
            if let Some(n) = page.next {
                assert!((n.window, n.offset) > (decoded.window, decoded.offset), "no progress at {n:?}");
            }
            cursor = page.next;
            pages.push(page);
            assert!(pages.len() < 1000, "paging does not terminate");
        }
        pages
    }

    fn three_windows() -> Vec<Vec<Value>> {
        vec![
            (0..5).map(|i| rec("sn1", i, 100 + i)).collect(),
            (5..8).map(|i| rec("sn1", i, 200 + i)).collect(),
            (8..17).map(|i| rec("sn1", i, 300 + i)).collect(),
        ]
    }

    #[test]
    fn every_record_is_in_exactly_one_page() {
        let windows = three_windows();
        for limit in [1, 2, 7, 1000] {
            for supply in [1, 2, 3] {
                let pages = walk(&windows, limit, supply);
                let all: Vec<i64> = pages.iter().flat_map(|p| nums(&p.records)).collect();
                assert_eq!(all, (0..17).collect::<Vec<_>>(), "limit {limit} supply {supply}");
                for page in &pages {
                    assert!(page.records.len() <= limit);
                }
                if supply == 3 {
                    // With every remaining window supplied, only the last page may be short
                    // and none is empty.
                    for page in &pages[..pages.len() - 1] {
                        assert_eq!(page.records.len(), limit);
                    }
                    assert!(!pages[pages.len() - 1].records.is_empty());
                }
            }
        }
    }

    #[test]
    fn records_pass_through_unchanged() {
        let windows = three_windows();
        let page = take_page(&windows, 0, 0, 1, 3);
        assert_eq!(page.records, vec![rec("sn1", 0, 100)]);
    }

    #[test]
    fn an_exhausted_window_moves_the_cursor_to_the_next_one() {
        let windows = three_windows();
        let page = take_page(&windows, 0, 0, 5, 3);
        assert_eq!(page.next, Some(WindowCursor { window: 1, offset: 0 }));
        let page = take_page(&windows[2..], 2, 4, 5, 3);
        assert_eq!(nums(&page.records), vec![12, 13, 14, 15, 16]);
        assert_eq!(page.next, None);
    }

    #[test]
    fn a_short_supply_gives_a_short_page_pointing_at_the_next_window() {
        let windows = three_windows();
        let page = take_page(&windows[..1], 0, 3, 10, 3);
        assert_eq!(nums(&page.records), vec![3, 4]);
        assert_eq!(page.next, Some(WindowCursor { window: 1, offset: 0 }));
        let page = take_page(&[], 1, 2, 10, 3);
        assert!(page.records.is_empty());
        assert_eq!(page.next, Some(WindowCursor { window: 1, offset: 2 }));
    }

    #[test]
    fn an_offset_past_the_end_moves_on() {
        let windows = three_windows();
        let page = take_page(&windows[1..], 1, 99, 2, 3);
        assert_eq!(nums(&page.records), vec![8, 9]);
        let page = take_page(&[], 3, 0, 2, 3);
        assert_eq!(page, Page { records: vec![], next: None });
        let page = take_page(&windows[..1], usize::MAX, 0, 2, 3);
        assert_eq!(page, Page { records: vec![], next: None });
    }

    #[test]
    fn empty_windows_are_skipped() {
        let windows = vec![vec![], vec![rec("a", 1, 10)], vec![], vec![], vec![rec("a", 2, 50)], vec![]];
        let page = take_page(&windows, 0, 0, 1, windows.len());
        assert_eq!(nums(&page.records), vec![1]);
        assert_eq!(page.next, Some(WindowCursor { window: 4, offset: 0 }));
        let page = take_page(&windows[4..], 4, 0, 1, windows.len());
        assert_eq!(nums(&page.records), vec![2]);
        assert_eq!(page.next, None);
        for limit in [1, 2, 3] {
            let all: Vec<i64> = walk(&windows, limit, 1).iter().flat_map(|p| nums(&p.records)).collect();
            assert_eq!(all, vec![1, 2]);
        }
        let empty: Vec<Vec<Value>> = vec![vec![], vec![]];
        assert_eq!(take_page(&empty, 0, 0, 5, 2), Page { records: vec![], next: None });
    }

    #[test]
    fn an_edge_record_returned_for_two_windows_appears_once() {
        let w0 = window(0, 99).unwrap();
        let w1 = window(100, 199).unwrap();
        // The upstream returns the record at 100 for both calls.
        let raw0 = vec![rec("a", 3, 100), rec("a", 1, 50), rec("a", 2, 99)];
        let raw1 = vec![rec("a", 3, 100), rec("a", 4, 150)];
        let windows = vec![prepare_window(raw0, Some(w0)), prepare_window(raw1, Some(w1))];
        for limit in [1, 2, 3, 1000] {
            let all: Vec<i64> = walk(&windows, limit, 2).iter().flat_map(|p| nums(&p.records)).collect();
            assert_eq!(all, vec![1, 2, 3, 4], "limit {limit}");
        }
    }

    #[test]
    fn a_key_repeated_across_windows_appears_once_in_a_page_and_does_not_count() {
        // Same packet reported with two different times (device clock drift).
        let windows = vec![vec![rec("a", 1, 10), rec("a", 2, 20)], vec![rec("a", 2, 120), rec("a", 3, 130)]];
        let page = take_page(&windows, 0, 0, 3, 2);
        assert_eq!(nums(&page.records), vec![1, 2, 3]);
        assert_eq!(page.next, None);
    }

    #[test]
    fn prepare_window_filters_sorts_and_dedupes() {
        let w = window(100, 200).unwrap();
        let no_time = json!({"device_sn": "a", "package_num": 9});
        let no_key = json!({"measured_at": 150, "value": 1});
        let raw = vec![
            rec("a", 3, 180),
            no_time.clone(),
            rec("a", 1, 99),
            json!({"device_sn": "a", "package_num": "2", "measured_at": "120"}),
            rec("a", 2, 130),
            no_key.clone(),
            no_key.clone(),
            rec("a", 4, 201),
            rec("b", 3, 200),
        ];
        let got = prepare_window(raw.clone(), Some(w));
        assert_eq!(
            got,
            vec![
                json!({"device_sn": "a", "package_num": "2", "measured_at": "120"}),
                no_key.clone(),
                no_key.clone(),
                rec("a", 3, 180),
                rec("b", 3, 200),
                no_time.clone(),
            ]
        );
        let got = prepare_window(raw, None);
        assert_eq!(got.len(), 8);
        assert_eq!(got[0], rec("a", 1, 99));
        assert_eq!(got[7], no_time);
    }

    #[test]
    fn field_helpers() {
        assert_eq!(measured_at(&json!({"measured_at": 1_700_000_000_000_i64})), Some(1_700_000_000_000));
        assert_eq!(measured_at(&json!({"measured_at": "1700000000000"})), Some(1_700_000_000_000));
        assert_eq!(measured_at(&json!({"measured_at": 1.5})), None);
        assert_eq!(measured_at(&json!({"measured_at": "soon"})), None);
        assert_eq!(measured_at(&json!({})), None);
        assert_eq!(record_key(&json!({"device_sn": "x", "package_num": 100})), Some(("x".into(), "100".into())));
        assert_eq!(record_key(&json!({"device_sn": "x", "package_num": "100"})), Some(("x".into(), "100".into())));
        assert_eq!(record_key(&json!({"device_sn": "x"})), None);
        assert_eq!(record_key(&json!({"device_sn": null, "package_num": 1})), None);
    }

    #[test]
    fn window_cursors_round_trip_through_the_shared_format() {
        use cgm_domain::cursor::{CursorError, QueryHash, decode, encode};
        let q = QueryHash::of(&["user", "u", "1", "2"]);
        for c in [WindowCursor { window: 0, offset: 0 }, WindowCursor { window: usize::MAX, offset: usize::MAX }] {
            assert_eq!(decode::<WindowCursor>(&encode(&c, q), q), Ok(c));
        }
        let c = encode(&WindowCursor { window: 2, offset: 17 }, q);
        assert_eq!(decode::<WindowCursor>(&c, QueryHash::of(&["user", "u", "1", "3"])), Err(CursorError::WrongQuery));
        assert_eq!(decode::<WindowCursor>(&c[..c.len() - 1], q), Err(CursorError::Malformed));
    }
}

#[cfg(test)]
mod props {
    use super::*;
    use crate::window::{split, window};
    use cgm_domain::cursor::{QueryHash, decode, encode};
    use proptest::prelude::*;
    use serde_json::json;

    const DAY: i64 = 24 * 3600 * 1000;
    const T0: i64 = 1_700_000_000_000;
    const SPAN: i64 = 120 * DAY;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Records fetched window by window (the vendor also returning some from before each
        /// window's start, in any order) and walked page by page with the cursor come out
        /// each exactly once, in time order, no page over its limit.
        #[test]
        fn every_record_is_in_exactly_one_page(
            offsets in prop::collection::vec(0i64..SPAN, 0..300),
            max_window in 1i64..40 * DAY,
            overlap in 0i64..2 * DAY,
            limit in 1usize..60,
            supply in 1usize..4,
            reverse in any::<bool>(),
        ) {
            let records: Vec<Value> = offsets
                .iter()
                .enumerate()
                .map(|(k, off)| json!({"device_sn": "d", "package_num": k, "measured_at": T0 + off, "v": k}))
                .collect();
            let windows = split(window(T0, T0 + SPAN - 1).unwrap(), max_window);
            let fetched: Vec<Vec<Value>> = windows
                .iter()
                .map(|w| {
                    let mut upstream: Vec<Value> = records
                        .iter()
                        .filter(|r| (w.start().ms() - overlap..=w.end().ms()).contains(&measured_at(r).unwrap()))
                        .cloned()
                        .collect();
                    if reverse {
                        upstream.reverse();
                    }
                    prepare_window(upstream, Some(*w))
                })
                .collect();

            let hash = QueryHash::of(&["user", "p"]);
            let mut all = Vec::new();
            let mut cursor = Some(WindowCursor { window: 0, offset: 0 });
            let mut pages = 0;
            while let Some(c) = cursor {
                let c: WindowCursor = decode(&encode(&c, hash), hash).unwrap();
                let to = (c.window + supply).min(fetched.len());
                let page = take_page(&fetched[c.window..to], c.window, c.offset, limit, fetched.len());
                prop_assert!(page.records.len() <= limit);
                if let Some(n) = page.next {
                    prop_assert!((n.window, n.offset) > (c.window, c.offset), "no progress");
                }
                all.extend(page.records);
                cursor = page.next;
                pages += 1;
                prop_assert!(pages <= records.len() + fetched.len() + 1, "paging does not end");
            }

            let mut nums: Vec<u64> = all.iter().map(|r| r["package_num"].as_u64().unwrap()).collect();
            prop_assert!(all.windows(2).all(|p| measured_at(&p[0]) <= measured_at(&p[1])), "in time order");
            nums.sort();
            prop_assert_eq!(nums, (0..records.len() as u64).collect::<Vec<_>>(), "every record exactly once");
            prop_assert!(all.iter().all(|r| records.contains(r)), "records pass through unchanged");
        }
    }
}
