//! Sensor sessions: one per device (`deviceSn`: a CGM sensor is worn once), from its first
//! reading to its last, with what a ward needs to see of it and the state of its alerts.
//!
//! A session is only ever moved forward by [`Session::apply`], a join of what it knew and
//! what a batch brings: the first reading is the earliest seen, the last the latest (its
//! state — `cgmStatus`, thresholds, hospital — comes with it), a day's reading count is the
//! largest its rollup has reported. Applying the same readings again, or in another order,
//! changes nothing, so a redelivered or shuffled batch can never move a session backwards,
//! and a store can write it conditionally on the version it read. Alerts are a fold over
//! the device's readings by measured time ([`crate::alerts::window`]), so they too are the
//! same whatever order the readings come in.
//!
//! A reading whose clock is ahead (measured more than `clock_ahead_minutes` after it was
//! received) is stored and flagged by the push route, but here it is never the sensor's
//! first or latest, never ends it and is never evaluated. A sensor ends by `cgmStatus` 4, or
//! `cgmDay` days after its first reading *arrived*. Pure: no storage, no clock.

use crate::alerts::window::{self, AlertWindow, Sample};
use crate::alerts::{self, AlertEvent, AlertKind, AlertSettings, Alerts};
use crate::ids::DeviceSn;
use crate::reading::StoredReading;
use crate::time::Timestamp;
use chrono::NaiveDate;
use std::collections::BTreeMap;

const DAY_MS: i64 = 86_400_000;
const MIN: i64 = 60_000;
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

    /// Measured more than `clock_ahead_minutes` after it arrived: its clock is wrong.
    pub fn clock_ahead(&self, s: &AlertSettings) -> bool {
        self.received_at.is_some_and(|r| self.reading.measured_at.since(r) > s.clock_ahead_minutes as i64 * MIN)
    }

    /// Received more than `max_age_minutes` after it was measured: a backlog pages nobody.
    pub fn late(&self, s: &AlertSettings) -> bool {
        self.received_at.is_some_and(|r| r.since(self.reading.measured_at) > s.max_age_minutes as i64 * MIN)
    }

    /// When it arrived (its measured time for an item without `receivedAt`).
    fn arrived(&self) -> Timestamp {
        self.received_at.unwrap_or(self.reading.measured_at)
    }

    fn sample(&self) -> Sample {
        let r = &self.reading;
        Sample { at: r.measured_at, serial_no: r.serial_no, mmol: r.mmol, low: r.low, high: r.high }
    }

    fn mark(&self) -> Mark {
        let r = &self.reading;
        Mark { at: r.measured_at, serial_no: r.serial_no, mmol: r.mmol, valid: r.valid }
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
    /// When the first reading arrived (`receivedAt`): `cgmDay` counts from it.
    pub first_received_at: Option<Timestamp>,
    /// When the sensor finished (`cgmStatus` 4, or `cgmDay` days after its first reading).
    pub ended_at: Option<Timestamp>,
    /// The announced state of each alert: what the ward sees and acknowledges.
    pub alerts: Alerts,
    /// What the alert evaluation keeps to be independent of arrival order; `None` for a
    /// session stored before it existed (it starts at its next reading).
    pub alert_window: Option<AlertWindow>,
    /// Events decided and not yet known to be on the bus: written with the session, sent
    /// after the write, cleared after the send (so a retry sends only what was not sent).
    pub outbox: Vec<Outgoing>,
    /// The store's write counter; not the session's content.
    pub version: u64,
}

/// An event as the bus takes it, kept in a session's outbox until sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    pub detail_type: String,
    /// JSON.
    pub detail: String,
}

/// What [`Session::apply`] gives.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Applied {
    pub session: Option<Session>,
    pub events: Vec<DomainEvent>,
    /// Readings whose clock is ahead: stored, never the sensor's latest, never evaluated.
    pub clock_ahead: usize,
    /// Evaluable readings older than the alert window (held back by the stream longer than
    /// `stream_lag_minutes`): they changed no alert.
    pub outside_window: usize,
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
            first_received_at: r.received_at,
            ended_at: None,
            alerts: Alerts::new(),
            alert_window: None,
            outbox: Vec::new(),
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

    /// `cgmDay` days after the first reading arrived (its measured time for a session stored
    /// before arrivals were kept): a wrong clock can neither end a sensor early nor keep it.
    pub fn expected_end(&self) -> Option<Timestamp> {
        let days = i64::try_from(self.cgm_day?).ok()?;
        Some(self.first_received_at.unwrap_or(self.first.at).plus_ms(days.saturating_mul(DAY_MS)))
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
    ) -> Applied {
        let (ahead, mut sorted): (Vec<&SensorReading>, Vec<&SensorReading>) =
            readings.iter().partition(|r| r.clock_ahead(s));
        let clock_ahead = ahead.len();
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
            (None, None) => return Applied { clock_ahead, ..Applied::default() },
        };
        let previous = session.last;
        let newer: Vec<&SensorReading> = sorted.iter().copied().filter(|r| fresh || r.key() > previous.key()).collect();
        for r in &sorted {
            if r.key() < session.first.key() {
                session.first = r.mark();
            }
            if let Some(at) = r.received_at {
                session.first_received_at = Some(session.first_received_at.map_or(at, |f| f.min(at)));
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
        let mut outside_window = 0;
        if session.active() && !sorted.is_empty() {
            events.extend(session.signal_back(&sorted, s).map(DomainEvent::Alert));
            // The device's clock: the newest arrival its readings show.
            let clock = sorted.iter().map(|r| r.arrived().max(r.reading.measured_at)).max().unwrap_or(Timestamp::MIN);
            let samples: Vec<Sample> =
                sorted.iter().filter(|r| r.reading.valid && !r.late(s)).map(|r| r.sample()).collect();
            let start = if fresh { Timestamp::MIN } else { previous.at };
            let mut w = session.alert_window.take().unwrap_or_else(|| AlertWindow::from_alerts(&session.alerts, start));
            let (raised, report) =
                window::evaluate(&mut w, &mut session.alerts, &session.device_sn, &samples, clock, s);
            session.alert_window = Some(w);
            outside_window = report.outside_window;
            events.extend(raised.into_iter().map(DomainEvent::Alert));
            let finished = newer.iter().find(|r| r.cgm_status.as_deref() == Some(CGM_STATUS_FINISHED));
            let arrived = sorted.iter().map(|r| r.arrived()).max().unwrap_or(Timestamp::MIN);
            let past_end = session.expected_end().filter(|end| arrived >= *end);
            if let Some(at) = finished.map(|r| r.reading.measured_at).or(past_end) {
                events.extend(session.end(at));
            }
        }
        Applied { session: Some(session), events, clock_ahead, outside_window }
    }

    /// Resolves signal lost when a reading newer than the one it was reckoned from came.
    fn signal_back(&mut self, readings: &[&SensorReading], s: &AlertSettings) -> Option<AlertEvent> {
        let st = self.alerts.get_mut(&AlertKind::SignalLost)?;
        let ep = st.open.as_ref()?;
        let reckoned_from = ep.opened_at.plus_ms(-(s.signal_lost_minutes as i64 * MIN));
        let back = readings.iter().map(|r| r.reading.measured_at).filter(|at| *at > reckoned_from).max()?;
        let ep = st.open.take()?;
        if st == &alerts::AlertState::default() {
            self.alerts.remove(&AlertKind::SignalLost);
        }
        Some(alerts::signal_back(&self.device_sn, &ep, back))
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
        self.alert_window = None;
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
    use crate::alerts::Transition;
    use proptest::prelude::*;

    const T0: i64 = 1_700_000_000_000;
    const STEP: i64 = 180_000;

    fn reading(i: u64, mmol: f64) -> SensorReading {
        let at = Timestamp::from_ms(T0 + i as i64 * STEP);
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

    fn apply(current: Option<Session>, rs: &[SensorReading], s: &AlertSettings) -> (Option<Session>, Vec<DomainEvent>) {
        let a = Session::apply(current, rs, &BTreeMap::new(), s);
        (a.session, a.events)
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

    fn late_flags(events: &[DomainEvent]) -> Vec<bool> {
        events
            .iter()
            .filter_map(|e| match e {
                DomainEvent::Alert(a) => Some(a.found_late),
                DomainEvent::Sensor(_) => None,
            })
            .collect()
    }

    #[test]
    fn a_session_starts_raises_and_ends() {
        let s = AlertSettings::default();
        let rs: Vec<SensorReading> = (0..5).map(|i| reading(i, if i == 3 { 2.7 } else { 6.0 })).collect();
        let counts = BTreeMap::from([(NaiveDate::from_ymd_opt(2023, 11, 15).unwrap(), 5)]);
        let a = Session::apply(None, &rs, &counts, &s);
        let (session, events) = (a.session.unwrap(), a.events);
        assert_eq!(kinds(&events), ["sensor:started", "urgent_low:opened", "urgent_low:resolved"]);
        assert_eq!((session.first.serial_no, session.last.serial_no, session.readings()), (Some(1), Some(5), 5));
        assert_eq!(session.expected_end(), Some(Timestamp::from_ms(T0 + 30_000 + 15 * DAY_MS)), "by arrival");
        assert_eq!(session.customer_name.as_deref(), Some("Ward 7"));
        // Status 4: the sensor ends, once.
        let mut done = reading(5, 6.0);
        done.cgm_status = Some(CGM_STATUS_FINISHED.into());
        let (session, events) = apply(Some(session), &[done.clone()], &s);
        assert_eq!(kinds(&events), ["sensor:ended"]);
        let (_, again) = apply(session, &[done], &s);
        assert!(again.is_empty());
    }

    #[test]
    fn the_scheduled_check_ends_a_sensor_past_its_days_and_finds_a_silent_one() {
        let s = AlertSettings::default();
        let (session, _) = apply(None, &[reading(0, 6.0)], &s);
        let mut session = session.unwrap();
        let lost = session.check(Timestamp::from_ms(T0 + 25 * 60_000), &s);
        assert_eq!(kinds(&lost), ["signal_lost:opened"]);
        let ended = session.check(Timestamp::from_ms(T0 + 30_000 + 15 * DAY_MS), &s);
        assert_eq!(kinds(&ended), ["signal_lost:resolved", "sensor:ended"]);
        assert!(session.check(Timestamp::from_ms(T0 + 16 * DAY_MS), &s).is_empty());
    }

    #[test]
    fn signal_lost_is_resolved_by_a_newer_reading_only() {
        let s = AlertSettings::default();
        let (session, _) = apply(None, &[reading(5, 6.0), reading(6, 6.0)], &s);
        let mut session = session.unwrap();
        assert_eq!(kinds(&session.check(Timestamp::from_ms(T0 + 6 * STEP + 21 * 60_000), &s)), ["signal_lost:opened"]);
        // A reading older than the last one (a re-send) says nothing of the signal now.
        let (session, events) = apply(Some(session), &[reading(2, 6.0)], &s);
        assert!(events.is_empty(), "{events:?}");
        let (_, events) = apply(session, &[reading(7, 6.0)], &s);
        assert_eq!(kinds(&events), ["signal_lost:resolved"]);
    }

    /// Issue 25, case 1: a 6.0 measured one minute ago, then a 2.5 measured four minutes
    /// ago. In order they open and resolve an urgent low; out of order they must too.
    #[test]
    fn a_low_that_arrives_after_a_newer_reading_still_opens_and_resolves_its_episode() {
        let s = AlertSettings::default();
        let now = T0 + 60 * 60_000;
        let at = |ago_min: i64, mmol: f64, serial: u64| {
            let mut r = reading(0, mmol);
            r.reading.measured_at = Timestamp::from_ms(now - ago_min * 60_000);
            r.reading.serial_no = Some(serial);
            r.reading.test_id = format!("t{serial}").into();
            r.received_at = Some(Timestamp::from_ms(now));
            r
        };
        let (session, first) = apply(None, &[at(1, 6.0, 11)], &s);
        assert_eq!(kinds(&first), ["sensor:started"]);
        let (session, events) = apply(session, &[at(4, 2.5, 10)], &s);
        assert_eq!(kinds(&events), ["urgent_low:opened", "urgent_low:resolved"], "{events:#?}");
        assert_eq!(late_flags(&events), [true, true], "found out of order");
        let session = session.unwrap();
        assert!(session.alerts.is_empty(), "{:?}", session.alerts);
        assert_eq!(session.last.serial_no, Some(11), "the newer reading stays the latest");
        // In order, the same episode, not marked late.
        let (_, in_order) = apply(None, &[at(4, 2.5, 10), at(1, 6.0, 11)], &s);
        assert_eq!(kinds(&in_order), ["sensor:started", "urgent_low:opened", "urgent_low:resolved"]);
        assert_eq!(late_flags(&in_order), [false, false]);
        let ids = |e: &[DomainEvent]| {
            e.iter().map(|e| e.id().to_string()).filter(|i| !i.ends_with("started")).collect::<Vec<_>>()
        };
        assert_eq!(ids(&events), ids(&in_order), "the same ids whatever the order");
    }

    /// Issue 25, case 2: one reading stamped 20 days ahead must not end the sensor, nor one
    /// stamped an hour ahead silence the fresh 2.4 after it.
    #[test]
    fn a_clock_ahead_neither_ends_the_sensor_nor_silences_a_fresh_low() {
        let s = AlertSettings::default();
        for ahead_min in [20 * 24 * 60, 60] {
            let (session, _) = apply(None, &[reading(0, 6.0), reading(1, 6.1)], &s);
            let mut ahead = reading(2, 6.0);
            ahead.received_at = Some(Timestamp::from_ms(T0 + 2 * STEP));
            ahead.reading.measured_at = Timestamp::from_ms(T0 + 2 * STEP + ahead_min * 60_000);
            let a = Session::apply(session, &[ahead], &BTreeMap::new(), &s);
            assert_eq!(a.clock_ahead, 1);
            assert!(a.events.is_empty(), "{:?}", a.events);
            let session = a.session.unwrap();
            assert!(session.active(), "not ended by a wrong clock");
            assert_eq!(session.last.serial_no, Some(2), "never the latest");
            let (session, events) = apply(Some(session), &[reading(3, 2.4)], &s);
            assert_eq!(kinds(&events), ["urgent_low:opened"], "ahead {ahead_min} min");
            assert_eq!(session.unwrap().last.serial_no, Some(4));
        }
    }

    #[test]
    fn a_backlog_received_late_pages_nobody_but_keeps_the_session() {
        let s = AlertSettings::default();
        let backlog: Vec<SensorReading> = (0..20)
            .map(|i| {
                let mut r = reading(i, 2.5);
                r.received_at = Some(Timestamp::from_ms(T0 + 5 * 3_600_000));
                r
            })
            .collect();
        let (session, events) = apply(None, &backlog, &s);
        assert_eq!(kinds(&events), ["sensor:started"]);
        assert_eq!(session.unwrap().last.serial_no, Some(20));
    }

    proptest! {
        /// However a device's readings are cut into batches and redelivered, in order, the
        /// session ends the same, and every event is raised the same number of times as
        /// when the readings come once (redeliveries raise nothing).
        #[test]
        fn batches_and_redeliveries_give_the_same_session(
            values in prop::collection::vec(20u16..200, 1..60),
            cuts in prop::collection::vec(0usize..60, 0..6),
            redeliver in prop::collection::vec(0usize..60, 0..10),
            seed in any::<u64>(),
        ) {
            let s = AlertSettings { hold_minutes: 6, ..AlertSettings::default() };
            let all: Vec<SensorReading> = values.iter().enumerate().map(|(i, v)| reading(i as u64, f64::from(*v) / 10.0)).collect();
            let (once, once_events) = apply(None, &all, &s);
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
                let (next, raised) = apply(session, &batch, &s);
                events.extend(raised);
                session = next;
                for i in &redeliver {
                    if *i < w[1] {
                        let (next, raised) = apply(session, &[all[*i].clone()], &s);
                        prop_assert!(raised.is_empty(), "a redelivery raised {raised:?}");
                        session = next;
                    }
                }
            }
            let strip = |s: Option<Session>| s.map(|s| Session { alert_window: None, ..s });
            prop_assert_eq!(strip(session), strip(once));
            prop_assert_eq!(events, once_events);
        }
    }

    #[test]
    fn urgent_low_needs_no_hold_others_do() {
        let s = AlertSettings::default();
        let rs: Vec<SensorReading> = (0..3).map(|i| reading(i, 3.5)).collect();
        let (_, events) = apply(None, &rs, &s);
        assert_eq!(kinds(&events), ["sensor:started"], "low must hold 15 minutes first");
        let _ = (AlertKind::Low, Transition::Opened);
    }
}
