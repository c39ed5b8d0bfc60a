//! The DynamoDB implementation of [`SensorStore`]: the sensors table, key `deviceSn`, with
//! three indexes (active, customer, patient), each projecting the whole item.

use crate::store::attr::{Item, classify, is_condition_failure, n, n_u, num, put_opt_s, query_all, s, text};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use cgm_domain::alerts::window::{AlertWindow, Closed, FoldState, KindState, Run, Sample};
use cgm_domain::alerts::{AlertKind, AlertState, Alerts, Episode};
use cgm_domain::ids::DeviceSn;
use cgm_domain::session::{Mark, Outgoing, SensorReading, Session};
use cgm_domain::store::StoreError;
use cgm_domain::store::sensors::{Saved, SensorStore};
use cgm_domain::time::Timestamp;
use chrono::NaiveDate;
use std::collections::{BTreeMap, HashMap};

/// Attribute and index names of a session item.
pub mod sensor_attr {
    pub const DEVICE_SN: &str = "deviceSn";
    pub const FIRST: &str = "first";
    pub const LAST: &str = "last";
    /// The last reading's instant, on its own: the indexes' sort key.
    pub const LAST_AT: &str = "lastAt";
    pub const FIRST_AT: &str = "firstAt";
    pub const DAYS: &str = "days";
    pub const CGM_STATUS: &str = "cgmStatus";
    pub const CGM_DAY: &str = "cgmDay";
    pub const INCRE_MINUTE: &str = "increMinute";
    pub const LOW: &str = "low";
    pub const HIGH: &str = "high";
    pub const CUSTOMER_NAME: &str = "customerName";
    pub const PATIENT_ID: &str = "patientId";
    pub const VISIT_ID: &str = "visitId";
    pub const ENDED_AT: &str = "endedAt";
    pub const FIRST_RECEIVED_AT: &str = "firstReceivedAt";
    pub const ALERTS: &str = "alerts";
    /// The alert evaluation's window: its base, readings and recently resolved episodes.
    pub const ALERT_WINDOW: &str = "alertWindow";
    /// Events written with the session and not yet known to be on the bus.
    pub const OUTBOX: &str = "outbox";
    /// Longest value written under an index key (DynamoDB allows 2,048 bytes for a
    /// partition key): a longer `customerName` or `patientId`, stored before the push route
    /// bounded them, is left out of the item rather than have every write of it refused.
    pub const MAX_INDEX_KEY_BYTES: usize = 1024;
    pub const VERSION: &str = "version";
    /// `"1"` while the session runs, absent after: the sparse index of running sensors.
    pub const ACTIVE: &str = "active";
    pub const ACTIVE_INDEX: &str = "active-lastAt";
    pub const CUSTOMER_INDEX: &str = "customerName-lastAt";
    pub const PATIENT_INDEX: &str = "patientId-firstAt";
}
use sensor_attr as sa;

#[derive(Debug, Clone)]
pub struct DynamoSensorStore {
    client: Client,
    table: String,
}

impl DynamoSensorStore {
    pub fn new(client: Client, table: String) -> Self {
        Self { client, table }
    }

    async fn query_index(
        &self,
        index: &str,
        key: &str,
        value: &str,
        newest_first: bool,
    ) -> Result<Vec<Session>, StoreError> {
        let q = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(index)
            .key_condition_expression("#k = :k")
            .expression_attribute_names("#k", key)
            .expression_attribute_values(":k", s(value))
            .scan_index_forward(!newest_first);
        Ok(query_all(q).await?.iter().filter_map(session_of).collect())
    }
}

fn mark_av(m: &Mark) -> AttributeValue {
    let mut map = HashMap::from([
        ("at".to_string(), n(m.at.ms())),
        ("mmol".to_string(), AttributeValue::N(m.mmol.to_string())),
        ("valid".to_string(), AttributeValue::Bool(m.valid)),
    ]);
    if let Some(sn) = m.serial_no {
        map.insert("serialNo".into(), n_u(sn));
    }
    AttributeValue::M(map)
}

fn mark_of(v: Option<&AttributeValue>) -> Option<Mark> {
    let m = v?.as_m().ok()?;
    Some(Mark {
        at: Timestamp::from_ms(num(m, "at")?),
        serial_no: num(m, "serialNo"),
        mmol: num::<f64>(m, "mmol").filter(|v| v.is_finite())?,
        valid: *m.get("valid")?.as_bool().ok()?,
    })
}

fn opt_n(map: &mut Item, k: &str, v: Option<i64>) {
    if let Some(v) = v {
        map.insert(k.into(), n(v));
    }
}

fn opt_f(map: &mut Item, k: &str, v: Option<f64>) {
    if let Some(v) = v.filter(|v| v.is_finite()) {
        map.insert(k.into(), AttributeValue::N(v.to_string()));
    }
}

fn put_episode(m: &mut Item, ep: &Episode) {
    m.insert("id".into(), s(&ep.id));
    m.insert("openedAt".into(), n(ep.opened_at.ms()));
    m.insert("notifiedAt".into(), n(ep.notified_at.ms()));
    m.insert("notifications".into(), n_u(u64::from(ep.notifications)));
    opt_n(m, "acknowledgedAt", ep.acknowledged_at.map(Timestamp::ms));
    opt_f(m, "valueMmol", ep.value_mmol);
    opt_f(m, "thresholdMmol", ep.threshold_mmol);
}

/// The episode in `m`; `Ok(None)` when `m` holds none, `Err` when it holds a broken one.
fn episode_of(m: &Item) -> Result<Option<Episode>, ()> {
    let Some(id) = text(m, "id") else { return Ok(None) };
    Ok(Some(Episode {
        id,
        opened_at: Timestamp::from_ms(num(m, "openedAt").ok_or(())?),
        notified_at: Timestamp::from_ms(num(m, "notifiedAt").ok_or(())?),
        notifications: num(m, "notifications").ok_or(())?,
        acknowledged_at: num(m, "acknowledgedAt").map(Timestamp::from_ms),
        value_mmol: num(m, "valueMmol"),
        threshold_mmol: num(m, "thresholdMmol"),
    }))
}

fn alert_av(st: &AlertState) -> AttributeValue {
    let mut m = Item::new();
    opt_n(&mut m, "pendingSince", st.pending_since.map(Timestamp::ms));
    if let Some(ep) = &st.open {
        put_episode(&mut m, ep);
    }
    AttributeValue::M(m)
}

fn alert_of(v: &AttributeValue) -> Option<AlertState> {
    let m = v.as_m().ok()?;
    Some(AlertState { pending_since: num(m, "pendingSince").map(Timestamp::from_ms), open: episode_of(m).ok()? })
}

fn run_av(r: &Run) -> AttributeValue {
    let mut m = Item::from([
        ("openedAt".to_string(), n(r.opened_at.ms())),
        ("notifiedAt".to_string(), n(r.notified_at.ms())),
        ("notifications".to_string(), n_u(u64::from(r.notifications))),
    ]);
    put_opt_s(&mut m, "id", r.id.as_deref());
    opt_f(&mut m, "valueMmol", r.value_mmol);
    opt_f(&mut m, "thresholdMmol", r.threshold_mmol);
    AttributeValue::M(m)
}

fn run_of(v: &AttributeValue) -> Option<Run> {
    let m = v.as_m().ok()?;
    Some(Run {
        id: text(m, "id"),
        opened_at: Timestamp::from_ms(num(m, "openedAt")?),
        notified_at: Timestamp::from_ms(num(m, "notifiedAt")?),
        notifications: num(m, "notifications")?,
        value_mmol: num(m, "valueMmol"),
        threshold_mmol: num(m, "thresholdMmol"),
    })
}

/// A window reading as one short string, `at|serialNo|mmol|low|high` (empty when absent):
/// the window holds an hour or so of readings, kept small so the session stays one write.
fn sample_text(x: &Sample) -> String {
    let opt = |v: Option<f64>| v.map(|v| v.to_string()).unwrap_or_default();
    format!(
        "{}|{}|{}|{}|{}",
        x.at.ms(),
        x.serial_no.map(|v| v.to_string()).unwrap_or_default(),
        x.mmol,
        opt(x.low),
        opt(x.high)
    )
}

fn sample_of(t: &str) -> Option<Sample> {
    let mut f = t.split('|');
    let at = Timestamp::from_ms(f.next()?.parse().ok()?);
    let opt_u = |v: &str| if v.is_empty() { Ok(None) } else { v.parse().map(Some) };
    let opt_f = |v: &str| -> Option<Option<f64>> {
        if v.is_empty() { Some(None) } else { v.parse::<f64>().ok().filter(|v| v.is_finite()).map(Some) }
    };
    let serial_no = opt_u(f.next()?).ok()?;
    let mmol = f.next()?.parse::<f64>().ok().filter(|v| v.is_finite())?;
    let low = opt_f(f.next()?)?;
    let high = opt_f(f.next()?)?;
    Some(Sample { at, serial_no, mmol, low, high })
}

fn window_av(w: &AlertWindow) -> AttributeValue {
    let kinds: Item = w
        .base
        .kinds
        .iter()
        .map(|(k, ks)| {
            let mut m = Item::new();
            opt_n(&mut m, "pendingSince", ks.pending_since.map(Timestamp::ms));
            if let Some(r) = &ks.open {
                m.insert("run".into(), run_av(r));
            }
            (k.as_str().to_string(), AttributeValue::M(m))
        })
        .collect();
    let mut base = Item::from([("kinds".to_string(), AttributeValue::M(kinds))]);
    if let Some((at, mmol)) = w.base.prev.filter(|(_, v)| v.is_finite()) {
        base.insert("prevAt".into(), n(at.ms()));
        base.insert("prevMmol".into(), AttributeValue::N(mmol.to_string()));
    }
    let closed = w
        .closed
        .iter()
        .map(|c| {
            let mut m = Item::from([
                ("kind".to_string(), s(c.kind.as_str())),
                ("resolvedAt".to_string(), n(c.resolved_at.ms())),
                ("retracted".to_string(), AttributeValue::Bool(c.retracted)),
            ]);
            put_episode(&mut m, &c.episode);
            AttributeValue::M(m)
        })
        .collect();
    AttributeValue::M(Item::from([
        ("baseAt".to_string(), n(w.base_at.ms())),
        ("clock".to_string(), n(w.clock.ms())),
        ("base".to_string(), AttributeValue::M(base)),
        ("samples".to_string(), AttributeValue::L(w.samples.iter().map(|x| s(&sample_text(x))).collect())),
        ("closed".to_string(), AttributeValue::L(closed)),
    ]))
}

fn window_of(v: &AttributeValue) -> Option<AlertWindow> {
    let m = v.as_m().ok()?;
    let base = m.get("base")?.as_m().ok()?;
    let mut kinds = BTreeMap::new();
    for (k, v) in base.get("kinds")?.as_m().ok()? {
        let km = v.as_m().ok()?;
        let open = match km.get("run") {
            Some(r) => Some(run_of(r)?),
            None => None,
        };
        kinds.insert(
            AlertKind::parse(k)?,
            KindState { pending_since: num(km, "pendingSince").map(Timestamp::from_ms), open },
        );
    }
    let prev = match (num(base, "prevAt"), num::<f64>(base, "prevMmol")) {
        (Some(at), Some(mmol)) if mmol.is_finite() => Some((Timestamp::from_ms(at), mmol)),
        _ => None,
    };
    let mut samples = Vec::new();
    for x in m.get("samples")?.as_l().ok()? {
        samples.push(sample_of(x.as_s().ok()?)?);
    }
    let mut closed = Vec::new();
    for c in m.get("closed")?.as_l().ok()? {
        let cm = c.as_m().ok()?;
        closed.push(Closed {
            kind: AlertKind::parse(&text(cm, "kind")?)?,
            episode: episode_of(cm).ok()??,
            resolved_at: Timestamp::from_ms(num(cm, "resolvedAt")?),
            retracted: cm.get("retracted").and_then(|v| v.as_bool().ok()).copied().unwrap_or(false),
        });
    }
    Some(AlertWindow {
        base_at: Timestamp::from_ms(num(m, "baseAt")?),
        base: FoldState { kinds, prev },
        samples,
        closed,
        clock: Timestamp::from_ms(num(m, "clock")?),
    })
}

fn outbox_av(o: &[Outgoing]) -> AttributeValue {
    AttributeValue::L(
        o.iter()
            .map(|e| {
                AttributeValue::M(Item::from([
                    ("detailType".to_string(), s(&e.detail_type)),
                    ("detail".to_string(), s(&e.detail)),
                ]))
            })
            .collect(),
    )
}

fn outbox_of(v: &AttributeValue) -> Option<Vec<Outgoing>> {
    v.as_l()
        .ok()?
        .iter()
        .map(|e| {
            let m = e.as_m().ok()?;
            Some(Outgoing { detail_type: text(m, "detailType")?, detail: text(m, "detail")? })
        })
        .collect()
}

pub fn session_item(x: &Session, version: u64) -> Item {
    let mut item: Item = HashMap::from([
        (sa::DEVICE_SN.to_string(), s(x.device_sn.as_str())),
        (sa::FIRST.to_string(), mark_av(&x.first)),
        (sa::LAST.to_string(), mark_av(&x.last)),
        (sa::FIRST_AT.to_string(), n(x.first.at.ms())),
        (sa::LAST_AT.to_string(), n(x.last.at.ms())),
        (
            sa::DAYS.to_string(),
            AttributeValue::M(x.days.iter().map(|(d, c)| (d.format("%Y-%m-%d").to_string(), n_u(*c))).collect()),
        ),
        (
            sa::ALERTS.to_string(),
            AttributeValue::M(x.alerts.iter().map(|(k, st)| (k.as_str().to_string(), alert_av(st))).collect()),
        ),
        (sa::VERSION.to_string(), n_u(version)),
    ]);
    put_opt_s(&mut item, sa::CGM_STATUS, x.cgm_status.as_deref());
    for (k, v) in [(sa::CGM_DAY, x.cgm_day), (sa::INCRE_MINUTE, x.incre_minute)] {
        if let Some(v) = v {
            item.insert(k.into(), n_u(v));
        }
    }
    opt_f(&mut item, sa::LOW, x.low);
    opt_f(&mut item, sa::HIGH, x.high);
    let index_key = |v: Option<&str>| v.filter(|v| v.len() <= sa::MAX_INDEX_KEY_BYTES).map(str::to_string);
    put_opt_s(&mut item, sa::CUSTOMER_NAME, index_key(x.customer_name.as_deref()).as_deref());
    put_opt_s(&mut item, sa::PATIENT_ID, index_key(x.patient_id.as_deref()).as_deref());
    put_opt_s(&mut item, sa::VISIT_ID, x.visit_id.as_deref());
    opt_n(&mut item, sa::ENDED_AT, x.ended_at.map(Timestamp::ms));
    opt_n(&mut item, sa::FIRST_RECEIVED_AT, x.first_received_at.map(Timestamp::ms));
    if let Some(w) = &x.alert_window {
        item.insert(sa::ALERT_WINDOW.into(), window_av(w));
    }
    if !x.outbox.is_empty() {
        item.insert(sa::OUTBOX.into(), outbox_av(&x.outbox));
    }
    if x.active() {
        item.insert(sa::ACTIVE.into(), s("1"));
    }
    item
}

/// The session in an item; `None` for an item this version cannot read whole (it is then
/// left alone rather than half-read: the next write of its device replaces it).
pub fn session_of(item: &Item) -> Option<Session> {
    let mut days = BTreeMap::new();
    for (d, c) in item.get(sa::DAYS)?.as_m().ok()? {
        days.insert(NaiveDate::parse_from_str(d, "%Y-%m-%d").ok()?, c.as_n().ok()?.parse().ok()?);
    }
    let mut alerts = Alerts::new();
    for (k, v) in item.get(sa::ALERTS)?.as_m().ok()? {
        alerts.insert(AlertKind::parse(k)?, alert_of(v)?);
    }
    Some(Session {
        device_sn: DeviceSn::new(text(item, sa::DEVICE_SN)?),
        first: mark_of(item.get(sa::FIRST))?,
        last: mark_of(item.get(sa::LAST))?,
        days,
        cgm_status: text(item, sa::CGM_STATUS),
        cgm_day: num(item, sa::CGM_DAY),
        incre_minute: num(item, sa::INCRE_MINUTE),
        low: num(item, sa::LOW),
        high: num(item, sa::HIGH),
        customer_name: text(item, sa::CUSTOMER_NAME),
        patient_id: text(item, sa::PATIENT_ID),
        visit_id: text(item, sa::VISIT_ID),
        first_received_at: num(item, sa::FIRST_RECEIVED_AT).map(Timestamp::from_ms),
        ended_at: num(item, sa::ENDED_AT).map(Timestamp::from_ms),
        alerts,
        // A window this version cannot read starts again (from the announced alerts), rather
        // than leave the whole session unreadable.
        alert_window: item.get(sa::ALERT_WINDOW).and_then(window_of),
        outbox: match item.get(sa::OUTBOX) {
            Some(v) => outbox_of(v)?,
            None => Vec::new(),
        },
        version: num(item, sa::VERSION)?,
    })
}

/// A readings-table item (a stream record's new image) as a session reads it: the reading,
/// the sensor's state beside it, and when the push route received it.
pub fn sensor_reading_of(item: &Item) -> Option<SensorReading> {
    use crate::store::attr;
    use cgm_domain::push::CGM_DAY_BOUNDS;
    Some(SensorReading {
        reading: crate::store::reads::dynamodb::reading_of(item)?,
        cgm_status: text(item, attr::CGM_STATUS).filter(|v| !v.is_empty() && v.len() <= 16),
        cgm_day: num(item, attr::CGM_DAY).filter(|d| CGM_DAY_BOUNDS.contains(d)),
        customer_name: text(item, attr::CUSTOMER_NAME),
        patient_id: text(item, attr::PATIENT_ID),
        visit_id: text(item, attr::VISIT_ID),
        received_at: num(item, attr::RECEIVED_AT).map(Timestamp::from_ms),
    })
}

impl SensorStore for DynamoSensorStore {
    async fn session(&self, device_sn: &DeviceSn) -> Result<Option<Session>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(sa::DEVICE_SN, s(device_sn.as_str()))
            .consistent_read(true)
            .send()
            .await
            .map_err(classify)?;
        Ok(out.item.as_ref().and_then(session_of))
    }

    async fn put_session(&self, x: &Session) -> Result<Saved, StoreError> {
        let req = self.client.put_item().table_name(&self.table).set_item(Some(session_item(x, x.version + 1)));
        let req = if x.version == 0 {
            req.condition_expression("attribute_not_exists(#d)").expression_attribute_names("#d", sa::DEVICE_SN)
        } else {
            req.condition_expression("#v = :v")
                .expression_attribute_names("#v", sa::VERSION)
                .expression_attribute_values(":v", n_u(x.version))
        };
        match req.send().await {
            Ok(_) => Ok(Saved::Stored),
            Err(e) if is_condition_failure(&e) => Ok(Saved::Conflict),
            Err(e) => Err(classify(e)),
        }
    }

    async fn active(&self) -> Result<Vec<Session>, StoreError> {
        self.query_index(sa::ACTIVE_INDEX, sa::ACTIVE, "1", false).await
    }

    async fn by_customer(&self, customer: &str) -> Result<Vec<Session>, StoreError> {
        self.query_index(sa::CUSTOMER_INDEX, sa::CUSTOMER_NAME, customer, true).await
    }

    async fn by_patient(&self, patient_id: &str) -> Result<Vec<Session>, StoreError> {
        self.query_index(sa::PATIENT_INDEX, sa::PATIENT_ID, patient_id, false).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cgm_domain::alerts::AlertSettings;
    use cgm_domain::store::reads::StoredReading;

    #[test]
    fn a_session_reads_back_as_written() {
        let r = |i: i64, mmol: f64| SensorReading {
            reading: StoredReading {
                test_id: format!("t{i}").into(),
                device_sn: "SN".into(),
                measured_at: Timestamp::from_ms(1_700_000_000_000 + i * 180_000),
                mmol,
                serial_no: Some(i as u64),
                status: Some("0".into()),
                valid: true,
                incre_minute: Some(3),
                low: Some(4.2),
                high: None,
            },
            cgm_status: Some("2".into()),
            cgm_day: Some(15),
            customer_name: Some("Ward 7".into()),
            patient_id: Some("P".into()),
            visit_id: Some("V".into()),
            received_at: None,
        };
        let counts = BTreeMap::from([(NaiveDate::from_ymd_opt(2023, 11, 15).unwrap(), 3)]);
        let x = Session::apply(None, &[r(0, 6.0), r(1, 2.5), r(2, 3.5)], &counts, &AlertSettings::default()).session;
        let x = x.unwrap();
        assert!(!x.alerts.is_empty(), "an open urgent low and a pending low");
        let item = session_item(&x, 4);
        assert_eq!(session_of(&item), Some(Session { version: 4, ..x.clone() }));
        assert_eq!(item.get(sa::ACTIVE), Some(&s("1")));
        let mut junk = item.clone();
        junk.insert(
            sa::ALERTS.into(),
            AttributeValue::M(HashMap::from([("nonsense".into(), AttributeValue::M(Item::new()))])),
        );
        assert_eq!(session_of(&junk), None);
    }
}
