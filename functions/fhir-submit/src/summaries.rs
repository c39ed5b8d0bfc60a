//! The summaries: one every `every_days` local days from the sensor's first day, each over
//! the `lookback_days` that end with its period, once the period's last day has passed
//! ([`next_summary`]); the panel and its members (and the ambulatory glucose profile as a
//! PDF report, when asked for) go in one bundle, and the summary checkpoint moves only when
//! the EHR answered for all of them.

use crate::bundle::Entry;
use crate::orders::SummaryPlan;
use crate::send::Tally;
use crate::{RunReport, SubmitError, Submitter};
use cgm_agp::pdf::{self, fontdb};
use cgm_domain::ids::DeviceSn;
use cgm_domain::session::Session;
use cgm_domain::store::reads::ReadStore;
use cgm_domain::store::reads::paging::ReadAllError;
use cgm_domain::store::rollups::RollupStore;
use cgm_domain::store::sensors::SensorStore;
use cgm_domain::store::submissions::checkpoints::{CheckpointStore, Kind};
use cgm_domain::time::Timestamp;
use cgm_fhir_profiles::summary::summary_figures;
use cgm_fhir_profiles::{self as profiles};
use chrono::{Days, NaiveDate};
use serde_json::Value;
use std::sync::Arc;
use std::time::Instant;

/// At most this many summaries per device in one run (a sensor that started long ago).
const MAX_SUMMARIES_PER_RUN: usize = 8;

/// `day` moved by `days` (back when negative); `None` off chrono's calendar, where `+` on a
/// date would panic.
fn shift(day: NaiveDate, days: i64) -> Option<NaiveDate> {
    let n = Days::new(days.unsigned_abs());
    if days >= 0 { day.checked_add_days(n) } else { day.checked_sub_days(n) }
}

/// A summary due: the last day of its period (where the checkpoint moves to) and the local
/// days its lookback covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct DueSummary {
    period_last: NaiveDate,
    first: NaiveDate,
    last: NaiveDate,
}

/// The summary after the one that covered `through` (none yet: the sensor's first period,
/// from `first_day`), when its period has ended before `today` and starts no later than the
/// sensor's `last_day`; `None` when none is due. Every step is checked: a checkpoint's day
/// at the calendar's end is an error, not an overflow.
fn next_summary(
    through: Option<NaiveDate>,
    first_day: NaiveDate,
    last_day: NaiveDate,
    today: NaiveDate,
    plan: SummaryPlan,
) -> Result<Option<DueSummary>, SubmitError> {
    let every = plan.every_days.max(1);
    let off_calendar = SubmitError::BadStoredData("a summary period would end after the calendar's last day");
    let period_last = match through {
        Some(t) => shift(t, every),
        None => shift(first_day, every - 1),
    }
    .ok_or(off_calendar)?;
    // Only whole periods that have ended, and none after the sensor's last reading.
    if period_last >= today {
        return Ok(None);
    }
    let period_first = shift(period_last, 1 - every).unwrap_or(NaiveDate::MIN);
    if period_first > last_day {
        return Ok(None);
    }
    // The lookback ends with the period, or with the sensor's last day when it ended within
    // the period (a lookback shorter than the period would miss it otherwise).
    let last = period_last.min(last_day);
    let first = shift(last, 1 - plan.lookback_days.max(1))
        .ok_or(SubmitError::BadStoredData("a summary would start before the calendar's first day"))?;
    Ok(Some(DueSummary { period_last, first, last }))
}

impl<S: ReadStore, U: RollupStore, T: SensorStore, C: CheckpointStore, Q> Submitter<S, U, T, C, Q> {
    /// The summaries due: one every `plan.every_days` local days from the sensor's first
    /// day, each over the `plan.lookback_days` that end with its period, once the period's
    /// last day has passed.
    pub(crate) async fn summaries(
        &self,
        session: &Session,
        subject: &Value,
        plan: SummaryPlan,
        now: Timestamp,
        until: Instant,
        report: &mut RunReport,
    ) -> Result<(), SubmitError> {
        let sn = &session.device_sn;
        let today = self.zone.local_date(now).ok_or(SubmitError::NoSuchDays)?;
        let (first_day, last_day) = self.session_days(session)?;
        let mut c = self.checkpoints.get(sn, Kind::Summary).await?;
        for _ in 0..MAX_SUMMARIES_PER_RUN {
            if Instant::now() >= until {
                return Err(SubmitError::Unfinished);
            }
            let through = c.through.as_deref().and_then(|d| d.parse::<NaiveDate>().ok());
            let Some(due) = next_summary(through, first_day, last_day, today, plan)? else { break };
            let (first, window_end) = (due.first, due.last);
            let place = due.period_last.format("%Y-%m-%d").to_string();
            let sent = self.send_summary(session, subject, first, window_end, plan.pdf, false, until, report).await?;
            let Some(tally) = sent else {
                tracing::info!(device_sn = %sn.as_str(), %first, last = %window_end, "fewer than two valid readings: no summary for the period");
                // Fewer than two valid readings: nothing to summarise, the period is passed.
                c.through = Some(place);
                self.save(&mut c).await?;
                continue;
            };
            // The panel and its members go together: the checkpoint moves when the EHR
            // answered for all seven.
            let tally = tally.whole()?;
            tally.credit(&mut c, report);
            if tally.answered > 0 {
                c.through = Some(place);
                self.save(&mut c).await?;
            }
        }
        self.close_if_done(c, session, Kind::Summary).await
    }

    /// The summary of the local days `first` to `last` (and its PDF when `pdf`), sent as one
    /// bundle: what the EHR said to its entries; `None` when there is nothing to
    /// summarise (fewer than two valid readings).
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn send_summary(
        &self,
        session: &Session,
        subject: &Value,
        first: NaiveDate,
        last: NaiveDate,
        pdf: bool,
        only_conditional: bool,
        until: Instant,
        report: &mut RunReport,
    ) -> Result<Option<Tally>, SubmitError> {
        let sn = &session.device_sn;
        let figures =
            summary_figures(&self.store, &self.rollups, &self.zone, sn, first, last).await.map_err(|e| match e {
                profiles::summary::SummaryError::NoSuchDays => SubmitError::NoSuchDays,
                profiles::summary::SummaryError::Read(ReadAllError::Store(e)) => SubmitError::Store(e),
                profiles::summary::SummaryError::Read(other) => SubmitError::TooManyReadings(other.to_string()),
            })?;
        let Some(f) = figures else { return Ok(None) };
        let id = profiles::summary_id(sn, &f, self.unit);
        let device_ref = profiles::device_reference(sn);
        let observations = profiles::summary_observations(&f, self.unit, &self.naming, &id, subject, &device_ref);
        let mut entries = vec![self.device_entry(session, subject)];
        entries.extend(observations.into_iter().map(Entry::of));
        if let Some(fonts) = self.fonts.as_ref().filter(|_| pdf) {
            let pdf = self.agp_pdf(sn, first, last, fonts).await?;
            let issued = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
            let report = profiles::summary_pdf_report(&f, &self.naming, &id, subject, &pdf, &issued);
            entries.push(Entry::of(report));
        } else if pdf {
            tracing::warn!("the summary's PDF is asked for, but no fonts are loaded (AGP_FONT_DIR): it is not sent");
        }
        let statuses = self.send(entries, only_conditional, until, report).await?;
        Ok(Some(Tally::of(&statuses, statuses.len())))
    }

    /// The ambulatory glucose profile of `first` to `last` as one A4 PDF page, base64: the
    /// same page `agp.pdf` serves, without the patient's name.
    async fn agp_pdf(
        &self,
        sn: &DeviceSn,
        first: NaiveDate,
        last: NaiveDate,
        fonts: &Arc<fontdb::Database>,
    ) -> Result<String, SubmitError> {
        use base64::Engine as _;
        let range = self.zone.local_days(first, last).ok_or(SubmitError::NoSuchDays)?;
        let (_, bytes) = pdf::agp_pdf(&self.store, &self.rollups, &self.zone, sn, range, None, fonts).await.map_err(
            |e| match e {
                pdf::AgpPdfError::Read(ReadAllError::Store(e)) => SubmitError::Store(e),
                other => SubmitError::Pdf(other.to_string()),
            },
        )?;
        Ok(base64::engine::general_purpose::STANDARD.encode(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    const FORTNIGHT: SummaryPlan = SummaryPlan { every_days: 14, lookback_days: 14, pdf: false };

    #[test]
    fn summaries_follow_their_periods_from_the_sensors_first_day() {
        let (first, last, today) = (day("2024-05-01"), day("2024-06-30"), day("2024-07-01"));
        let due = next_summary(None, first, last, today, FORTNIGHT).unwrap().unwrap();
        assert_eq!(due, DueSummary { period_last: day("2024-05-14"), first, last: day("2024-05-14") });
        let next = next_summary(Some(due.period_last), first, last, today, FORTNIGHT).unwrap().unwrap();
        assert_eq!((next.first, next.last), (day("2024-05-15"), day("2024-05-28")));
        // A period still going, or one that starts after the sensor's last day: none due.
        assert_eq!(next_summary(Some(day("2024-06-20")), first, last, today, FORTNIGHT).unwrap(), None);
        assert_eq!(next_summary(Some(day("2024-06-30")), first, last, day("2024-08-30"), FORTNIGHT).unwrap(), None);
        // A sensor that ended within the period: the lookback ends with its last day.
        let short = next_summary(None, first, day("2024-05-10"), today, FORTNIGHT).unwrap().unwrap();
        assert_eq!(
            (short.period_last, short.first, short.last),
            (day("2024-05-14"), day("2024-04-27"), day("2024-05-10"))
        );
    }

    #[test]
    fn days_at_the_calendars_ends_are_errors_not_overflows() {
        let today = day("2026-01-01");
        // A stored checkpoint at the calendar's last day (chrono's `+` would panic here).
        for through in [NaiveDate::MAX, shift(NaiveDate::MAX, -3).unwrap()] {
            let e = next_summary(Some(through), day("2024-05-01"), day("2024-05-20"), today, FORTNIGHT).unwrap_err();
            assert!(matches!(e, SubmitError::BadStoredData(_)), "{e}");
        }
        // A sensor "first seen" at the calendar's end, a day far in the future, a lookback
        // reaching before the calendar's first day.
        let e = next_summary(None, NaiveDate::MAX, NaiveDate::MAX, today, FORTNIGHT).unwrap_err();
        assert!(matches!(e, SubmitError::BadStoredData(_)), "{e}");
        assert_eq!(next_summary(None, day("+262142-01-01"), NaiveDate::MAX, today, FORTNIGHT).unwrap(), None);
        let long = SummaryPlan { every_days: 1, lookback_days: 90, pdf: false };
        let e = next_summary(None, NaiveDate::MIN, NaiveDate::MIN, NaiveDate::MAX, long).unwrap_err();
        assert!(matches!(e, SubmitError::BadStoredData(_)), "{e}");
        // Every period length and place the plans allow, at both ends: an answer, never a panic.
        for every in [1, 2, 14, 90, 36_525, i64::MAX] {
            let plan = SummaryPlan { every_days: every, lookback_days: every.min(90), pdf: false };
            for d in [NaiveDate::MIN, NaiveDate::MAX, day("2024-05-01")] {
                let _ = next_summary(Some(d), d, d, NaiveDate::MAX, plan);
                let _ = next_summary(None, d, d, NaiveDate::MAX, plan);
            }
        }
    }

    #[test]
    fn shift_moves_either_way_and_stops_at_the_calendars_ends() {
        assert_eq!(shift(day("2024-02-28"), 2), Some(day("2024-03-01")));
        assert_eq!(shift(day("2024-03-01"), -2), Some(day("2024-02-28")));
        assert_eq!(shift(NaiveDate::MAX, 1), None);
        assert_eq!(shift(NaiveDate::MIN, -1), None);
        assert_eq!(shift(NaiveDate::MIN, i64::MAX), None);
        assert_eq!(shift(NaiveDate::MAX, i64::MIN), None);
    }
}
