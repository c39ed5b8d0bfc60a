//! The readings stream end to end against DynamoDB Local's own stream: pushes through the
//! push route, the consumer (as `make dev` runs it) on the stream, and the daily rollups it
//! writes, equal to rollups computed from the stored readings themselves; the summary and
//! gaps read from them give the numbers the readings give.

use cgm_domain::ids::DeviceSn;
use cgm_domain::rollup::DayRollup;
use cgm_domain::store::rollups::{Bins, RollupStore};
use cgm_domain::time::SourceZone;
use cgm_shared::store::reads::dynamodb::reading_of;
use cgm_shared::store::rollups::dynamodb::{DynamoRollupStore, rollup_of};
use cgm_tests::{Stack, seed_with, serve_locally};
use chrono::NaiveDate;
use serde_json::json;
use std::time::{Duration, Instant};

#[tokio::test]
async fn pushes_become_daily_rollups_through_the_stream_and_redeliveries_count_once() {
    // Given two local days of one sensor pushed through the push route, some twice
    let stack = Stack::new().await;
    let cfg = stack.config(&[]);
    let base = serve_locally(&cfg).await;
    let consumer = cgm_local::stream_consumer(&cfg).await.expect("a stream consumer");
    let running = tokio::spawn(consumer.run());
    let http = reqwest::Client::new();
    let zone = SourceZone::default();
    let day1 = NaiveDate::from_ymd_opt(2024, 5, 1).unwrap();
    // 23:00 local on day 1 to 01:00 on day 2, every 3 minutes; serial 12 missing, and 20-21
    // (23:57 and 00:00) across midnight.
    let start = zone.local_day(day1).unwrap().start().ms() + 23 * 3_600_000;
    let bodies: Vec<String> = (1..=40u64)
        .filter(|s| ![12, 20, 21].contains(s))
        .map(|s| {
            let local = chrono::DateTime::from_timestamp_millis(start + (s as i64 - 1) * 180_000).unwrap()
                + chrono::Duration::hours(8);
            seed_with(json!({
                "testId": format!("STREAM-{s}"), "deviceSn": "SN-STREAM", "serialNo": s, "status": "0",
                "testTime": local.format("%Y-%m-%d %H:%M:%S").to_string(),
                "testResult": format!("{:.1}", 4.0 + (s % 9) as f64 / 2.0), "increMinute": 3,
            }))
        })
        .collect();
    for b in bodies.iter().chain(bodies[..5].iter()) {
        let r = http.post(format!("{base}/sinocare/cgm")).body(b.clone()).send().await.expect("push");
        assert_eq!(r.status().as_u16(), 200);
    }

    // When the stream has been drained (both days' rollups hold every reading)
    let deadline = Instant::now() + Duration::from_secs(60);
    let rollups = loop {
        let items = stack.scan("ROLLUPS_TABLE").await;
        let rollups: Vec<DayRollup> = items.iter().filter_map(rollup_of).collect();
        if rollups.iter().map(|r| r.readings).sum::<u64>() == 37 {
            break rollups;
        }
        assert!(Instant::now() < deadline, "the stream was not drained in 60 s: {rollups:#?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    running.abort();
    let gets = |path: String| {
        let (http, base) = (http.clone(), base.clone());
        async move {
            let r = http.get(format!("{base}{path}")).send().await.expect("a read route");
            assert_eq!(r.status().as_u16(), 200, "{path}");
            r.json::<serde_json::Value>().await.unwrap()
        }
    };
    // Day 1 whole, day 2 up to 00:30: a rollup and a partial day's readings.
    let (from, to) = (start - 23 * 3_600_000, start + 3_600_000 + 30 * 60_000);
    let summary_path = format!("/devices/SN-STREAM/summary?from={from}&to={to}");
    let gaps_path = format!("/devices/SN-STREAM/gaps?from={from}&to={to}");
    let from_rollups = (gets(summary_path.clone()).await, gets(gaps_path.clone()).await);

    // Then each day's rollup is the one its stored readings make, each reading counted once
    let stored: Vec<_> = stack.scan("READINGS_TABLE").await.iter().filter_map(reading_of).collect();
    assert_eq!(stored.len(), 37, "redeliveries stored once");
    assert_eq!(rollups.len(), 2);
    for r in &rollups {
        let expected = DayRollup::of_day(&"SN-STREAM".into(), r.day, &zone, &stored);
        assert_eq!(r, &expected, "{}", r.day);
    }
    let d1 = rollups.iter().find(|r| r.day == day1).expect("day 1");
    assert_eq!((d1.readings, d1.missing_runs()), (18, vec![(12, 12)]), "23:00-23:59: 20 due, 12 and 20 missing");
    assert_eq!(d1.last.map(|e| e.serial_no), Some(19), "the day's last reading, for a hole across midnight");

    // And the summary and gaps give the same answer with the rollups as without them
    let (summary, gaps) = &from_rollups;
    assert_eq!(summary["readings"], 18 + 10, "{summary}");
    let runs: Vec<(u64, u64)> = gaps["gaps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| (g["first_serial_no"].as_u64().unwrap(), g["last_serial_no"].as_u64().unwrap()))
        .collect();
    assert_eq!(runs, vec![(12, 12), (20, 21)], "{gaps}");
    assert_eq!((gaps["received"].as_u64(), gaps["missing"].as_u64()), (Some(28), Some(3)), "{gaps}");
    let rollups_table = stack.table("ROLLUPS_TABLE").to_string();
    // A read without bins is the rollup less its bins.
    let store = DynamoRollupStore::new(stack.client.clone(), rollups_table.clone());
    let sn = DeviceSn::from("SN-STREAM");
    let day2 = day1.succ_opt().unwrap();
    let (full, lean) = (
        store.rollups(&sn, day1, day2, Bins::With).await.unwrap(),
        store.rollups(&sn, day1, day2, Bins::Without).await.unwrap(),
    );
    assert!(full.len() == 2 && full.iter().all(|r| !r.bins.is_empty()), "{full:#?}");
    let unbinned: Vec<DayRollup> = full
        .into_iter()
        .map(|mut r| {
            r.bins.clear();
            r
        })
        .collect();
    assert_eq!(lean, unbinned);
    for r in stack.scan("ROLLUPS_TABLE").await {
        let key = r.into_iter().filter(|(k, _)| k == "deviceSn" || k == "day").collect();
        stack.client.delete_item().table_name(&rollups_table).set_key(Some(key)).send().await.unwrap();
    }
    let from_readings = (gets(summary_path).await, gets(gaps_path).await);
    assert_eq!(from_rollups, from_readings, "rollups and readings disagree");
}
