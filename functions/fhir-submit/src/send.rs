//! Sending one bundle: the entries (the sensor's `Device` first) as a
//! `cgm-data-submission-bundle` to `$submit-cgm-bundle`, sent again without `ifNoneExist`
//! (and without the `Device`) when the EHR shows it has no conditional create, unless the
//! entries must keep it; and what the EHR's answer says of the entries: one [`Tally`], which
//! every caller moves its checkpoint or counts by.

use crate::bundle::{self, Entry, submission_bundle};
use crate::ehr::EhrError;
use crate::{RunReport, SubmitError, Submitter};
use cgm_domain::session::Session;
use cgm_domain::store::reads::ReadStore;
use cgm_domain::store::rollups::RollupStore;
use cgm_domain::store::sensors::SensorStore;
use cgm_domain::store::submissions::checkpoints::{Checkpoint, CheckpointStore};
use cgm_fhir_profiles as profiles;
use serde_json::Value;
use std::sync::atomic::Ordering;
use std::time::Instant;

/// What the EHR said to one entry.
enum Verdict {
    Accepted,
    Declined,
    Pending,
}

/// An entry's status: taken (or matched), declined by the EHR's rules, or not taken yet.
/// 401, 403 (a token or scope the EHR may yet grant), 408, 409 (a conflict that passes) and
/// 429 are not a decision about the entry: it is sent again.
fn verdict(status: u16) -> Verdict {
    match status {
        200..=299 | 412 => Verdict::Accepted,
        401 | 403 | 408 | 409 | 429 => Verdict::Pending,
        400..=499 => Verdict::Declined,
        _ => Verdict::Pending,
    }
}

/// What the EHR said to a bundle's entries (after the device's), counted in the order they
/// were sent up to the first it did not answer for: whatever follows that one is not taken,
/// so a checkpoint moves past the first `answered` entries and no further.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Tally {
    /// The entries, from the first, the EHR answered for: accepted or declined.
    pub answered: usize,
    /// Taken: created, or matched to what it had (conditional create's 200 or 412).
    pub accepted: u64,
    /// Declined by the EHR's rules (another 4xx): counted, never resent.
    pub declined: u64,
    /// Of `accepted`, those it created (201) rather than matched.
    pub created: u64,
    /// Some entry was not answered for (a 5xx, 429, 401, … or no status at all): it and
    /// those after it are sent again.
    pub pending: bool,
}

impl Tally {
    /// The tally of `statuses`, the EHR's answers to `sent` entries in order; an entry
    /// without an answer was not taken.
    pub(crate) fn of(statuses: &[u16], sent: usize) -> Tally {
        let mut t = Tally::default();
        for k in 0..sent {
            let status = statuses.get(k).copied();
            match status.map_or(Verdict::Pending, verdict) {
                Verdict::Accepted => {
                    t.accepted += 1;
                    t.created += u64::from(status == Some(201));
                }
                Verdict::Declined => t.declined += 1,
                Verdict::Pending => {
                    t.pending = true;
                    break;
                }
            }
            t.answered += 1;
        }
        t
    }

    /// The tally when the EHR answered for every entry; [`SubmitError::Unfinished`] when
    /// not (what goes together, a summary or a resent day, is sent again whole).
    pub(crate) fn whole(self) -> Result<Tally, SubmitError> {
        if self.pending { Err(SubmitError::Unfinished) } else { Ok(self) }
    }

    /// Adds another bundle's tally (of a whole answer) to this one.
    pub(crate) fn add(&mut self, other: Tally) {
        self.answered += other.answered;
        self.accepted += other.accepted;
        self.declined += other.declined;
        self.created += other.created;
        self.pending |= other.pending;
    }

    /// Counts the entries answered for in the checkpoint they move and in the run's report.
    pub(crate) fn credit(&self, c: &mut Checkpoint, report: &mut RunReport) {
        c.accepted += self.accepted;
        c.declined += self.declined;
        report.accepted += self.accepted;
        report.declined += self.declined;
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

impl<S: ReadStore, U: RollupStore, T: SensorStore, C: CheckpointStore, Q> Submitter<S, U, T, C, Q> {
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use cgm_domain::ids::DeviceSn;
    use cgm_domain::store::submissions::checkpoints::Kind;

    #[test]
    fn a_tally_counts_in_order_up_to_the_first_entry_not_answered_for() {
        // Created, matched, matched several times, declined by a rule, then one it did not
        // get to: what follows that one is not counted, even if it was created.
        let t = Tally::of(&[201, 200, 412, 422, 503, 201], 6);
        assert_eq!(t, Tally { answered: 4, accepted: 3, declined: 1, created: 1, pending: true });
        assert!(matches!(t.whole(), Err(SubmitError::Unfinished)));
        // Not a decision about the entry: a token, a scope, a timeout, a conflict, a limit.
        for status in [401, 403, 408, 409, 429, 500, 503, 100, 302] {
            assert_eq!(
                Tally::of(&[201, status], 2),
                Tally { answered: 1, accepted: 1, created: 1, pending: true, ..Tally::default() },
                "{status}"
            );
        }
        // Any other 4xx is the EHR's rule: declined, and passed.
        assert_eq!(Tally::of(&[400, 404, 422], 3), Tally { answered: 3, declined: 3, ..Tally::default() });
        // An entry without an answer was not taken.
        assert_eq!(Tally::of(&[200], 3), Tally { answered: 1, accepted: 1, pending: true, ..Tally::default() });
        assert_eq!(Tally::of(&[], 0), Tally::default());
        assert!(Tally::of(&[200, 201], 2).whole().is_ok());
    }

    #[test]
    fn a_tally_credits_the_checkpoint_and_the_report_alike() {
        let mut c = Checkpoint::new(DeviceSn::from("SN1"), Kind::Readings);
        let mut report = RunReport::default();
        let mut t = Tally::of(&[201, 422], 2);
        t.add(Tally::of(&[200], 1));
        assert_eq!(t, Tally { answered: 3, accepted: 2, declined: 1, created: 1, pending: false });
        t.credit(&mut c, &mut report);
        assert_eq!((c.accepted, c.declined, report.accepted, report.declined), (2, 1, 2, 1));
    }
}
