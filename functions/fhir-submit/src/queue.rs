//! The one-time submissions queued by `POST /fhir-submissions`
//! ([`cgm_domain::store::submissions`]), sent first in each run with half its time at most:
//! each claimed (its attempt counted) before anything is sent, its period's readings and
//! summary sent again with `ifNoneExist` only whatever the checkpoints say, and written
//! `done` or `failed`, or left queued for the next run up to [`MAX_REQUEST_ATTEMPTS`].

use crate::readings::Resent;
use crate::{FHIR_YEARS, RunReport, SubmitError, Submitter};
use cgm_domain::store::reads::ReadStore;
use cgm_domain::store::rollups::RollupStore;
use cgm_domain::store::sensors::SensorStore;
use cgm_domain::store::submissions::checkpoints::CheckpointStore;
use cgm_domain::store::submissions::{RequestStatus, SubmissionRequest, SubmissionRequests};
use cgm_domain::time::Timestamp;
use chrono::Datelike;
use std::time::Instant;

/// Runs that try one one-time submission before it is written `failed`.
pub const MAX_REQUEST_ATTEMPTS: u32 = 5;
/// The longest one-time submission (`POST /fhir-submissions` takes no longer one).
const MAX_REQUEST_DAYS: i64 = 90;

impl<S: ReadStore, U: RollupStore, T: SensorStore, C: CheckpointStore, Q: SubmissionRequests> Submitter<S, U, T, C, Q> {
    /// The one-time submissions queued by `POST /fhir-submissions`, oldest first: each sends
    /// its period's readings and summary again (with `ifNoneExist` only, so the EHR matches
    /// what it has), whatever the checkpoints say, and is written `done` or `failed`. One the
    /// EHR did not answer for entirely stays queued for the next run, up to
    /// [`MAX_REQUEST_ATTEMPTS`]. A storage error here leaves the requests for the next run
    /// and never stops the devices' part of the run.
    pub(crate) async fn requests(&self, until: Instant, report: &mut RunReport) {
        let Some(store) = &self.requests else { return };
        // Half the run's time at most: the schedule's devices get the rest.
        let until = Instant::now() + until.saturating_duration_since(Instant::now()) / 2;
        let queued = match store.queued().await {
            Ok(q) => q,
            Err(e) => {
                tracing::warn!(error = %e, "the one-time submissions could not be read; they wait for the next run");
                return;
            }
        };
        for mut r in queued {
            if Instant::now() >= until {
                break;
            }
            // The store writes version + 1, twice below: a stored version that near its
            // limit cannot be written (it would overflow), so the request is not sent.
            if r.version.checked_add(2).is_none() {
                tracing::warn!(request = %r.id, "a one-time submission's stored version is at its limit: it is not sent");
                continue;
            }
            // Claimed (its attempt counted) before anything is sent: another run that read
            // it queued cannot take it too, and a run that dies still counts the attempt.
            r.attempts = r.attempts.saturating_add(1);
            r.updated_at = Timestamp::now();
            match store.put(&r).await {
                Ok(true) => {}
                Ok(false) => continue,
                Err(e) => {
                    tracing::warn!(request = %r.id, error = %e, "a one-time submission could not be claimed; it waits for the next run");
                    continue;
                }
            }
            r.version += 1;
            match self.fulfil(&r, until, report).await {
                Ok(sent) => {
                    (r.status, r.accepted, r.declined, r.reason) =
                        (RequestStatus::Done, sent.tally.accepted, sent.tally.declined, None);
                }
                Err(
                    e @ (SubmitError::Unfinished | SubmitError::Ehr(_) | SubmitError::Conflict | SubmitError::Store(_)),
                ) if r.attempts < MAX_REQUEST_ATTEMPTS => {
                    r.reason = Some(format!("left for the next run: {e}"));
                }
                Err(e) => (r.status, r.reason) = (RequestStatus::Failed, Some(e.to_string())),
            }
            r.updated_at = Timestamp::now();
            report.requests += 1;
            tracing::info!(request = %r.id, status = r.status.as_str(), attempts = r.attempts, "one-time submission");
            match store.put(&r).await {
                Ok(true) => {}
                Ok(false) => tracing::warn!(request = %r.id, "another run wrote the one-time submission first"),
                Err(e) => tracing::warn!(
                    request = %r.id,
                    error = %e,
                    "a one-time submission's outcome could not be written; it is sent again by the next run"
                ),
            }
        }
    }

    async fn fulfil(
        &self,
        r: &SubmissionRequest,
        until: Instant,
        report: &mut RunReport,
    ) -> Result<Resent, SubmitError> {
        // The FHIR function takes no other period; a stored one that is not such a period
        // would have the summary read the whole calendar day by day.
        let days = r.last.signed_duration_since(r.first).num_days();
        if !(0..MAX_REQUEST_DAYS).contains(&days) || ![r.first, r.last].iter().all(|d| FHIR_YEARS.contains(&d.year())) {
            return Err(SubmitError::BadStoredData("the period is not one of 1 to 90 local days of years 1 to 9999"));
        }
        let session = self.sensors.session(&r.device_sn).await?.ok_or(SubmitError::NoSession)?;
        let patient = self.patient(&session, until).await?.ok_or(SubmitError::NoPatientId)?;
        let mut sent = Resent::default();
        if r.profiles.readings {
            let range = self.zone.local_days(r.first, r.last).ok_or(SubmitError::NoSuchDays)?;
            sent = self.resend(&session, &patient.subject, self.unit, range, until, report).await?;
        }
        if r.profiles.summary {
            let summary = self
                .send_summary(&session, &patient.subject, r.first, r.last, r.profiles.summary_pdf, true, until, report)
                .await?;
            if let Some(t) = summary {
                sent.tally.add(t.whole()?);
            }
        }
        report.accepted += sent.tally.accepted;
        report.declined += sent.tally.declined;
        Ok(sent)
    }
}
