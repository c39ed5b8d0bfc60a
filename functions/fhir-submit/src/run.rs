//! The run loop over devices: which devices a run takes (the running sensors and the open
//! checkpoints), what it learns of the EHR first (conditional create), and each device's
//! turn: its session's days, its patient, what is due for it (the configured plan or the
//! EHR's standing orders), then its readings ([`crate::readings`]) and summaries
//! ([`crate::summaries`]). A device's failure is counted and the run goes on; an EHR outage
//! stops the run's sending, leaving the rest for the next. Also here: how a device's
//! checkpoints are written (over the version read) and closed once its ended session is
//! all sent.

use crate::bundle::{self, patient_subject};
use crate::orders::{self, Plan};
use crate::{FHIR_YEARS, RunReport, SubmitError, Submitter};
use cgm_domain::ids::DeviceSn;
use cgm_domain::session::Session;
use cgm_domain::store::StoreError;
use cgm_domain::store::reads::{Position, ReadStore};
use cgm_domain::store::rollups::RollupStore;
use cgm_domain::store::sensors::SensorStore;
use cgm_domain::store::submissions::SubmissionRequests;
use cgm_domain::store::submissions::checkpoints::{Checkpoint, CheckpointStore, Kind, Saved};
use cgm_domain::time::Timestamp;
use cgm_shared::config::PatientReference;
use chrono::{Datelike, NaiveDate};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;
use std::time::Instant;

/// A device's patient, as a run names it.
pub(crate) struct Patient<'s> {
    /// The hospital's identifier (Sinocare's `patientId`).
    pub id: &'s str,
    /// The EHR's logical id, when found by search.
    pub ehr_id: Option<String>,
    pub subject: Value,
}

impl<S: ReadStore, U: RollupStore, T: SensorStore, C: CheckpointStore, Q: SubmissionRequests> Submitter<S, U, T, C, Q> {
    /// One scheduled run at `now`, until `until`. Only what the whole run needs (the lists of
    /// running sensors and open checkpoints) fails it; a device's failure is counted in the
    /// report and the run goes on with the others.
    pub async fn run(&self, now: Timestamp, until: Instant) -> Result<RunReport, StoreError> {
        let active: BTreeSet<DeviceSn> = self.sensors.active().await?.into_iter().map(|s| s.device_sn).collect();
        let open: BTreeSet<DeviceSn> = self.checkpoints.open().await?.into_iter().map(|c| c.device_sn).collect();
        // A running sensor gets its (empty) checkpoint before anything is sent, so it stays
        // in the open ones when its session ends before its readings reach the EHR.
        let mut failed_first = BTreeMap::new();
        for sn in active.difference(&open) {
            if let Err(e) = self.open_checkpoint(sn, now).await {
                failed_first.insert(sn.clone(), e);
            }
        }
        let mut devices = active;
        devices.extend(open);
        let mut report = RunReport { devices: devices.len(), ..RunReport::default() };
        self.learn_conditional_create(until).await;
        self.requests(until, &mut report).await;
        let mut outage = false;
        for sn in &devices {
            if outage || Instant::now() >= until {
                report.unfinished += 1;
                continue;
            }
            let done = match failed_first.remove(sn) {
                Some(e) => Err(e),
                None => self.device_sn(sn, now, until, &mut report).await,
            };
            if let Err(e) = done {
                if let SubmitError::Ehr(ehr) = &e {
                    outage = ehr.is_outage();
                }
                report.left(sn, &e);
            }
        }
        report.log();
        Ok(report)
    }
}

impl<S: ReadStore, U: RollupStore, T: SensorStore, C: CheckpointStore, Q> Submitter<S, U, T, C, Q> {
    /// The readings checkpoint of a running sensor, written empty when it has none.
    async fn open_checkpoint(&self, sn: &DeviceSn, now: Timestamp) -> Result<(), SubmitError> {
        let mut c = self.checkpoints.get(sn, Kind::Readings).await?;
        if c.version == 0 {
            c.updated_at = now;
            self.checkpoints.put(&c).await?;
        }
        Ok(())
    }

    /// The device's session, and what is due for it; nothing without a session.
    async fn device_sn(
        &self,
        sn: &DeviceSn,
        now: Timestamp,
        until: Instant,
        report: &mut RunReport,
    ) -> Result<(), SubmitError> {
        match self.sensors.session(sn).await? {
            Some(session) => self.device(&session, now, until, report).await,
            None => Ok(()),
        }
    }

    /// One device now, whatever the schedule (the benchmarks; one-time submissions).
    pub async fn run_device(&self, sn: &DeviceSn, now: Timestamp, until: Instant) -> Result<RunReport, SubmitError> {
        let mut report = RunReport { devices: 1, ..RunReport::default() };
        self.learn_conditional_create(until).await;
        match self.sensors.session(sn).await? {
            Some(session) => self.device(&session, now, until, &mut report).await?,
            None => report.devices = 0,
        }
        report.log();
        Ok(report)
    }

    async fn device(
        &self,
        session: &Session,
        now: Timestamp,
        until: Instant,
        report: &mut RunReport,
    ) -> Result<(), SubmitError> {
        // Before the EHR is asked anything: a session whose times cannot be sent fails here.
        self.session_days(session)?;
        let Some(Patient { id: patient_id, ehr_id, subject }) = self.patient(session, until).await? else {
            report.without_patient += 1;
            return Ok(());
        };
        let plan = if self.settings.read_standing_orders {
            self.standing_orders(patient_id, ehr_id.as_deref(), until).await?
        } else {
            Plan::configured(&self.settings, self.unit)
        };
        if plan.is_empty() {
            report.without_order += 1;
            tracing::info!(device_sn = %session.device_sn.as_str(), "the patient has no active standing order: nothing is sent");
            return Ok(());
        }
        if let Some(p) = plan.readings {
            self.readings(session, &subject, p, now, until, report).await?;
        }
        if let Some(p) = plan.summary {
            self.summaries(session, &subject, p, now, until, report).await?;
        }
        Ok(())
    }

    /// What the EHR's active `cgm-data-submission-standing-order`s for the patient ask for:
    /// searched by the patient's logical id when it is known, else by its identifier
    /// (chained, `patient.identifier`).
    async fn standing_orders(
        &self,
        patient_id: &str,
        ehr_id: Option<&str>,
        until: Instant,
    ) -> Result<Plan, SubmitError> {
        // The two parameters the IG's cgm-data-receiver declares for ServiceRequest.
        let patient = match ehr_id {
            Some(id) => format!("patient={}", bundle::search_value(&format!("Patient/{id}"))),
            None => bundle::token_search("patient.identifier", &self.patient_system, patient_id),
        };
        let code = bundle::token_search("code", orders::CGM_CODES, orders::STANDING_ORDER);
        let form = format!("{code}&_count=50&{patient}");
        let found = self.ehr.search("ServiceRequest", &form, until).await?;
        if found["link"].as_array().is_some_and(|l| l.iter().any(|l| l["relation"] == "next")) {
            tracing::warn!("more than 50 standing orders for one patient: only the first 50 are followed");
        }
        let found = orders::of_one_patient(found, ehr_id)?;
        let (plan, ignored) = Plan::from_orders(&found, self.unit)?;
        for p in ignored {
            tracing::warn!(profile = %p, "a standing order asks for a profile this submitter does not make; it is left out");
        }
        Ok(plan)
    }
}

impl<S, U, T, C, Q> Submitter<S, U, T, C, Q> {
    /// Each run starts from what the EHR's CapabilityStatement declares of conditional
    /// create; when it declares nothing, from "it has it" (the IG recommends it), corrected
    /// by the first bundle's answers ([`Self::send`]). So an EHR that gains (or loses) it is
    /// followed from the next run, not only after a cold start.
    pub(crate) async fn learn_conditional_create(&self, until: Instant) {
        let declared = self.ehr.declares_conditional_create(until).await;
        if declared == Some(false) {
            tracing::info!("the EHR declares no conditional create: entries go without ifNoneExist");
        }
        self.conditional.store(declared.unwrap_or(true), Ordering::Relaxed);
    }

    /// The session's patient as the entries name it (found by search when so configured);
    /// `None` when its pushes carry no `patientId`.
    pub(crate) async fn patient<'s>(
        &self,
        session: &'s Session,
        until: Instant,
    ) -> Result<Option<Patient<'s>>, SubmitError> {
        let Some(id) = session.patient_id.as_deref().filter(|p| !p.is_empty()) else { return Ok(None) };
        let ehr_id = match self.settings.patient_reference {
            PatientReference::Search => {
                let q = bundle::identifier_search(&self.patient_system, id);
                Some(self.ehr.find_patient(&q, until).await?.ok_or(SubmitError::NoSuchPatient)?)
            }
            _ => None,
        };
        let subject = patient_subject(self.settings.patient_reference, &self.patient_system, id, ehr_id.as_deref());
        Ok(Some(Patient { id, ehr_id, subject }))
    }

    /// The local day of `t` when a FHIR `dateTime` can hold it (years 1 to 9999 in the zone).
    pub(crate) fn fhir_day(&self, t: Timestamp) -> Option<NaiveDate> {
        self.zone.local_date(t).filter(|d| FHIR_YEARS.contains(&d.year()))
    }

    /// The local days of the session's first and last readings. Either outside what FHIR can
    /// write is a stored value gone wrong (a corrupt item, a device clock far off): nothing
    /// of the device can be placed by it, so the device fails, for someone to look at.
    pub(crate) fn session_days(&self, s: &Session) -> Result<(NaiveDate, NaiveDate), SubmitError> {
        let first = self
            .fhir_day(s.first.at)
            .ok_or(SubmitError::BadStoredData("the session's first reading is at no time of years 1 to 9999"))?;
        let last = self
            .fhir_day(s.last.at)
            .ok_or(SubmitError::BadStoredData("the session's last reading is at no time of years 1 to 9999"))?;
        Ok((first, last))
    }
}

impl<S, U, T, C: CheckpointStore, Q> Submitter<S, U, T, C, Q> {
    /// Writes `c` as it now stands, over the version it was read as: another run's write in
    /// between is a conflict (this run stops for the device; the next reads it again).
    pub(crate) async fn save(&self, c: &mut Checkpoint) -> Result<(), SubmitError> {
        let next =
            c.version.checked_add(1).ok_or(SubmitError::BadStoredData("the checkpoint's version is at its limit"))?;
        c.updated_at = Timestamp::now();
        if self.checkpoints.put(c).await? == Saved::Conflict {
            return Err(SubmitError::Conflict);
        }
        c.version = next;
        Ok(())
    }

    /// A checkpoint of an ended session that has everything is done: no longer looked at.
    pub(crate) async fn close_if_done(
        &self,
        mut c: Checkpoint,
        session: &Session,
        kind: Kind,
    ) -> Result<(), SubmitError> {
        let done = match (session.ended_at, kind) {
            (None, _) => false,
            (Some(_), Kind::Readings) => c
                .through
                .as_deref()
                .and_then(Position::from_cursor_text)
                .is_some_and(|p| p.measured_at >= session.last.at),
            (Some(_), Kind::Summary) => {
                let last_day = self.zone.local_date(session.last.at);
                c.through
                    .as_deref()
                    .and_then(|d| d.parse::<NaiveDate>().ok())
                    .zip(last_day)
                    .is_some_and(|(t, l)| t >= l)
            }
        };
        if done || c.version == 0 {
            c.done = done;
            self.save(&mut c).await?;
        }
        Ok(())
    }
}
