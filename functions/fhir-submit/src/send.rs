//! Sending one bundle: the entries (the sensor's `Device` first) as a
//! `cgm-data-submission-bundle` to `$submit-cgm-bundle`, sent again without `ifNoneExist`
//! (and without the `Device`) when the EHR shows it has no conditional create, unless the
//! entries must keep it; and what the EHR's answer says of each entry ([`Verdict`]).

use crate::bundle::{self, Entry, submission_bundle};
use crate::checkpoints::{Checkpoint, CheckpointStore};
use crate::ehr::EhrError;
use crate::{RunReport, SubmitError, Submitter};
use cgm_domain::session::Session;
use cgm_domain::store::reads::ReadStore;
use cgm_domain::store::rollups::RollupStore;
use cgm_domain::store::sensors::SensorStore;
use cgm_fhir_profiles as profiles;
use serde_json::Value;
use std::sync::atomic::Ordering;
use std::time::Instant;

/// What the EHR said to one bundle, entry by entry after the device's.
pub(crate) enum Verdict {
    Accepted,
    Declined,
    Pending,
}

/// An entry's status: taken (or matched), declined by the EHR's rules, or not taken yet.
/// 401, 403 (a token or scope the EHR may yet grant), 408, 409 (a conflict that passes) and
/// 429 are not a decision about the entry: it is sent again.
pub(crate) fn verdict(status: u16) -> Verdict {
    match status {
        200..=299 | 412 => Verdict::Accepted,
        401 | 403 | 408 | 409 | 429 => Verdict::Pending,
        400..=499 => Verdict::Declined,
        _ => Verdict::Pending,
    }
}

/// The EHR refused a whole bundle as too large (413): the same entries go in smaller ones.
pub(crate) fn too_large(e: &SubmitError) -> bool {
    matches!(e, SubmitError::BundleRefused(EhrError::Refused { status: 413, .. }))
}

/// `$submit-cgm-bundle`'s refusal of the bundle as a whole, told apart from the EHR's other
/// errors: it is about what was sent, so sending it again meets it again.
pub(crate) fn whole_bundle(e: EhrError) -> SubmitError {
    match e {
        e @ EhrError::Refused { .. } => SubmitError::BundleRefused(e),
        e => SubmitError::Ehr(e),
    }
}

/// Half the bundle size (at least one reading), logged.
pub(crate) fn smaller(batch: usize) -> usize {
    let half = (batch / 2).max(1);
    tracing::warn!(batch = half, "the EHR refused a bundle as too large (413): sending smaller ones");
    half
}

impl<S: ReadStore, U: RollupStore, T: SensorStore, C: CheckpointStore> Submitter<S, U, T, C> {
    pub(crate) fn device_entry(&self, session: &Session, subject: &Value) -> Entry {
        Entry::of(profiles::device(&session.device_sn, Some(session), &self.naming, Some(subject)))
    }

    /// Sends `entries` (the device's first) and answers each after the device's, retrying
    /// once without `ifNoneExist` when the EHR shows it has no conditional create (unless
    /// `only_conditional`: entries the EHR may have already must not be sent without it).
    pub(crate) async fn send(
        &self,
        mut entries: Vec<Entry>,
        only_conditional: bool,
        until: Instant,
        report: &mut RunReport,
    ) -> Result<Vec<u16>, SubmitError> {
        loop {
            let conditional = self.conditional.load(Ordering::Relaxed);
            if !conditional && only_conditional {
                return Err(SubmitError::NoConditionalCreate);
            }
            if Instant::now() >= until {
                return Err(SubmitError::Unfinished);
            }
            let timestamp = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
            if !conditional {
                // Without conditional create the sensor's Device would be stored once per
                // bundle: the entries name it by its identifier instead.
                let mut rest = bundle::without_devices(entries.clone());
                let body = submission_bundle(&mut rest, false, &timestamp);
                let statuses = self.ehr.submit(&body, rest.len(), until).await.map_err(whole_bundle)?;
                report.bundles += 1;
                return Ok(statuses);
            }
            let body = submission_bundle(&mut entries, conditional, &timestamp);
            let statuses = self.ehr.submit(&body, entries.len(), until).await.map_err(whole_bundle)?;
            report.bundles += 1;
            // An EHR with conditional create takes (or matches) some entry; one without
            // answers 400 to each with ifNoneExist, and maybe other 4xx to invalid ones.
            let conditional_refused = conditional && {
                let with_condition = || entries.iter().zip(&statuses).filter(|(e, _)| e.if_none_exist.is_some());
                with_condition().any(|(_, s)| *s == 400)
                    && !with_condition().any(|(_, s)| matches!(verdict(*s), Verdict::Accepted))
            };
            if conditional_refused {
                // A bundle that must keep its ifNoneExist (a resend, a one-time submission)
                // may have been refused for another reason (a patient the EHR does not
                // know): it does not decide for the rest of the run.
                if only_conditional {
                    return Err(SubmitError::NoConditionalCreate);
                }
                self.conditional.store(false, Ordering::Relaxed);
                tracing::warn!(
                    "the EHR answered 400 to every entry with ifNoneExist: it has no conditional create; sending without it"
                );
                continue;
            }
            return Ok(statuses.into_iter().skip(1).collect());
        }
    }

    /// Moves `c` past the entries answered for, in order; `true` when all were.
    pub(crate) async fn advance(
        &self,
        c: &mut Checkpoint,
        verdicts: &[Verdict],
        places: &[String],
        report: &mut RunReport,
    ) -> Result<bool, SubmitError> {
        let mut moved = false;
        for (v, place) in verdicts.iter().zip(places) {
            match v {
                Verdict::Accepted => c.accepted += 1,
                Verdict::Declined => c.declined += 1,
                Verdict::Pending => break,
            }
            if matches!(v, Verdict::Accepted) {
                report.accepted += 1;
            } else {
                report.declined += 1;
            }
            c.through = Some(place.clone());
            moved = true;
        }
        let all = verdicts.iter().all(|v| !matches!(v, Verdict::Pending));
        if moved {
            self.save(c).await?;
        }
        Ok(all)
    }
}
