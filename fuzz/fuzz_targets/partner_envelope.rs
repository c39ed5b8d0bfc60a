//! Any bytes as a Partner API answer: the envelope parser never panics, and the records of
//! a glucose answer go through window preparation and paging without panicking or losing
//! a record.

#![no_main]

use cgm_partner::client::parse_envelope;
use cgm_partner::paging::{prepare_window, take_page};
use cgm_partner::window::window;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|answer: &[u8]| {
    let env = match parse_envelope(answer) {
        Ok(env) => env,
        Err(e) => {
            // The reason is a fixed sentence; it never carries the answer.
            assert!(e.to_string().len() < 128);
            return;
        }
    };
    let Some(Value::Array(records)) = env.data.get("records").cloned() else { return };
    let all = prepare_window(records.clone(), None);
    let windowed = prepare_window(records, window(0, i64::MAX / 2));
    assert!(windowed.len() <= all.len());
    let windows = vec![windowed];
    let mut seen = 0;
    let mut cursor = Some((0usize, 0usize));
    while let Some((w, offset)) = cursor {
        let page = take_page(&windows[w.min(windows.len())..], w, offset, 7, windows.len());
        seen += page.records.len();
        assert!(seen <= windows[0].len());
        cursor = page.next.map(|c| (c.window, c.offset));
    }
    assert_eq!(seen, windows[0].len(), "every prepared record is paged once");
});
