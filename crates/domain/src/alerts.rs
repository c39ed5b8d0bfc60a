//! Glucose alerts as episodes, from a sensor's readings in time order.
//!
//! Each kind ([`AlertKind`]) has at most one open episode per sensor. An episode opens when
//! its condition has held for [`AlertSettings::hold_minutes`] (urgent low: at once, from a
//! single reading), re-notifies every [`AlertSettings::renotify_minutes`] while it lasts
//! (unless acknowledged), and resolves with the first reading outside the condition.
//! Which readings count, and how the order they arrive in stops mattering, is
//! [`window`]'s: the episodes are a fold over a device's readings by measured time. Signal
//! lost is opened by a scheduled check ([`check`]), never by a reading, and resolved by the
//! next reading newer than the one it was reckoned from.
//!
//! Every transition is an [`AlertEvent`] with a stable id (the episode's id and the
//! transition), so a redelivered batch that recomputes the same transition yields the same
//! id and a consumer can drop the repeat. Pure: no storage, no clock.

pub mod window;

use crate::ids::DeviceSn;
use crate::time::Timestamp;
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
    pub const GLUCOSE: [AlertKind; 5] =
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
    /// A reading measured more than this after it was received is *clock-ahead*: stored and
    /// flagged, never the sensor's latest, never evaluated (`CLOCK_AHEAD_MINUTES`).
    pub clock_ahead_minutes: u64,
    /// How long after it was received a reading may still be processed by the stream and
    /// change a device's alert history (`ALERT_STREAM_LAG_MINUTES`): the alert window is
    /// `max_age_minutes` plus this.
    pub stream_lag_minutes: u64,
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
            clock_ahead_minutes: 5,
            stream_lag_minutes: 30,
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
    /// The transition is at a reading no newer than the newest one evaluated before it: the
    /// stream delivered a reading out of order, and the transition was found only now.
    pub found_late: bool,
    /// A resolution because a reading that arrived late showed the condition never held as
    /// long as the opening assumed.
    pub retracted: bool,
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
    Some((DeviceSn::from(sn), kind, Timestamp::from_ms(ms)))
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

/// Signal lost's resolution by a reading at `at`.
pub fn signal_back(device_sn: &DeviceSn, ep: &Episode, at: Timestamp) -> AlertEvent {
    event(device_sn, AlertKind::SignalLost, Transition::Resolved, ep, at, 0)
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
        found_late: false,
        retracted: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_700_000_000_000;

    fn kinds(events: &[AlertEvent]) -> Vec<(AlertKind, Transition)> {
        events.iter().map(|e| (e.kind, e.transition)).collect()
    }

    #[test]
    fn signal_lost_opens_once_and_renotifies_on_its_schedule() {
        let s = AlertSettings::default();
        let sn: DeviceSn = "SN".into();
        let mut alerts = Alerts::new();
        let last = Timestamp::from_ms(T0);
        assert!(check(&mut alerts, &sn, last, last.plus_ms(19 * MIN), &s).is_empty());
        let opened = check(&mut alerts, &sn, last, last.plus_ms(21 * MIN), &s);
        assert_eq!(kinds(&opened), vec![(AlertKind::SignalLost, Transition::Opened)]);
        assert_eq!(opened[0].opened_at, last.plus_ms(20 * MIN), "the instant it counted as lost");
        assert!(check(&mut alerts, &sn, last, last.plus_ms(22 * MIN), &s).is_empty(), "once");
        let again = check(&mut alerts, &sn, last, last.plus_ms(52 * MIN), &s);
        assert_eq!(kinds(&again), vec![(AlertKind::SignalLost, Transition::Renotified)]);
    }

    #[test]
    fn alert_ids_name_their_sensor_even_with_tildes() {
        let id = alert_id(&"A~B".into(), AlertKind::VeryHigh, Timestamp::from_ms(42));
        assert_eq!(parse_alert_id(&id), Some(("A~B".into(), AlertKind::VeryHigh, Timestamp::from_ms(42))));
        assert_eq!(parse_alert_id("nonsense"), None);
        assert_eq!(parse_alert_id("~low~1"), None);
    }
}
