//! Sensor sessions: one per device (`deviceSn`: a CGM sensor is worn once), from its first
//! reading to its last, with what a ward needs to see of it and the state of its alerts.
//!
//! A session is only ever moved forward by [`Session::apply`], a join of what it knew and
//! what a batch brings: the first reading is the earliest seen, the last the latest (its
//! state — `cgmStatus`, thresholds, hospital — comes with it), a day's reading count is the
//! largest its rollup has reported. Applying the same readings again, or in another order,
//! changes nothing, so a redelivered or shuffled batch can never move a session backwards,
//! and a store can write it conditionally on the version it read. Alerts are evaluated only
//! on readings newer than the last one known. Pure: no storage, no clock.

use crate::alerts::{self, AlertEvent, AlertSettings, Alerts, Observed};
use crate::ids::DeviceSn;
use crate::store::reads::StoredReading;
use crate::time::Timestamp;
use chrono::NaiveDate;
use std::collections::BTreeMap;

const DAY_MS: i64 = 86_400_000;
/// `cgmStatus` of a sensor that has finished (Sinocare's push spec).
pub const CGM_STATUS_FINISHED: &str = "4";

/// A stored reading with what the readings table keeps beside it for sessions.
#[derive(Debug, Clone, PartialEq)]
pub struct SensorReading {
    pub reading: StoredReading,
    pub cgm_status: Option<String>,
    /// The sensor's fixed maximum days of use.
    pub cgm_day: Option<u64>,
    pub customer_name: Option<String>,
    /// Personal: kept for the IAM routes, never logged, in events only when configured.
    pub patient_id: Option<String>,
    pub visit_id: Option<String>,
    pub received_at: Option<Timestamp>,
}

impl SensorReading {
    fn key(&self) -> (Timestamp, Option<u64>) {
        (self.reading.measured_at, self.reading.serial_no)
    }

    fn mark(&self) -> Mark {
        let r = &self.reading;
        Mark { at: r.measured_at, serial_no: r.serial_no, mmol: r.mmol, valid: r.valid }
    }

    fn observed(&self) -> Observed {
        let r = &self.reading;
        Observed {
            at: r.measured_at,
            mmol: r.mmol,
            valid: r.valid,
            low: r.low,
            high: r.high,
            received_at: self.received_at,
        }
    }
}

/// A reading at one end of a session.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Mark {
    pub at: Timestamp,
    pub serial_no: Option<u64>,
    pub mmol: f64,
    pub valid: bool,
}

impl Mark {
    fn key(&self) -> (Timestamp, Option<u64>) {
        (self.at, self.serial_no)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Session {
    pub device_sn: DeviceSn,
    pub first: Mark,
    pub last: Mark,
    /// Readings per local day, as the day's rollup counted them.
    pub days: BTreeMap<NaiveDate, u64>,
    pub cgm_status: Option<String>,
    pub cgm_day: Option<u64>,
    pub incre_minute: Option<u64>,
    pub low: Option<f64>,
    pub high: Option<f64>,
    pub customer_name: Option<String>,
    pub patient_id: Option<String>,
    pub visit_id: Option<String>,
    /// When the sensor finished (`cgmStatus` 4, or `cgmDay` days after its first reading).
    pub ended_at: Option<Timestamp>,
    pub alerts: Alerts,
    /// The store's write counter; not the session's content.
    pub version: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SensorChange {
    Started,
    Ended,
}

impl SensorChange {
    pub fn as_str(self) -> &'static str {
        match self {
            SensorChange::Started => "started",
            SensorChange::Ended => "ended",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct SensorEvent {
    /// `<deviceSn>~<started|ended>`: a sensor starts and ends once.
    pub id: String,
    pub change: SensorChange,
    pub device_sn: DeviceSn,
    pub at: Timestamp,
}

/// What a session's change tells the world: the event bus's entries.
#[derive(Debug, Clone, PartialEq)]
pub enum DomainEvent {
    Alert(AlertEvent),
    Sensor(SensorEvent),
}

impl DomainEvent {
    pub fn id(&self) -> &str {
        match self {
            DomainEvent::Alert(a) => &a.id,
            DomainEvent::Sensor(s) => &s.id,
        }
    }

    pub fn device_sn(&self) -> &DeviceSn {
        match self {
            DomainEvent::Alert(a) => &a.device_sn,
            DomainEvent::Sensor(s) => &s.device_sn,
        }
    }
}

impl Session {
    fn new(r: &SensorReading) -> Session {
        Session {
            device_sn: r.reading.device_sn.clone(),
            first: r.mark(),
            last: r.mark(),
            days: BTreeMap::new(),
            cgm_status: None,
            cgm_day: None,
            incre_minute: None,
            low: None,
            high: None,
            customer_name: None,
            patient_id: None,
            visit_id: None,
            ended_at: None,
            alerts: Alerts::new(),
            version: 0,
        }
    }

    /// Every reading of the session, once its days' rollups have caught up.
    pub fn readings(&self) -> u64 {
        self.days.values().sum()
    }

    pub fn wear_start(&self) -> Timestamp {
        self.first.at
    }

    /// `cgmDay` days after the first reading.
    pub fn expected_end(&self) -> Option<Timestamp> {
        let days = i64::try_from(self.cgm_day?).ok()?;
        Some(self.first.at.plus_ms(days.saturating_mul(DAY_MS)))
    }

    pub fn active(&self) -> bool {
        self.ended_at.is_none()
    }

    /// The session after `readings` (one device's, any order, repeats allowed) and the days'
    /// reading counts from their rollups; the events it raises.
    pub fn apply(
        current: Option<Session>,
        readings: &[SensorReading],
        day_counts: &BTreeMap<NaiveDate, u64>,
        s: &AlertSettings,
    ) -> (Option<Session>, Vec<DomainEvent>) {
        let mut sorted: Vec<&SensorReading> = readings.iter().collect();
        sorted.sort_by_key(|r| r.key());
        let mut events = Vec::new();
        let fresh = current.is_none();
        let mut session = match (current, sorted.first()) {
            (Some(s), _) => s,
            (None, Some(first)) => {
                let s = Session::new(first);
                events.push(DomainEvent::Sensor(SensorEvent {
                    id: format!("{}~started", s.device_sn.as_str()),
                    change: SensorChange::Started,
                    device_sn: s.device_sn.clone(),
                    at: first.reading.measured_at,
                }));
                s
            }
            (None, None) => return (None, Vec::new()),
        };
        let previous = session.last;
        let newer: Vec<&SensorReading> = sorted.iter().copied().filter(|r| fresh || r.key() > previous.key()).collect();
        for r in &sorted {
            if r.key() < session.first.key() {
                session.first = r.mark();
            }
        }
        for r in &newer {
            if fresh || r.key() >= session.last.key() {
                session.take_state(r);
            }
        }
        for (day, n) in day_counts {
            let known = session.days.entry(*day).or_default();
            *known = (*known).max(*n);
        }
        if session.active() {
            let observed: Vec<Observed> = newer.iter().map(|r| r.observed()).collect();
            let before = (!fresh && previous.valid).then_some((previous.at, previous.mmol));
            let raised = alerts::evaluate(&mut session.alerts, &session.device_sn, before, &observed, s);
            events.extend(raised.into_iter().map(DomainEvent::Alert));
            let finished = newer.iter().find(|r| r.cgm_status.as_deref() == Some(CGM_STATUS_FINISHED));
            let past_end = session.expected_end().filter(|end| session.last.at >= *end);
            if let Some(at) = finished.map(|r| r.reading.measured_at).or(past_end) {
                events.extend(session.end(at));
            }
        }
        (Some(session), events)
    }

    /// The scheduled check at `now`: the sensor's end by `cgmDay`, or its signal lost.
    pub fn check(&mut self, now: Timestamp, s: &AlertSettings) -> Vec<DomainEvent> {
        if !self.active() {
            return Vec::new();
        }
        if let Some(end) = self.expected_end().filter(|end| now >= *end) {
            return self.end(end);
        }
        alerts::check(&mut self.alerts, &self.device_sn, self.last.at, now, s)
            .into_iter()
            .map(DomainEvent::Alert)
            .collect()
    }

    fn take_state(&mut self, r: &SensorReading) {
        self.last = r.mark();
        self.cgm_status = r.cgm_status.clone().or(self.cgm_status.take());
        self.cgm_day = r.cgm_day.or(self.cgm_day);
        self.incre_minute = r.reading.incre_minute.or(self.incre_minute);
        self.low = r.reading.low.or(self.low);
        self.high = r.reading.high.or(self.high);
        self.customer_name = r.customer_name.clone().or(self.customer_name.take());
        self.patient_id = r.patient_id.clone().or(self.patient_id.take());
        self.visit_id = r.visit_id.clone().or(self.visit_id.take());
    }

    fn end(&mut self, at: Timestamp) -> Vec<DomainEvent> {
        self.ended_at = Some(at);
        let mut events: Vec<DomainEvent> =
            alerts::resolve_all(&mut self.alerts, &self.device_sn, at).into_iter().map(DomainEvent::Alert).collect();
        events.push(DomainEvent::Sensor(SensorEvent {
            id: format!("{}~ended", self.device_sn.as_str()),
            change: SensorChange::Ended,
            device_sn: self.device_sn.clone(),
            at,
        }));
        events
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::{AlertKind, Transition};
    use proptest::prelude::*;

    const T0: i64 = 1_700_000_000_000;
    const STEP: i64 = 180_000;

    fn reading(i: u64, mmol: f64) -> SensorReading {
        let at = Timestamp(T0 + i as i64 * STEP);
        SensorReading {
            reading: StoredReading {
                test_id: format!("t{i}").into(),
                device_sn: "SN".into(),
                measured_at: at,
                mmol,
                serial_no: Some(i + 1),
                status: Some("0".into()),
                valid: true,
                incre_minute: Some(3),
                low: None,
                high: None,
            },
            cgm_status: Some("2".into()),
            cgm_day: Some(15),
            customer_name: Some("Ward 7".into()),
            patient_id: Some("P-1".into()),
            visit_id: None,
            received_at: Some(at.plus_ms(30_000)),
        }
    }

    fn kinds(events: &[DomainEvent]) -> Vec<String> {
        events
            .iter()
            .map(|e| match e {
                DomainEvent::Alert(a) => format!("{}:{}", a.kind.as_str(), a.transition.as_str()),
                DomainEvent::Sensor(s) => format!("sensor:{}", s.change.as_str()),
            })
            .collect()
    }

    #[test]
    fn a_session_starts_raises_and_ends() {
        let s = AlertSettings::default();
        let rs: Vec<SensorReading> = (0..5).map(|i| reading(i, if i == 3 { 2.7 } else { 6.0 })).collect();
        let counts = BTreeMap::from([(NaiveDate::from_ymd_opt(2023, 11, 15).unwrap(), 5)]);
        let (session, events) = Session::apply(None, &rs, &counts, &s);
        let session = session.unwrap();
        assert_eq!(kinds(&events), ["sensor:started", "urgent_low:opened", "urgent_low:resolved"]);
        assert_eq!((session.first.serial_no, session.last.serial_no, session.readings()), (Some(1), Some(5), 5));
        assert_eq!(session.expected_end(), Some(Timestamp(T0 + 15 * DAY_MS)));
        assert_eq!(session.customer_name.as_deref(), Some("Ward 7"));
        // Status 4: the sensor ends, once.
        let mut done = reading(5, 6.0);
        done.cgm_status = Some(CGM_STATUS_FINISHED.into());
        let (session, events) = Session::apply(Some(session), &[done.clone()], &BTreeMap::new(), &s);
        assert_eq!(kinds(&events), ["sensor:ended"]);
        let (_, again) = Session::apply(session, &[done], &BTreeMap::new(), &s);
        assert!(again.is_empty());
    }

    #[test]
    fn the_scheduled_check_ends_a_sensor_past_its_days_and_finds_a_silent_one() {
        let s = AlertSettings::default();
        let (session, _) = Session::apply(None, &[reading(0, 6.0)], &BTreeMap::new(), &s);
        let mut session = session.unwrap();
        let lost = session.check(Timestamp(T0 + 25 * 60_000), &s);
        assert_eq!(kinds(&lost), ["signal_lost:opened"]);
        let ended = session.check(Timestamp(T0 + 15 * DAY_MS), &s);
        assert_eq!(kinds(&ended), ["signal_lost:resolved", "sensor:ended"]);
        assert!(session.check(Timestamp(T0 + 16 * DAY_MS), &s).is_empty());
    }

    #[test]
    fn an_older_reading_moves_the_first_but_not_the_state() {
        let s = AlertSettings::default();
        let (session, _) = Session::apply(None, &[reading(5, 6.0)], &BTreeMap::new(), &s);
        let mut older = reading(1, 2.5);
        older.cgm_status = Some("1".into());
        let (session, events) = Session::apply(session, &[older], &BTreeMap::new(), &s);
        let session = session.unwrap();
        assert!(events.is_empty(), "an older reading raises nothing: {events:?}");
        assert_eq!((session.first.serial_no, session.last.serial_no), (Some(2), Some(6)));
        assert_eq!(session.cgm_status.as_deref(), Some("2"));
    }

    proptest! {
        /// However a device's readings are cut into batches, shuffled and redelivered, the
        /// session ends the same, and every event is raised the same number of times as
        /// when the readings come once, in order (redeliveries raise nothing).
        #[test]
        fn batches_redeliveries_and_shuffles_give_the_same_session(
            values in prop::collection::vec(20u16..200, 1..60),
            cuts in prop::collection::vec(0usize..60, 0..6),
            redeliver in prop::collection::vec(0usize..60, 0..10),
            seed in any::<u64>(),
        ) {
            let s = AlertSettings { hold_minutes: 6, ..AlertSettings::default() };
            let all: Vec<SensorReading> = values.iter().enumerate().map(|(i, v)| reading(i as u64, f64::from(*v) / 10.0)).collect();
            let (once, once_events) = Session::apply(None, &all, &BTreeMap::new(), &s);
            // In order, in batches cut anywhere, each batch maybe shuffled, some delivered twice.
            let mut bounds: Vec<usize> = cuts.iter().map(|c| c % (all.len() + 1)).collect();
            bounds.extend([0, all.len()]);
            bounds.sort_unstable();
            bounds.dedup();
            let mut session = None;
            let mut events = Vec::new();
            for (n, w) in bounds.windows(2).enumerate() {
                let mut batch: Vec<SensorReading> = all[w[0]..w[1]].to_vec();
                if (seed >> (n % 64)) & 1 == 1 {
                    batch.reverse();
                }
                let (next, raised) = Session::apply(session, &batch, &BTreeMap::new(), &s);
                events.extend(raised);
                session = next;
                for i in &redeliver {
                    if *i < w[1] {
                        let (next, raised) = Session::apply(session, &[all[*i].clone()], &BTreeMap::new(), &s);
                        prop_assert!(raised.is_empty(), "a redelivery raised {raised:?}");
                        session = next;
                    }
                }
            }
            prop_assert_eq!(session, once);
            // Batches evaluate the same readings in the same order; only a shuffle inside a
            // batch is sorted back, so the events are those of one pass.
            prop_assert_eq!(events, once_events);
        }
    }

    #[test]
    fn urgent_low_needs_no_hold_others_do() {
        let s = AlertSettings::default();
        let rs: Vec<SensorReading> = (0..3).map(|i| reading(i, 3.5)).collect();
        let (_, events) = Session::apply(None, &rs, &BTreeMap::new(), &s);
        assert_eq!(kinds(&events), ["sensor:started"], "low must hold 15 minutes first");
        let _ = (AlertKind::Low, Transition::Opened);
    }
}
