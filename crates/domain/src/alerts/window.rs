//! The order-independent evaluation of the glucose alerts: a device's alert history is a
//! fold over its readings *by measured time*, whatever order the stream delivers them in.
//!
//! A session keeps an [`AlertWindow`]: the fold's state at a base instant (`base_at`) and
//! the evaluable readings measured after it. A batch adds its readings to the window and the
//! whole window is folded again from the base, so a reading that arrives after a newer one
//! takes its place in time, as in-order arrival would have put it. The fold's episodes are
//! then reconciled with what was already announced ([`reconcile`]): an episode that was
//! announced keeps its id (a late reading that moves its start earlier corrects its
//! `opened_at`, not its id); one found only now is opened (and, if over already, resolved) and
//! marked as found late; one that a late reading shows never held (a hold broken in the
//! middle) is resolved then. Each episode opens once and resolves once.
//!
//! The base moves to `clock - window` (the window: `max_age_minutes + stream_lag_minutes`;
//! the clock: the newest arrival the device's readings show, never a wall clock, so the fold
//! stays a pure function of the readings). A reading measured at or before the base when it
//! is processed is outside the window: it is stored and counted but changes no alert (the
//! stream held it back longer than `stream_lag_minutes`).
//!
//! Which readings are evaluable: valid (`status` 0), received within `max_age_minutes` of
//! their measurement (a backlog pages nobody), and not clock-ahead (measured more than
//! `clock_ahead_minutes` after arrival). Pure: no storage, no clock.

use super::{
    AlertEvent, AlertKind, AlertSettings, AlertState, Alerts, Episode, Transition, alert_id, event, parse_alert_id,
};
use crate::ids::DeviceSn;
use crate::metrics::MG_DL_PER_MMOL;
use crate::time::Timestamp;
use crate::trend;
use std::collections::BTreeMap;

const MIN: i64 = 60_000;

/// A reading as the alert evaluation sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    pub at: Timestamp,
    pub serial_no: Option<u64>,
    pub mmol: f64,
    /// The device's thresholds pushed with it (mmol/L).
    pub low: Option<f64>,
    pub high: Option<f64>,
}

impl Sample {
    /// The order of the fold: measured time, then the sensor's serial number, then the value
    /// (two readings at one instant still fold in one order, whatever order they came in).
    fn order(&self) -> (Timestamp, Option<u64>, u64) {
        (self.at, self.serial_no, self.mmol.to_bits())
    }
}

/// An episode as the fold carries it.
#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    /// The id it was announced under, when it began before the window's base.
    pub id: Option<String>,
    pub opened_at: Timestamp,
    pub notified_at: Timestamp,
    pub notifications: u32,
    pub value_mmol: Option<f64>,
    pub threshold_mmol: Option<f64>,
}

impl Run {
    /// An announced episode's run: carried in under its id.
    fn told(ep: &Episode) -> Run {
        Run {
            id: Some(ep.id.clone()),
            opened_at: ep.opened_at,
            notified_at: ep.notified_at,
            notifications: ep.notifications,
            value_mmol: ep.value_mmol,
            threshold_mmol: ep.threshold_mmol,
        }
    }

    /// The run as an episode under `id`, not acknowledged.
    fn episode(&self, id: String) -> Episode {
        Episode {
            id,
            opened_at: self.opened_at,
            notified_at: self.notified_at,
            notifications: self.notifications,
            acknowledged_at: None,
            value_mmol: self.value_mmol,
            threshold_mmol: self.threshold_mmol,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct KindState {
    pub pending_since: Option<Timestamp>,
    pub open: Option<Run>,
}

/// The fold's state after some readings: each glucose kind's, and the last reading (for the
/// fast fall's rate).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FoldState {
    pub kinds: BTreeMap<AlertKind, KindState>,
    pub prev: Option<(Timestamp, f64)>,
}

/// What a session keeps to evaluate its alerts in any arrival order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AlertWindow {
    /// Readings measured at or before this are outside the window.
    pub base_at: Timestamp,
    /// The fold's state after every evaluable reading up to `base_at`.
    pub base: FoldState,
    /// The evaluable readings after `base_at`, in fold order.
    pub samples: Vec<Sample>,
    /// Episodes announced and resolved that the window may fold again (resolved after
    /// `base_at`): so they are not announced twice.
    pub closed: Vec<Closed>,
    /// The newest arrival the device's readings have shown (see the module's doc).
    pub clock: Timestamp,
}

impl AlertWindow {
    /// A window from what a session knew before it had one: its open episodes and pending
    /// holds become the base's (under their ids), at `base_at` (the session's latest
    /// reading; a new session's window starts at [`Timestamp::MIN`]: all its first readings
    /// count).
    pub fn from_alerts(alerts: &Alerts, base_at: Timestamp) -> AlertWindow {
        let mut base = FoldState::default();
        for (kind, st) in alerts.iter().filter(|(k, _)| **k != AlertKind::SignalLost) {
            base.kinds
                .insert(*kind, KindState { pending_since: st.pending_since, open: st.open.as_ref().map(Run::told) });
        }
        AlertWindow { base_at, base, samples: Vec::new(), closed: Vec::new(), clock: Timestamp::MIN }
    }

    /// The newest reading evaluated.
    pub fn frontier(&self) -> Option<Timestamp> {
        self.samples.last().map(|x| x.at).or(self.base.prev.map(|p| p.0))
    }
}

/// `max_age_minutes + stream_lag_minutes`, in ms.
pub fn window_ms(s: &AlertSettings) -> i64 {
    (s.max_age_minutes.saturating_add(s.stream_lag_minutes) as i64).saturating_mul(MIN)
}

/// What one evaluation did besides its events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Evaluated {
    /// Readings new to the window.
    pub added: usize,
    /// Evaluable readings measured at or before the window's base: changed nothing.
    pub outside_window: usize,
}

/// Adds `new` (evaluable readings, any order, repeats allowed) to the window, advances its
/// base to `clock - window`, folds it again and reconciles the result with what `alerts`
/// (the announced open episodes and pending holds, with their acknowledgements) says. The
/// events are the transitions not announced before.
pub fn evaluate(
    window: &mut AlertWindow,
    alerts: &mut Alerts,
    device_sn: &DeviceSn,
    new: &[Sample],
    clock: Timestamp,
    s: &AlertSettings,
) -> (Vec<AlertEvent>, Evaluated) {
    let mut report = Evaluated::default();
    let frontier_before = window.frontier();
    for x in new {
        if x.at <= window.base_at {
            report.outside_window += 1;
            continue;
        }
        if let Err(i) = window.samples.binary_search_by(|y| y.order().cmp(&x.order())) {
            window.samples.insert(i, *x);
            report.added += 1;
        }
    }
    window.clock = window.clock.max(clock);
    if report.added == 0 {
        return (Vec::new(), report);
    }
    let new_base_at = window.base_at.max(window.clock.plus_ms(-window_ms(s)));
    let folded = fold(&window.base, &window.samples, new_base_at, s);

    let mut events = Vec::new();
    let mut closed = Vec::new();
    let mut ids: Vec<(AlertKind, Timestamp, String)> = Vec::new();
    let no_trace = Trace::default();
    for kind in AlertKind::GLUCOSE {
        let trace = folded.traces.get(&kind).unwrap_or(&no_trace);
        let open_told = alerts.get(&kind).and_then(|st| st.open.clone());
        let closed_told: Vec<Closed> = window.closed.iter().filter(|c| c.kind == kind).cloned().collect();
        let out = reconcile(device_sn, kind, trace, open_told, closed_told, frontier_before);
        events.extend(out.events);
        let st =
            AlertState { pending_since: folded.last.kinds.get(&kind).and_then(|k| k.pending_since), open: out.open };
        if st == AlertState::default() {
            alerts.remove(&kind);
        } else {
            alerts.insert(kind, st);
        }
        closed.extend(out.closed);
        ids.extend(out.ids.into_iter().map(|(at, id)| (kind, at, id)));
    }
    // The base carries what is open at it under the ids it was announced with.
    let mut base = folded.at_base;
    for (kind, ks) in base.kinds.iter_mut() {
        if let Some(run) = ks.open.as_mut()
            && let Some((_, _, id)) = ids.iter().find(|(k, at, _)| k == kind && *at == run.opened_at)
        {
            run.id = Some(id.clone());
        }
    }
    window.base = base;
    window.base_at = new_base_at;
    window.samples.retain(|x| x.at > new_base_at);
    window.closed = closed.into_iter().filter(|c| c.resolved_at > new_base_at).collect();
    events.sort_by_key(|e| (e.at, transition_rank(e.transition)));
    (events, report)
}

/// An episode announced and resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct Closed {
    pub kind: AlertKind,
    pub episode: Episode,
    pub resolved_at: Timestamp,
    /// Readings that arrived later show it never held (its resolution said so, or, when it
    /// was already resolved, only this record can).
    pub retracted: bool,
}

fn transition_rank(t: Transition) -> u8 {
    match t {
        Transition::Resolved => 0,
        Transition::Opened => 1,
        Transition::Renotified => 2,
    }
}

/// One kind's history in a fold.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Trace {
    pub runs: Vec<TracedRun>,
    /// Each reading's instant and whether the kind's condition held at it.
    pub holds: Vec<(Timestamp, bool)>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TracedRun {
    pub run: Run,
    /// The re-notifications' instants, in order (the opening is the first notification).
    pub renotified: Vec<Timestamp>,
    pub resolved_at: Option<Timestamp>,
}

pub struct Folded {
    pub last: FoldState,
    pub at_base: FoldState,
    pub traces: BTreeMap<AlertKind, Trace>,
}

/// Folds `samples` (in fold order) from `start`; `at_base` is the state after the readings
/// up to `base_at`.
pub fn fold(start: &FoldState, samples: &[Sample], base_at: Timestamp, s: &AlertSettings) -> Folded {
    let mut st = start.clone();
    let mut traces: BTreeMap<AlertKind, Trace> = BTreeMap::new();
    for (kind, ks) in &st.kinds {
        if let Some(run) = &ks.open {
            traces.entry(*kind).or_default().runs.push(TracedRun {
                run: run.clone(),
                renotified: Vec::new(),
                resolved_at: None,
            });
        }
    }
    let mut at_base = None;
    for x in samples {
        if at_base.is_none() && x.at > base_at {
            at_base = Some(st.clone());
        }
        let rate = trend::rate((x.at, x.mmol), st.prev);
        st.prev = Some((x.at, x.mmol));
        for kind in AlertKind::GLUCOSE {
            let threshold = match kind {
                AlertKind::UrgentLow => s.urgent_low_mmol,
                AlertKind::Low => x.low.unwrap_or(s.low_mmol),
                AlertKind::High => x.high.unwrap_or(s.high_mmol),
                AlertKind::VeryHigh => s.very_high_mmol,
                AlertKind::FastFall | AlertKind::SignalLost => s.fast_fall_mg_dl_per_min / MG_DL_PER_MMOL,
            };
            let holds = match kind {
                AlertKind::UrgentLow | AlertKind::Low => x.mmol < threshold,
                AlertKind::High | AlertKind::VeryHigh => x.mmol > threshold,
                AlertKind::FastFall | AlertKind::SignalLost => {
                    rate.is_some_and(|mg_dl_per_min| -mg_dl_per_min >= s.fast_fall_mg_dl_per_min)
                }
            };
            let hold_ms = if kind == AlertKind::UrgentLow { 0 } else { s.hold_minutes as i64 * MIN };
            let trace = traces.entry(kind).or_default();
            trace.holds.push((x.at, holds));
            let ks = st.kinds.entry(kind).or_default();
            step(ks, trace, x, holds, hold_ms, (kind != AlertKind::FastFall).then_some(threshold), s);
        }
    }
    let at_base = at_base.unwrap_or_else(|| st.clone());
    let clean = |mut f: FoldState| {
        f.kinds.retain(|_, k| k != &KindState::default());
        f
    };
    Folded { last: clean(st), at_base: clean(at_base), traces }
}

fn step(
    ks: &mut KindState,
    trace: &mut Trace,
    x: &Sample,
    holds: bool,
    hold_ms: i64,
    threshold: Option<f64>,
    s: &AlertSettings,
) {
    if !holds {
        ks.pending_since = None;
        if ks.open.take().is_some()
            && let Some(last) = trace.runs.last_mut()
        {
            last.resolved_at = Some(x.at);
        }
        return;
    }
    match &mut ks.open {
        Some(run) => {
            if x.at.since(run.notified_at) >= s.renotify_minutes as i64 * MIN {
                run.notified_at = x.at;
                run.notifications = run.notifications.saturating_add(1);
                if let Some(last) = trace.runs.last_mut() {
                    last.renotified.push(x.at);
                }
            }
        }
        None => {
            let since = *ks.pending_since.get_or_insert(x.at);
            if x.at.since(since) >= hold_ms {
                let run = Run {
                    id: None,
                    opened_at: x.at,
                    notified_at: x.at,
                    notifications: 1,
                    value_mmol: Some(x.mmol),
                    threshold_mmol: threshold,
                };
                trace.runs.push(TracedRun { run: run.clone(), renotified: Vec::new(), resolved_at: None });
                ks.pending_since = None;
                ks.open = Some(run);
            }
        }
    }
}

/// What reconciling one kind gives.
pub struct Reconciled {
    pub events: Vec<AlertEvent>,
    /// The episode still open, as announced (id, acknowledgement) with the fold's figures.
    pub open: Option<Episode>,
    /// The episodes announced and resolved, with when.
    pub closed: Vec<Closed>,
    /// Each run's id, by the instant the fold opened it.
    pub ids: Vec<(Timestamp, String)>,
}

/// Matches the fold's runs of one kind with the episodes already announced (`open_told`,
/// `closed_told`) and gives the transitions not yet announced. `frontier` is the newest
/// reading evaluated before: a transition at an earlier reading was found late.
pub fn reconcile(
    device_sn: &DeviceSn,
    kind: AlertKind,
    trace: &Trace,
    open_told: Option<Episode>,
    closed_told: Vec<Closed>,
    frontier: Option<Timestamp>,
) -> Reconciled {
    // At or before the newest reading evaluated before: decided only now.
    let found_late = |at: Timestamp| frontier.is_some_and(|f| at <= f);
    let told_at = |ep: &Episode| parse_alert_id(&ep.id).map_or(ep.opened_at, |(_, _, at)| at);
    // Announced episodes in the order they were told, with when each was resolved.
    // A retracted episode is over for good: its id is never matched to a run again.
    let burnt: Vec<String> = closed_told.iter().map(|c| c.episode.id.clone()).collect();
    let (retracted, closed_told): (Vec<Closed>, Vec<Closed>) = closed_told.into_iter().partition(|c| c.retracted);
    let mut told: Vec<(Episode, Option<Timestamp>)> = closed_told
        .into_iter()
        .map(|c| (c.episode, Some(c.resolved_at)))
        .chain(open_told.map(|ep| (ep, None)))
        .collect();
    told.sort_by_key(|(ep, _)| told_at(ep));
    let mut run_of_told: Vec<Option<usize>> = vec![None; told.len()];
    let mut told_of_run: Vec<Option<usize>> = vec![None; trace.runs.len()];
    // First by id (a run carried in from the base), then by time.
    for (ti, (ep, _)) in told.iter().enumerate() {
        if let Some(ri) = trace.runs.iter().position(|r| r.run.id.as_deref() == Some(ep.id.as_str())) {
            told_of_run[ri] = Some(ti);
            run_of_told[ti] = Some(ri);
        }
    }
    for (ti, (ep, resolved)) in told.iter().enumerate() {
        if run_of_told[ti].is_some() {
            continue;
        }
        let t = told_at(ep);
        let containing =
            || trace.runs.iter().position(|r| r.run.opened_at <= t && r.resolved_at.is_none_or(|end| t < end));
        // Told before the hold was complete as the fold now sees it (a late reading moved
        // the hold's start), with the condition holding ever since: the same episode.
        let connected = || {
            trace.runs.iter().position(|r| {
                r.run.opened_at > t && !trace.holds.iter().any(|(at, h)| *at >= t && *at < r.run.opened_at && !h)
            })
        };
        let free = |ri: &usize| told_of_run[*ri].is_none() && trace.runs[*ri].run.id.is_none();
        // Only an episode still open can lead on to a later run: one resolved is over.
        let lead = || if resolved.is_none() { connected() } else { None };
        if let Some(ri) = containing().filter(free).or_else(|| lead().filter(free)) {
            told_of_run[ri] = Some(ti);
            run_of_told[ti] = Some(ri);
        }
    }

    let mut events = Vec::new();
    let mut open = None;
    let mut closed = Vec::new();
    let mut ids = Vec::new();
    for (ri, tr) in trace.runs.iter().enumerate() {
        let (mut ep, sent, resolved_told) = match (told_of_run[ri], tr.run.id.clone()) {
            (Some(ti), _) => {
                let (ep, resolved) = told[ti].clone();
                let sent = ep.notifications;
                (ep, sent, resolved)
            }
            // Carried in from the base under an id that is neither open nor recently
            // resolved: resolved long ago as told; nothing more is said of it.
            (None, Some(id)) => (tr.run.episode(id), tr.run.notifications, Some(Timestamp::MIN)),
            (None, None) => {
                // Never the id of an episode told before (one retracted at this instant).
                let mut id_at = tr.run.opened_at;
                while burnt.contains(&alert_id(device_sn, kind, id_at)) {
                    id_at = id_at.plus_ms(1);
                }
                let ep = tr.run.episode(alert_id(device_sn, kind, id_at));
                let mut e = event(device_sn, kind, Transition::Opened, &ep, tr.run.opened_at, 0);
                e.found_late = found_late(tr.run.opened_at);
                events.push(e);
                (ep, 1, None)
            }
        };
        ids.push((tr.run.opened_at, ep.id.clone()));
        ep.opened_at = tr.run.opened_at;
        ep.value_mmol = ep.value_mmol.or(tr.run.value_mmol);
        ep.threshold_mmol = ep.threshold_mmol.or(tr.run.threshold_mmol);
        // The fold's notifications count the opening as the first; numbers already told
        // are not told again, and an acknowledged episode is not re-notified.
        let first_number = tr.run.notifications.saturating_sub(tr.renotified.len() as u32);
        for (k, at) in tr.renotified.iter().enumerate() {
            let n = first_number.saturating_add(k as u32 + 1);
            if n <= sent || resolved_told.is_some() {
                continue;
            }
            ep.notifications = n;
            ep.notified_at = *at;
            if ep.acknowledged_at.is_none() {
                let mut e = event(device_sn, kind, Transition::Renotified, &ep, *at, n);
                e.found_late = found_late(*at);
                events.push(e);
            }
        }
        ep.notifications = ep.notifications.max(sent);
        match (tr.resolved_at, resolved_told) {
            (Some(end), None) => {
                let mut e = event(device_sn, kind, Transition::Resolved, &ep, end, 0);
                e.found_late = found_late(end);
                events.push(e);
                closed.push(Closed { kind, episode: ep, resolved_at: end, retracted: false });
            }
            // Announced resolved: it stays so. (The fold may see it open still when a late
            // reading changed the fast fall's rate at the reading that resolved it.)
            (_, Some(told_end)) => closed.push(Closed {
                kind,
                episode: ep,
                resolved_at: tr.resolved_at.unwrap_or(told_end).max(told_end),
                retracted: false,
            }),
            (None, None) => open = Some(ep),
        }
    }
    // Announced episodes no run of the fold contains nor leads to: a reading that arrived
    // late showed the condition did not hold as long as the opening assumed. Resolved now,
    // at that reading (the fold opens a new episode if the hold completes later).
    for (ti, (ep, resolved)) in told.into_iter().enumerate() {
        if run_of_told[ti].is_some() {
            continue;
        }
        if let Some(end) = resolved {
            closed.push(Closed { kind, episode: ep, resolved_at: end, retracted: true });
            continue;
        }
        let t = told_at(&ep);
        let breaking = trace.holds.iter().rev().find(|(at, h)| *at < t && !h);
        let after = trace.holds.iter().find(|(at, h)| *at >= t && !h);
        let end = breaking.or(after).map_or(t, |(at, _)| *at);
        let mut e = event(device_sn, kind, Transition::Resolved, &ep, end, 0);
        e.found_late = found_late(end);
        e.retracted = true;
        events.push(e);
        closed.push(Closed { kind, episode: ep, resolved_at: end.max(t), retracted: true });
    }
    closed.extend(retracted);
    Reconciled { events, open, closed, ids }
}
