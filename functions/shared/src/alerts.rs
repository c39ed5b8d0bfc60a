//! Glucose alerts as episodes, from a sensor's readings in time order.
//!
//! Each kind ([`AlertKind`]) has at most one open episode per sensor. An episode opens when
//! its condition has held for [`AlertSettings::hold_minutes`] (urgent low: at once, from a
//! single reading), re-notifies every [`AlertSettings::renotify_minutes`] while it lasts
//! (unless acknowledged), and resolves with the first reading outside the condition.
//! Readings that arrive late (received more than [`AlertSettings::max_age_minutes`] after
//! they were measured: a backlog re-sent after a reconnect) move the state along and may
//! resolve an episode, but never open or re-notify one: nobody should be paged for the
//! past. Signal lost is opened by a scheduled check ([`check`]), never by a reading, and
//! resolved by the next reading.
//!
//! Every transition is an [`AlertEvent`] with a stable id (the episode's id and the
//! transition), so a redelivered batch that recomputes the same transition yields the same
//! id and a consumer can drop the repeat. Pure: no storage, no clock.

use crate::ids::DeviceSn;
use crate::metrics::MG_DL_PER_MMOL;
use crate::time::Timestamp;
use crate::trend;
use std::collections::BTreeMap;

const MIN: i64 = 60_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AlertKind {
    /// Below 3.0 mmol/L (the consensus's level 2 hypoglycaemia): opens at once.
    UrgentLow,
    /// Below the device's pushed `low`, else 3.9 mmol/L (level 1).
    Low,
    /// Above the device's pushed `high`, else 10.0 mmol/L (level 1).
    High,
    /// Above 13.9 mmol/L (level 2).
    VeryHigh,
    /// Falling at least as fast as [`AlertSettings::fast_fall_mg_dl_per_min`].
    FastFall,
    /// No reading for [`AlertSettings::signal_lost_minutes`] from a sensor still in use.
    SignalLost,
}

impl AlertKind {
    pub const ALL: [AlertKind; 6] = [
        AlertKind::UrgentLow,
        AlertKind::Low,
        AlertKind::High,
        AlertKind::VeryHigh,
        AlertKind::FastFall,
        AlertKind::SignalLost,
    ];
    const GLUCOSE: [AlertKind; 5] =
        [AlertKind::UrgentLow, AlertKind::Low, AlertKind::High, AlertKind::VeryHigh, AlertKind::FastFall];

    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::UrgentLow => "urgent_low",
            AlertKind::Low => "low",
            AlertKind::High => "high",
            AlertKind::VeryHigh => "very_high",
            AlertKind::FastFall => "fast_fall",
            AlertKind::SignalLost => "signal_lost",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// The consensus level: 2 for urgent low and very high, else 1.
    pub fn level(self) -> u8 {
        match self {
            AlertKind::UrgentLow | AlertKind::VeryHigh => 2,
            _ => 1,
        }
    }
}

/// Thresholds and timings, from the configuration (`ALERT_*`, `SIGNAL_LOST_MINUTES`); the
/// defaults are the international consensus's ranges (Battelino et al., Diabetes Care 2019).
#[derive(Debug, Clone, PartialEq)]
pub struct AlertSettings {
    pub urgent_low_mmol: f64,
    /// Used when the device pushed no `low`.
    pub low_mmol: f64,
    /// Used when the device pushed no `high`.
    pub high_mmol: f64,
    pub very_high_mmol: f64,
    /// A fall at least this fast (mg/dL per minute, between readings at most 15 minutes
    /// apart) is a fast fall; 2.0 is where Nightscout's arrow turns `SingleDown`.
    pub fast_fall_mg_dl_per_min: f64,
    /// How long a condition must hold before its episode opens (all kinds but urgent low).
    pub hold_minutes: u64,
    pub renotify_minutes: u64,
    /// A reading received more than this after it was measured raises nothing.
    pub max_age_minutes: u64,
    pub signal_lost_minutes: u64,
}

impl Default for AlertSettings {
    fn default() -> Self {
        AlertSettings {
            urgent_low_mmol: 3.0,
            low_mmol: 3.9,
            high_mmol: 10.0,
            very_high_mmol: 13.9,
            fast_fall_mg_dl_per_min: 2.0,
            hold_minutes: 15,
            renotify_minutes: 30,
            max_age_minutes: 10,
            signal_lost_minutes: 20,
        }
    }
}

/// One open episode.
#[derive(Debug, Clone, PartialEq)]
pub struct Episode {
    /// `<deviceSn>~<kind>~<opened ms>`: stable, and names its sensor.
    pub id: String,
    pub opened_at: Timestamp,
    /// When it last notified (opened or re-notified).
    pub notified_at: Timestamp,
    pub notifications: u32,
    pub acknowledged_at: Option<Timestamp>,
    /// The reading that opened it (none for signal lost).
    pub value_mmol: Option<f64>,
    pub threshold_mmol: Option<f64>,
}

/// What a sensor remembers of one kind of alert.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AlertState {
    /// The condition has held since this reading, not yet long enough to open.
    pub pending_since: Option<Timestamp>,
    pub open: Option<Episode>,
}

pub type Alerts = BTreeMap<AlertKind, AlertState>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    Opened,
    Renotified,
    Resolved,
}

impl Transition {
    pub fn as_str(self) -> &'static str {
        match self {
            Transition::Opened => "opened",
            Transition::Renotified => "renotified",
            Transition::Resolved => "resolved",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct AlertEvent {
    /// The episode's id, the transition, and for a re-notification its number.
    pub id: String,
    pub alert_id: String,
    pub kind: AlertKind,
    pub transition: Transition,
    pub device_sn: DeviceSn,
    /// The reading (or the check) that made the transition.
    pub at: Timestamp,
    pub opened_at: Timestamp,
    pub value_mmol: Option<f64>,
    pub threshold_mmol: Option<f64>,
}

/// The readings an evaluation needs: instant, value, validity, the device's thresholds,
/// when it was received.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Observed {
    pub at: Timestamp,
    pub mmol: f64,
    pub valid: bool,
    pub low: Option<f64>,
    pub high: Option<f64>,
    pub received_at: Option<Timestamp>,
}

impl Observed {
    fn late(&self, s: &AlertSettings) -> bool {
        self.received_at.is_some_and(|r| r.since(self.at) > s.max_age_minutes as i64 * MIN)
    }
}

pub fn alert_id(device_sn: &DeviceSn, kind: AlertKind, opened_at: Timestamp) -> String {
    format!("{}~{}~{}", device_sn.as_str(), kind.as_str(), opened_at.ms())
}

/// The sensor and kind an alert id names.
pub fn parse_alert_id(id: &str) -> Option<(DeviceSn, AlertKind, Timestamp)> {
    let mut parts = id.rsplitn(3, '~');
    let ms: i64 = parts.next()?.parse().ok()?;
    let kind = AlertKind::parse(parts.next()?)?;
    let sn = parts.next().filter(|s| !s.is_empty())?;
    Some((DeviceSn::from(sn), kind, Timestamp(ms)))
}

/// Moves `alerts` along `readings` (in time order, each newer than the sensor's previous
/// last reading, `previous` being that one for the first rate) and returns the transitions.
pub fn evaluate(
    alerts: &mut Alerts,
    device_sn: &DeviceSn,
    previous: Option<(Timestamp, f64)>,
    readings: &[Observed],
    s: &AlertSettings,
) -> Vec<AlertEvent> {
    let mut events = Vec::new();
    let mut prev_valid = previous;
    for r in readings {
        // Any reading means the signal is back.
        if let Some(ep) = alerts.get_mut(&AlertKind::SignalLost).and_then(|st| st.open.take()) {
            events.push(event(device_sn, AlertKind::SignalLost, Transition::Resolved, &ep, r.at, 0));
        }
        if !r.valid {
            continue;
        }
        let rate = trend::rate((r.at, r.mmol), prev_valid);
        prev_valid = Some((r.at, r.mmol));
        for kind in AlertKind::GLUCOSE {
            let threshold = match kind {
                AlertKind::UrgentLow => s.urgent_low_mmol,
                AlertKind::Low => r.low.unwrap_or(s.low_mmol),
                AlertKind::High => r.high.unwrap_or(s.high_mmol),
                AlertKind::VeryHigh => s.very_high_mmol,
                AlertKind::FastFall => s.fast_fall_mg_dl_per_min / MG_DL_PER_MMOL,
                AlertKind::SignalLost => continue,
            };
            let holds = match kind {
                AlertKind::UrgentLow | AlertKind::Low => r.mmol < threshold,
                AlertKind::High | AlertKind::VeryHigh => r.mmol > threshold,
                _ => rate.is_some_and(|mg_dl_per_min| -mg_dl_per_min >= s.fast_fall_mg_dl_per_min),
            };
            let hold_ms = if kind == AlertKind::UrgentLow { 0 } else { s.hold_minutes as i64 * MIN };
            let st = alerts.entry(kind).or_default();
            step(st, &mut events, device_sn, kind, r, holds, hold_ms, threshold, s);
        }
    }
    alerts.retain(|_, st| st != &AlertState::default());
    events
}

#[allow(clippy::too_many_arguments)]
fn step(
    st: &mut AlertState,
    events: &mut Vec<AlertEvent>,
    device_sn: &DeviceSn,
    kind: AlertKind,
    r: &Observed,
    holds: bool,
    hold_ms: i64,
    threshold: f64,
    s: &AlertSettings,
) {
    let late = r.late(s);
    if !holds {
        st.pending_since = None;
        if let Some(ep) = st.open.take() {
            events.push(event(device_sn, kind, Transition::Resolved, &ep, r.at, 0));
        }
        return;
    }
    match &mut st.open {
        Some(ep) => {
            let due = r.at.since(ep.notified_at) >= s.renotify_minutes as i64 * MIN;
            if due && !late && ep.acknowledged_at.is_none() {
                ep.notified_at = r.at;
                ep.notifications += 1;
                let n = ep.notifications;
                events.push(event(device_sn, kind, Transition::Renotified, ep, r.at, n));
            }
        }
        None => {
            let since = *st.pending_since.get_or_insert(r.at);
            if !late && r.at.since(since) >= hold_ms {
                let ep = Episode {
                    id: alert_id(device_sn, kind, r.at),
                    opened_at: r.at,
                    notified_at: r.at,
                    notifications: 1,
                    acknowledged_at: None,
                    value_mmol: Some(r.mmol),
                    threshold_mmol: (kind != AlertKind::FastFall).then_some(threshold),
                };
                events.push(event(device_sn, kind, Transition::Opened, &ep, r.at, 0));
                st.pending_since = None;
                st.open = Some(ep);
            }
        }
    }
}

/// The scheduled check of one sensor at `now`: opens signal lost once its last reading is
/// [`AlertSettings::signal_lost_minutes`] old, and re-notifies it while it lasts.
pub fn check(
    alerts: &mut Alerts,
    device_sn: &DeviceSn,
    last_at: Timestamp,
    now: Timestamp,
    s: &AlertSettings,
) -> Vec<AlertEvent> {
    let lost_at = last_at.plus_ms(s.signal_lost_minutes as i64 * MIN);
    if now < lost_at {
        return Vec::new();
    }
    let st = alerts.entry(AlertKind::SignalLost).or_default();
    match &mut st.open {
        Some(ep) => {
            let due = now.since(ep.notified_at) >= s.renotify_minutes as i64 * MIN;
            if !due || ep.acknowledged_at.is_some() {
                return Vec::new();
            }
            // Re-notifications fall on the episode's own schedule, so two checks that race
            // compute the same one.
            let every = (s.renotify_minutes as i64 * MIN).max(MIN);
            let n = now.since(ep.opened_at) / every;
            ep.notified_at = ep.opened_at.plus_ms(n * every);
            ep.notifications = u32::try_from(n + 1).unwrap_or(u32::MAX);
            vec![event(device_sn, AlertKind::SignalLost, Transition::Renotified, ep, now, ep.notifications)]
        }
        None => {
            // Opened at the instant the signal counted as lost, so every check agrees on it.
            let ep = Episode {
                id: alert_id(device_sn, AlertKind::SignalLost, lost_at),
                opened_at: lost_at,
                notified_at: lost_at,
                notifications: 1,
                acknowledged_at: None,
                value_mmol: None,
                threshold_mmol: None,
            };
            let e = event(device_sn, AlertKind::SignalLost, Transition::Opened, &ep, now, 0);
            st.open = Some(ep);
            vec![e]
        }
    }
}

/// Resolves every open episode (the sensor ended: nothing it measured can still hold).
pub fn resolve_all(alerts: &mut Alerts, device_sn: &DeviceSn, at: Timestamp) -> Vec<AlertEvent> {
    let events = alerts
        .iter_mut()
        .filter_map(|(kind, st)| st.open.take().map(|ep| event(device_sn, *kind, Transition::Resolved, &ep, at, 0)))
        .collect();
    alerts.clear();
    events
}

fn event(device_sn: &DeviceSn, kind: AlertKind, t: Transition, ep: &Episode, at: Timestamp, n: u32) -> AlertEvent {
    let id = match t {
        Transition::Renotified => format!("{}~{}~{n}", ep.id, t.as_str()),
        _ => format!("{}~{}", ep.id, t.as_str()),
    };
    AlertEvent {
        id,
        alert_id: ep.id.clone(),
        kind,
        transition: t,
        device_sn: device_sn.clone(),
        at,
        opened_at: ep.opened_at,
        value_mmol: match t {
            Transition::Opened => ep.value_mmol,
            _ => None,
        },
        threshold_mmol: ep.threshold_mmol,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_700_000_000_000;
    const STEP: i64 = 3 * MIN;

    fn at(i: i64) -> Timestamp {
        Timestamp(T0 + i * STEP)
    }

    fn live(i: i64, mmol: f64) -> Observed {
        Observed { at: at(i), mmol, valid: true, low: None, high: None, received_at: Some(at(i).plus_ms(20_000)) }
    }

    fn run(values: &[f64], s: &AlertSettings) -> (Alerts, Vec<AlertEvent>) {
        let mut alerts = Alerts::new();
        let rs: Vec<Observed> = values.iter().enumerate().map(|(i, v)| live(i as i64, *v)).collect();
        let events = evaluate(&mut alerts, &"SN".into(), None, &rs, s);
        (alerts, events)
    }

    fn kinds(events: &[AlertEvent]) -> Vec<(AlertKind, Transition)> {
        events.iter().map(|e| (e.kind, e.transition)).collect()
    }

    #[test]
    fn urgent_low_opens_at_once_low_after_the_hold_and_both_resolve() {
        let s = AlertSettings::default();
        // 2.8 once, then 3.5 for 15 minutes (six readings), then 5.0.
        let (alerts, events) = run(&[5.0, 2.8, 3.5, 3.5, 3.5, 3.5, 3.5, 3.5, 5.0], &s);
        use AlertKind::*;
        use Transition::*;
        assert_eq!(
            kinds(&events),
            vec![(UrgentLow, Opened), (UrgentLow, Resolved), (Low, Opened), (Low, Resolved)],
            "{events:#?}"
        );
        assert_eq!(events[0].at, at(1));
        assert_eq!(events[2].at, at(6), "low held from 2.8 at reading 1 for 15 minutes");
        assert_eq!(events[2].threshold_mmol, Some(3.9));
        assert!(alerts.is_empty(), "nothing pending or open: {alerts:?}");
    }

    #[test]
    fn a_device_threshold_replaces_the_default_and_high_renotifies() {
        let s = AlertSettings { hold_minutes: 0, renotify_minutes: 30, ..AlertSettings::default() };
        let mut alerts = Alerts::new();
        let rs: Vec<Observed> = (0..=21).map(|i| Observed { high: Some(8.0), ..live(i, 9.0) }).collect();
        let events = evaluate(&mut alerts, &"SN".into(), None, &rs, &s);
        use Transition::*;
        let highs: Vec<_> = events.iter().filter(|e| e.kind == AlertKind::High).map(|e| (e.transition, e.at)).collect();
        assert_eq!(highs, vec![(Opened, at(0)), (Renotified, at(10)), (Renotified, at(20))]);
        assert_eq!(events.iter().filter(|e| e.kind == AlertKind::VeryHigh).count(), 0);
        let ids: std::collections::BTreeSet<&str> = events.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(ids.len(), events.len(), "each transition its own id");
    }

    #[test]
    fn late_readings_raise_nothing_but_a_live_one_after_them_does() {
        let s = AlertSettings { hold_minutes: 0, ..AlertSettings::default() };
        let mut alerts = Alerts::new();
        let now = at(100);
        let backlog: Vec<Observed> = (0..20).map(|i| Observed { received_at: Some(now), ..live(i, 2.5) }).collect();
        let events = evaluate(&mut alerts, &"SN".into(), None, &backlog, &s);
        assert!(events.is_empty(), "{events:#?}");
        let events = evaluate(&mut alerts, &"SN".into(), Some((at(19), 2.5)), &[live(20, 2.5)], &s);
        assert_eq!(
            kinds(&events),
            vec![(AlertKind::UrgentLow, Transition::Opened), (AlertKind::Low, Transition::Opened)]
        );
    }

    #[test]
    fn a_fast_fall_beside_the_arrow_threshold() {
        let s = AlertSettings { hold_minutes: 0, ..AlertSettings::default() };
        // −0.4 mmol/L in 3 minutes = −2.40 mg/dL/min: SingleDown, a fast fall.
        let (_, events) = run(&[9.0, 8.6, 8.6], &s);
        assert_eq!(
            kinds(&events),
            vec![(AlertKind::FastFall, Transition::Opened), (AlertKind::FastFall, Transition::Resolved)]
        );
        // −0.3 in 3 minutes = −1.80: FortyFiveDown, not fast.
        assert!(run(&[9.0, 8.7], &s).1.is_empty());
    }

    #[test]
    fn signal_lost_opens_once_renotifies_on_its_schedule_and_resolves_on_a_reading() {
        let s = AlertSettings::default();
        let sn: DeviceSn = "SN".into();
        let mut alerts = Alerts::new();
        let last = at(0);
        assert!(check(&mut alerts, &sn, last, last.plus_ms(19 * MIN), &s).is_empty());
        let opened = check(&mut alerts, &sn, last, last.plus_ms(21 * MIN), &s);
        assert_eq!(kinds(&opened), vec![(AlertKind::SignalLost, Transition::Opened)]);
        assert_eq!(opened[0].opened_at, last.plus_ms(20 * MIN), "the instant it counted as lost");
        assert!(check(&mut alerts, &sn, last, last.plus_ms(22 * MIN), &s).is_empty(), "once");
        let again = check(&mut alerts, &sn, last, last.plus_ms(52 * MIN), &s);
        assert_eq!(kinds(&again), vec![(AlertKind::SignalLost, Transition::Renotified)]);
        let back = evaluate(&mut alerts, &sn, Some((last, 6.0)), &[live(20, 6.0)], &s);
        assert_eq!(kinds(&back), vec![(AlertKind::SignalLost, Transition::Resolved)]);
        assert_eq!(back[0].alert_id, opened[0].alert_id);
    }

    #[test]
    fn acknowledged_episodes_stop_renotifying() {
        let s = AlertSettings { hold_minutes: 0, ..AlertSettings::default() };
        let mut alerts = Alerts::new();
        let sn: DeviceSn = "SN".into();
        evaluate(&mut alerts, &sn, None, &[live(0, 15.0)], &s);
        for st in alerts.values_mut() {
            if let Some(ep) = &mut st.open {
                ep.acknowledged_at = Some(at(1));
            }
        }
        let later: Vec<Observed> = (1..=30).map(|i| live(i, 15.0)).collect();
        assert!(evaluate(&mut alerts, &sn, Some((at(0), 15.0)), &later, &s).is_empty());
    }

    #[test]
    fn alert_ids_name_their_sensor_even_with_tildes() {
        let id = alert_id(&"A~B".into(), AlertKind::VeryHigh, Timestamp(42));
        assert_eq!(parse_alert_id(&id), Some(("A~B".into(), AlertKind::VeryHigh, Timestamp(42))));
        assert_eq!(parse_alert_id("nonsense"), None);
        assert_eq!(parse_alert_id("~low~1"), None);
    }
}
