//! The readings: what is new since the device's readings checkpoint, oldest first, a bundle
//! at a time; the days whose readings arrived late (measured before the checkpoint), sent
//! again; and a period's readings sent again with `ifNoneExist` ([`Submitter::resend`], for
//! late days and one-time submissions).
//!
//! The checkpoint passes every stored reading up to the first entry the EHR did not answer
//! for (warm-up readings too, which are not sent), and counts them per local day, so its
//! counts compare with the session's: a day whose session count has grown holds readings
//! that came late.

use crate::bundle::Entry;
use crate::orders::ReadingsPlan;
use crate::send::{Tally, smaller, too_large};
use crate::{RunReport, SubmitError, Submitter};
use cgm_domain::session::Session;
use cgm_domain::store::reads::paging::fill_page;
use cgm_domain::store::reads::{Position, ReadStore, ReadingQuery, StoredReading};
use cgm_domain::store::rollups::RollupStore;
use cgm_domain::store::sensors::SensorStore;
use cgm_domain::store::submissions::checkpoints::{Checkpoint, CheckpointStore, Kind};
use cgm_domain::time::{TimeRange, Timestamp};
use cgm_fhir_profiles::{self as profiles, GlucoseUnit};
use serde_json::Value;
use std::time::Instant;

/// A bundle's readings stay well under what EHRs take in one request.
const BUNDLE_BUDGET_BYTES: usize = 3_000_000;

/// What [`Submitter::resend`] did: the stored readings it read, and the EHR's answers.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Resent {
    pub seen: u64,
    pub tally: Tally,
}

impl<S: ReadStore, U: RollupStore, T: SensorStore, C: CheckpointStore, Q> Submitter<S, U, T, C, Q> {
    /// The readings after the checkpoint, oldest first, a bundle at a time. The checkpoint
    /// passes every stored reading, warm-up ones too (they are not sent), and counts them per
    /// local day, so its counts compare with the session's ([`Self::late_days`]).
    pub(crate) async fn readings(
        &self,
        session: &Session,
        subject: &Value,
        plan: ReadingsPlan,
        now: Timestamp,
        until: Instant,
        report: &mut RunReport,
    ) -> Result<(), SubmitError> {
        let sn = &session.device_sn;
        let device_ref = profiles::device_reference(sn);
        let mut c = self.checkpoints.get(sn, Kind::Readings).await?;
        // Not yet due: the last submission that reached the newest reading was less than
        // the order's period ago (one cut short goes on at the next run). One stored as
        // after now is no such submission: it would hold the readings back for ever.
        if plan.every_ms > 0
            && c.completed_at.ms() > 0
            && c.completed_at <= now
            && now.since(c.completed_at) < plan.every_ms
        {
            return Ok(());
        }
        let end = now.max(session.last.at);
        // The first submission goes back no further than the order's lookback, from the
        // start of that local day; the days before count as passed, so they are not taken
        // for days whose readings came late.
        let start = match (plan.lookback_ms, &c.through) {
            (Some(back), None) => {
                let back = Timestamp::from_ms(now.ms().saturating_sub(back));
                let day = self.zone.local_date(back);
                let from = day.and_then(|d| self.zone.local_day(d)).map_or(back, |d| d.start());
                if let Some(day) = day {
                    for (d, n) in session.days.range(..day) {
                        c.days.insert(*d, *n);
                    }
                }
                session.first.at.max(from)
            }
            _ => session.first.at,
        };
        let Some(range) = TimeRange::new(start.min(end), end) else { return Ok(()) };
        let q = ReadingQuery { device_sn: sn, range, valid_only: false, newest_first: false };
        let mut batch = self.settings.batch;
        loop {
            if Instant::now() >= until {
                return Err(SubmitError::Unfinished);
            }
            let start = c.through.as_deref().and_then(Position::from_cursor_text);
            let page = fill_page(&self.store, &q, start, batch, BUNDLE_BUDGET_BYTES, until, |r| {
                let (o, size) = self.observation(r, plan.unit, subject, &device_ref);
                ((r.position(), self.zone.local_date(r.measured_at), o), size)
            })
            .await?;
            if page.items.is_empty() {
                break;
            }
            let sendable: Vec<usize> = (0..page.items.len()).filter(|i| page.items[*i].2.is_some()).collect();
            let statuses = if sendable.is_empty() {
                Vec::new()
            } else {
                let mut entries = vec![self.device_entry(session, subject)];
                entries.extend(sendable.iter().filter_map(|i| page.items[*i].2.clone()).map(Entry::of));
                match self.send(entries, false, until, report).await {
                    Err(e) if too_large(&e) && batch > 1 => {
                        batch = smaller(batch);
                        continue;
                    }
                    other => other?,
                }
            };
            // The checkpoint passes every reading up to the first entry the EHR did not get to.
            let tally = Tally::of(&statuses, sendable.len());
            tally.credit(&mut c, report);
            let passed = if tally.pending { sendable[tally.answered] } else { page.items.len() };
            for (_, day, _) in &page.items[..passed] {
                if let Some(d) = day {
                    *c.days.entry(*d).or_default() += 1;
                }
            }
            if passed > 0 {
                c.through = Some(page.items[passed - 1].0.to_cursor_text());
                self.save(&mut c).await?;
            }
            if passed < page.items.len() {
                return Err(SubmitError::Unfinished);
            }
            if page.next.is_none() {
                break;
            }
        }
        if plan.every_ms > 0 {
            c.completed_at = now;
            self.save(&mut c).await?;
        }
        self.late_days(session, subject, plan, &mut c, until, report).await?;
        self.close_if_done(c, session, Kind::Readings).await
    }

    /// Readings that arrived late: a day up to the checkpoint whose reading count in the
    /// session (read before the readings were sent; the stream consumer keeps it from the
    /// day's rollup) is above what the checkpoint passed holds readings it never passed,
    /// measured before it. Such a day is sent again: the EHR's conditional create matches
    /// what it has (200) and creates the late ones (201). An EHR without conditional create
    /// is not sent them (that would store the day twice), and the run says so.
    async fn late_days(
        &self,
        session: &Session,
        subject: &Value,
        plan: ReadingsPlan,
        c: &mut Checkpoint,
        until: Instant,
        report: &mut RunReport,
    ) -> Result<(), SubmitError> {
        let Some(through) = c.through.as_deref().and_then(Position::from_cursor_text) else { return Ok(()) };
        let Some(through_day) = self.zone.local_date(through.measured_at) else { return Ok(()) };
        let sn = &session.device_sn;
        let mut changed = false;
        for (day, &count) in session.days.range(..=through_day) {
            let passed = c.days.get(day).copied().unwrap_or(0);
            if count <= passed {
                continue;
            }
            if Instant::now() >= until {
                return Err(SubmitError::Unfinished);
            }
            let range = self
                .zone
                .local_day(*day)
                .and_then(|d| TimeRange::new(d.start(), d.end().minus_ms(1).min(through.measured_at)));
            let Some(range) = range else { continue };
            let seen = match self.resend(session, subject, plan.unit, range, until, report).await {
                Ok(r) => {
                    report.late += r.tally.created;
                    r.seen
                }
                Err(SubmitError::NoConditionalCreate) => {
                    tracing::warn!(
                        device_sn = %sn.as_str(),
                        day = %day,
                        late = count - passed,
                        "readings arrived late for a day already sent; the EHR has no conditional create, \
                         so they are not sent"
                    );
                    count
                }
                Err(e) => return Err(e),
            };
            c.days.insert(*day, seen.max(passed));
            changed = true;
        }
        if changed {
            self.save(c).await?;
        }
        Ok(())
    }

    /// Sends the valid readings of `range` again, a bundle at a time, each entry with its
    /// `ifNoneExist` (never without: the EHR may have them): it matches what it has and
    /// creates what it lacks. Any entry it did not answer for leaves the whole for next time.
    pub(crate) async fn resend(
        &self,
        session: &Session,
        subject: &Value,
        unit: GlucoseUnit,
        range: TimeRange,
        until: Instant,
        report: &mut RunReport,
    ) -> Result<Resent, SubmitError> {
        let device_ref = profiles::device_reference(&session.device_sn);
        let q = ReadingQuery { device_sn: &session.device_sn, range, valid_only: false, newest_first: false };
        let mut start = None;
        let mut out = Resent::default();
        let mut batch = self.settings.batch;
        loop {
            if Instant::now() >= until {
                return Err(SubmitError::Unfinished);
            }
            let page = fill_page(&self.store, &q, start.clone(), batch, BUNDLE_BUDGET_BYTES, until, |r| {
                self.observation(r, unit, subject, &device_ref)
            })
            .await?;
            let seen = page.items.len() as u64;
            let mut entries = vec![self.device_entry(session, subject)];
            entries.extend(page.items.into_iter().flatten().map(Entry::of));
            if entries.len() > 1 {
                let statuses = match self.send(entries, true, until, report).await {
                    Err(e) if too_large(&e) && batch > 1 => {
                        batch = smaller(batch);
                        continue;
                    }
                    other => other?,
                };
                out.tally.add(Tally::of(&statuses, statuses.len()).whole()?);
            }
            out.seen += seen;
            match page.next {
                Some(p) => start = Some(p),
                None => return Ok(out),
            }
        }
    }

    /// A stored reading as the Observation sent for it, with its size in the bundle; `None`
    /// for a warm-up reading (the IG has no status for it), one without a value, or one
    /// measured at a time a FHIR `dateTime` cannot hold.
    fn observation(
        &self,
        r: &StoredReading,
        unit: GlucoseUnit,
        subject: &Value,
        device_ref: &Value,
    ) -> (Option<Value>, usize) {
        let o = (r.valid && self.fhir_day(r.measured_at).is_some())
            .then(|| profiles::reading_observation(r, unit, &self.naming, &self.zone, subject, device_ref))
            .flatten();
        let size = o.as_ref().map_or(0, |o| o.to_string().len());
        (o, size)
    }
}
