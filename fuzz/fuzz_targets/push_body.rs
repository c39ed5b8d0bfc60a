//! Any bytes as a push body: the parser never panics, and a reading it accepts keeps its
//! promises all the way to the stored item.

#![no_main]

use cgm_domain::push::{MAX_ID_BYTES, parse_push};
use cgm_domain::store::push::Arrival;
use cgm_shared::store::push::dynamodb::{measurement_of, reading_item};
use cgm_domain::time::SourceZone;
use libfuzzer_sys::fuzz_target;
use std::sync::LazyLock;

/// China Standard Time (the default) and a zone with daylight saving, for the
/// does-not-exist-in-this-zone path.
static ZONES: LazyLock<[SourceZone; 2]> =
    LazyLock::new(|| [SourceZone::default(), "Europe/Berlin".parse().expect("a zone")]);

fuzz_target!(|body: &[u8]| {
    for zone in ZONES.iter() {
        let Ok(r) = parse_push(body, zone) else { continue };
        assert!(!r.test_id.trim().is_empty() && r.test_id.len() <= MAX_ID_BYTES);
        assert!(r.device_sn.as_ref().is_none_or(|d| d.len() <= MAX_ID_BYTES));
        assert!(r.glucose.mmol > 0.0 && r.glucose.mmol <= 100.0);
        assert_eq!(r.glucose.text.trim().parse::<f64>().ok(), Some(r.glucose.mmol));
        let item = reading_item(&r, &Arrival { received_at_ms: 0, request_id: String::new() });
        assert_eq!(item.get("testId").and_then(|v| v.as_s().ok()), Some(&r.test_id));
        assert_eq!(measurement_of(&item), Some(r.measurement()));
        assert_eq!(r.measurement().hash().len(), 64);
    }
});
