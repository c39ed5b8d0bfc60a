//! The DynamoDB implementation of [`RollupStore`]: the rollups table, key (`deviceSn`,
//! `day`), counts as maps keyed by the value in thousandths of a mmol/L.

use crate::store::attr::{Item, classify, is_condition_failure, n, n_u, num, query_all, s, text};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use cgm_domain::gaps::Seq;
use cgm_domain::ids::DeviceSn;
use cgm_domain::metrics::GlucoseCounts;
use cgm_domain::rollup::DayRollup;
use cgm_domain::store::StoreError;
use cgm_domain::store::rollups::{Bins, RollupStore, Written};
use chrono::NaiveDate;
use std::collections::{BTreeMap, HashMap};

/// Attribute names of a rollup item.
pub mod rollup_attr {
    pub const DEVICE_SN: &str = "deviceSn";
    /// The local day, `YYYY-MM-DD`: the sort key.
    pub const DAY: &str = "day";
    pub const ZONE: &str = "zone";
    pub const BIN_MINUTES: &str = "binMinutes";
    pub const READINGS: &str = "readings";
    pub const INVALID: &str = "invalid";
    pub const GLUCOSE: &str = "glucose";
    pub const BINS: &str = "bins";
    pub const INTERVALS: &str = "intervals";
    pub const FIRST: &str = "first";
    pub const LAST: &str = "last";
    /// The pairs of readings around each hole: `[serialNo, at, increMinute|NULL]` twice.
    pub const HOLES: &str = "holes";
    pub const SERIALS_RECEIVED: &str = "serialsReceived";
    pub const WITHOUT_SERIAL: &str = "withoutSerial";
    pub const FORMAT: &str = "format";
}
use rollup_attr as ra;

/// The item format; a rollup of another format is read as none (the day's readings are read
/// instead) and replaced when the day is next rolled up. 2: holes kept as reading pairs.
pub const FORMAT: u64 = 2;

/// What a read without bins asks for: the rest of the item.
const WITHOUT_BINS: [&str; 14] = [
    ra::DEVICE_SN,
    ra::DAY,
    ra::ZONE,
    ra::BIN_MINUTES,
    ra::READINGS,
    ra::INVALID,
    ra::GLUCOSE,
    ra::INTERVALS,
    ra::FIRST,
    ra::LAST,
    ra::HOLES,
    ra::SERIALS_RECEIVED,
    ra::WITHOUT_SERIAL,
    ra::FORMAT,
];

#[derive(Debug, Clone)]
pub struct DynamoRollupStore {
    client: Client,
    table: String,
}

impl DynamoRollupStore {
    pub fn new(client: Client, table: String) -> Self {
        Self { client, table }
    }
}

fn day_text(d: NaiveDate) -> String {
    d.format("%Y-%m-%d").to_string()
}

fn counts_av(c: &GlucoseCounts) -> AttributeValue {
    AttributeValue::M(c.iter().map(|(v, n)| (v.to_string(), n_u(n))).collect())
}

fn counts_of(v: Option<&AttributeValue>) -> Option<GlucoseCounts> {
    let mut c = GlucoseCounts::default();
    for (k, n) in v?.as_m().ok()? {
        c.add_milli(k.parse().ok()?, n.as_n().ok()?.parse().ok()?);
    }
    Some(c)
}

fn seq_av(e: &Seq) -> AttributeValue {
    let mut m = HashMap::from([("at".to_string(), n(e.measured_at_ms)), ("serialNo".to_string(), n_u(e.serial_no))]);
    if let Some(i) = e.incre_minute {
        m.insert("increMinute".into(), n_u(i));
    }
    AttributeValue::M(m)
}

fn seq_of(v: Option<&AttributeValue>) -> Option<Option<Seq>> {
    let Some(v) = v else { return Some(None) };
    let m = v.as_m().ok()?;
    Some(Some(Seq {
        measured_at_ms: num(m, "at")?,
        serial_no: num(m, "serialNo")?,
        incre_minute: num(m, "increMinute"),
    }))
}

/// A hole's two readings as six numbers (a missing interval as NULL): a day can hold
/// hundreds of holes, and maps would repeat their keys in each.
fn hole_av((p, q): &(Seq, Seq)) -> AttributeValue {
    let incre = |i: Option<u64>| i.map_or(AttributeValue::Null(true), n_u);
    AttributeValue::L(vec![
        n_u(p.serial_no),
        n(p.measured_at_ms),
        incre(p.incre_minute),
        n_u(q.serial_no),
        n(q.measured_at_ms),
        incre(q.incre_minute),
    ])
}

fn hole_of(v: &AttributeValue) -> Option<(Seq, Seq)> {
    let l = v.as_l().ok()?;
    let number = |i: usize| l.get(i)?.as_n().ok()?.parse::<i64>().ok();
    let incre = |i: usize| match l.get(i)? {
        AttributeValue::Null(_) => Some(None),
        v => v.as_n().ok()?.parse().ok().map(Some),
    };
    let seq = |at: usize| {
        Some(Seq {
            serial_no: u64::try_from(number(at)?).ok()?,
            measured_at_ms: number(at + 1)?,
            incre_minute: incre(at + 2)?,
        })
    };
    (l.len() == 6).then_some(())?;
    Some((seq(0)?, seq(3)?))
}

pub fn rollup_item(r: &DayRollup) -> Item {
    let mut item: Item = HashMap::from([
        (ra::DEVICE_SN.to_string(), s(r.device_sn.as_str())),
        (ra::DAY.to_string(), s(&day_text(r.day))),
        (ra::ZONE.to_string(), s(&r.zone)),
        (ra::BIN_MINUTES.to_string(), n_u(u64::from(r.bin_minutes))),
        (ra::READINGS.to_string(), n_u(r.readings)),
        (ra::INVALID.to_string(), n_u(r.invalid)),
        (ra::GLUCOSE.to_string(), counts_av(&r.glucose)),
        (ra::BINS.to_string(), AttributeValue::M(r.bins.iter().map(|(b, c)| (b.to_string(), counts_av(c))).collect())),
        (
            ra::INTERVALS.to_string(),
            AttributeValue::M(r.intervals.iter().map(|(m, c)| (m.to_string(), n_u(*c))).collect()),
        ),
        (ra::HOLES.to_string(), AttributeValue::L(r.holes.iter().map(hole_av).collect())),
        (ra::SERIALS_RECEIVED.to_string(), n_u(r.serials_received)),
        (ra::WITHOUT_SERIAL.to_string(), n_u(r.without_serial)),
        (ra::FORMAT.to_string(), n_u(FORMAT)),
    ]);
    if let Some(e) = &r.first {
        item.insert(ra::FIRST.into(), seq_av(e));
    }
    if let Some(e) = &r.last {
        item.insert(ra::LAST.into(), seq_av(e));
    }
    item
}

/// The rollup in an item, or `None` when it is not one this version reads (it is then
/// recomputed from the day's readings, never trusted half-read).
pub fn rollup_of(item: &Item) -> Option<DayRollup> {
    if num::<u64>(item, ra::FORMAT)? != FORMAT {
        return None;
    }
    // Absent only when a read left them out (`Bins::Without`): every item is written with them.
    let mut bins = BTreeMap::new();
    if let Some(all) = item.get(ra::BINS) {
        for (b, c) in all.as_m().ok()? {
            bins.insert(b.parse().ok()?, counts_of(Some(c))?);
        }
    }
    let mut intervals = BTreeMap::new();
    for (m, c) in item.get(ra::INTERVALS)?.as_m().ok()? {
        intervals.insert(m.parse().ok()?, c.as_n().ok()?.parse().ok()?);
    }
    let holes = item.get(ra::HOLES)?.as_l().ok()?.iter().map(hole_of).collect::<Option<Vec<_>>>()?;
    Some(DayRollup {
        device_sn: DeviceSn::new(text(item, ra::DEVICE_SN)?),
        day: NaiveDate::parse_from_str(&text(item, ra::DAY)?, "%Y-%m-%d").ok()?,
        zone: text(item, ra::ZONE)?,
        bin_minutes: num(item, ra::BIN_MINUTES)?,
        readings: num(item, ra::READINGS)?,
        invalid: num(item, ra::INVALID)?,
        glucose: counts_of(item.get(ra::GLUCOSE))?,
        bins,
        intervals,
        first: seq_of(item.get(ra::FIRST))?,
        last: seq_of(item.get(ra::LAST))?,
        holes,
        serials_received: num(item, ra::SERIALS_RECEIVED)?,
        without_serial: num(item, ra::WITHOUT_SERIAL)?,
    })
}

impl RollupStore for DynamoRollupStore {
    async fn put_rollup(&self, r: &DayRollup) -> Result<Written, StoreError> {
        let res = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(rollup_item(r)))
            .condition_expression("attribute_not_exists(#n) OR #n < :n OR #z <> :z OR #b <> :b OR #f <> :f")
            .expression_attribute_names("#n", ra::READINGS)
            .expression_attribute_names("#z", ra::ZONE)
            .expression_attribute_names("#b", ra::BIN_MINUTES)
            .expression_attribute_names("#f", ra::FORMAT)
            .expression_attribute_values(":n", n_u(r.readings))
            .expression_attribute_values(":z", s(&r.zone))
            .expression_attribute_values(":b", n_u(u64::from(r.bin_minutes)))
            .expression_attribute_values(":f", n_u(FORMAT))
            .send()
            .await;
        match res {
            Ok(_) => Ok(Written::Stored),
            Err(e) if is_condition_failure(&e) => Ok(Written::AlreadyCurrent),
            Err(e) => Err(classify(e)),
        }
    }

    async fn rollups(
        &self,
        device_sn: &DeviceSn,
        from: NaiveDate,
        to: NaiveDate,
        bins: Bins,
    ) -> Result<Vec<DayRollup>, StoreError> {
        let mut query = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("#d = :d AND #day BETWEEN :from AND :to")
            .expression_attribute_names("#d", ra::DEVICE_SN)
            .expression_attribute_names("#day", ra::DAY)
            .expression_attribute_values(":d", s(device_sn.as_str()))
            .expression_attribute_values(":from", s(&day_text(from)))
            .expression_attribute_values(":to", s(&day_text(to)));
        if bins == Bins::Without {
            // Every attribute but the bins; names, since some are reserved words.
            let names: Vec<String> = WITHOUT_BINS.iter().enumerate().map(|(i, _)| format!("#p{i}")).collect();
            query = query.projection_expression(names.join(", "));
            for (name, attr) in names.iter().zip(WITHOUT_BINS) {
                query = query.expression_attribute_names(name, attr);
            }
        }
        Ok(query_all(query).await?.iter().filter_map(rollup_of).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::attr::item_bytes;
    use cgm_domain::store::reads::StoredReading;
    use cgm_domain::time::{SourceZone, Timestamp};

    fn minute_reading(start: i64, m: u64, mmol: f64) -> StoredReading {
        StoredReading {
            test_id: format!("t{m}").into(),
            device_sn: "D".into(),
            measured_at: Timestamp::from_ms(start + m as i64 * 60_000),
            mmol,
            serial_no: Some(m + 1),
            status: Some("0".into()),
            valid: true,
            incre_minute: Some(1),
            low: None,
            high: None,
        }
    }

    #[test]
    fn the_largest_days_stay_inside_the_size_budget() {
        use cgm_domain::rollup::MAX_ROLLUP_BYTES;
        let z = SourceZone::default();
        let day = NaiveDate::from_ymd_opt(2024, 5, 1).unwrap();
        let start = z.local_day(day).unwrap().start().ms();
        // One-minute readings, every value distinct; and every other one lost.
        let distinct: Vec<StoredReading> =
            (0..1440).map(|m| minute_reading(start, m, 2.0 + m as f64 / 100.0)).collect();
        let holed: Vec<StoredReading> =
            (0..1440).step_by(2).map(|m| minute_reading(start, m, 2.0 + m as f64 / 100.0)).collect();
        for (what, readings) in [("distinct", distinct), ("holed", holed)] {
            let r = DayRollup::of_day(&"D".into(), day, &z, &readings);
            let size = item_bytes(&rollup_item(&r));
            assert!(size < MAX_ROLLUP_BYTES, "{what}: {size} bytes, {} holes", r.holes.len());
            assert!(size > MAX_ROLLUP_BYTES / 5, "{what}: {size} bytes: the budget is not far off");
        }
    }

    #[test]
    fn a_rollup_reads_back_as_written_and_junk_reads_as_none() {
        let z = SourceZone::default();
        let day = NaiveDate::from_ymd_opt(2024, 5, 1).unwrap();
        let start = z.local_day(day).unwrap().start().ms();
        let readings: Vec<StoredReading> = (1..=50u64)
            .filter(|s| *s != 20)
            .map(|s| StoredReading {
                test_id: format!("t{s}").into(),
                device_sn: "D".into(),
                measured_at: Timestamp::from_ms(start + s as i64 * 180_000),
                mmol: 4.0 + s as f64 / 10.0,
                serial_no: Some(s),
                status: Some("0".into()),
                valid: s > 1,
                incre_minute: Some(3),
                low: None,
                high: None,
            })
            .collect();
        let r = DayRollup::of_day(&"D".into(), day, &z, &readings);
        assert_eq!(rollup_of(&rollup_item(&r)), Some(r.clone()));
        let mut junk = rollup_item(&r);
        junk.insert(ra::GLUCOSE.into(), s("not a map"));
        assert_eq!(rollup_of(&junk), None);
        let mut other = rollup_item(&r);
        other.insert(ra::FORMAT.into(), n_u(99));
        assert_eq!(rollup_of(&other), None);
    }
}
