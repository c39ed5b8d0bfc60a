//! `cgm-replay rollups`: daily rollups for readings stored before the stream consumer wrote
//! them. It scans the readings table for (device, local day) pairs, a page at a time, and
//! recomputes each day as the consumer does (`cgm_events::rollups::rollup_day`): from the
//! day's own readings, written only over a rollup of fewer readings. So it is safe to run
//! while pushes arrive (the consumer and the backfill can only make a day's rollup more
//! complete) and safe to run twice; `--resume` continues after the last page a run printed.

use aws_sdk_dynamodb::types::AttributeValue;
use cgm_domain::ids::DeviceSn;
use cgm_domain::store::reads::ReadStore;
use cgm_domain::store::rollups::{RollupStore, Written};
use cgm_domain::time::{SourceZone, Timestamp};
use cgm_shared::store::attr::{self, classify, num, text};
use chrono::NaiveDate;
use std::collections::BTreeSet;

/// Items read per scan page.
const PAGE: i32 = 1_000;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Progress {
    pub pages: u64,
    pub items: u64,
    pub days: u64,
    pub written: u64,
    /// Where the next page starts: pass it as `--resume` to continue.
    pub resume: Option<String>,
}

pub async fn backfill<R: ReadStore, U: RollupStore>(
    client: &aws_sdk_dynamodb::Client,
    readings_table: &str,
    reads: &R,
    rollups: &U,
    zone: &SourceZone,
    resume: Option<String>,
    mut report: impl FnMut(&Progress),
) -> anyhow::Result<Progress> {
    let mut progress = Progress { resume, ..Progress::default() };
    let mut done: BTreeSet<(DeviceSn, NaiveDate)> = BTreeSet::new();
    loop {
        let start =
            progress.resume.as_ref().map(|id| [(attr::TEST_ID.to_string(), AttributeValue::S(id.clone()))].into());
        let page = client
            .scan()
            .table_name(readings_table)
            .projection_expression("#t, #d, #m")
            .expression_attribute_names("#t", attr::TEST_ID)
            .expression_attribute_names("#d", attr::DEVICE_SN)
            .expression_attribute_names("#m", attr::MEASURED_AT)
            .set_exclusive_start_key(start)
            .limit(PAGE)
            .send()
            .await
            .map_err(classify)?;
        let items = page.items.unwrap_or_default();
        progress.pages += 1;
        progress.items += items.len() as u64;
        for item in &items {
            let (Some(sn), Some(at)) = (text(item, attr::DEVICE_SN), num::<i64>(item, attr::MEASURED_AT)) else {
                continue;
            };
            let Some(day) = zone.local_date(Timestamp::from_ms(at)) else { continue };
            let key = (DeviceSn::new(sn), day);
            if done.contains(&key) {
                continue;
            }
            if cgm_events::rollups::rollup_day(reads, rollups, zone, &key.0, day, Vec::new())
                .await
                .map_err(|e| anyhow::anyhow!("rolling up {} {day}: {e}", key.0))?
                .0
                == Written::Stored
            {
                progress.written += 1;
            }
            progress.days += 1;
            done.insert(key);
        }
        progress.resume = page.last_evaluated_key.as_ref().and_then(|k| text(k, attr::TEST_ID));
        report(&progress);
        if progress.resume.is_none() {
            return Ok(progress);
        }
    }
}
