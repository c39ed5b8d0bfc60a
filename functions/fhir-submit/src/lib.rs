//! The FHIR submitter: the CGM IG's *Data Submitter*, sending each sensor's readings and
//! summaries to the hospital's EHR (the *Data Receiver*) on a schedule.
//!
//! Each run takes the running sensors and those whose checkpoint is still open (a session
//! that ended since), and for each device and kind sends what is new since its checkpoint
//! ([`checkpoints`]): readings in bundles of at most `FHIR_SUBMIT_BATCH`, oldest first;
//! summaries over every whole period of `FHIR_SUMMARY_PERIOD_DAYS` local days that has
//! ended. A checkpoint moves past an entry only once the EHR answered for it: created (201),
//! matched (200, or 412 for several matches), or declined by its rules (another 4xx, which
//! the IG allows; counted and never resent). An entry the EHR did not get to (5xx, 429, no
//! answer) is sent again next time, the same entry with the same `ifNoneExist`, so nothing
//! is lost and nothing is stored twice by an EHR with conditional create.
//!
//! A reading that arrives late, measured before its device's checkpoint, shows in the
//! session's reading count of its day (which the readings stream's consumer keeps): that
//! day is sent again, and conditional create matches what the EHR has.
//!
//! An EHR without conditional create answers 400 to every entry with `ifNoneExist` (the
//! IG's rule): when a bundle got 400s and no entry was taken, the run sends it again
//! without, and without the sensor's `Device` (named by its identifier instead). Such an
//! EHR cannot tell a resent entry from a new one: a lost answer, entries taken after one it
//! did not take, or a run that dies before the checkpoint's write can store a reading twice.
//!
//! A device whose work fails (a stored value it cannot use, a storage error, an EHR that
//! refuses its bundle whole or answers what cannot be read) is left for the next run and
//! counted; the run goes on with the others. No stored value (a session, a checkpoint, a
//! reading, a rollup, a standing order, a queued submission) can make a run panic: date and
//! time arithmetic on them is checked, and a time FHIR cannot write (outside the years 0001
//! to 9999) is a failed device, not an overflow. A device whose bundle the EHR refuses
//! whole is *stuck*: the same bundle is refused every run until someone looks, so the run's
//! line counts it apart (`stuck`), and the template's alarm watches that count.
//!
//! # Where each job lives
//!
//! - this file: the public types ([`Submitter`], [`RunReport`], [`SubmitError`]) and the
//!   wiring ([`from_config`]: the EHR client, the fonts, the DynamoDB stores);
//! - [`run`]: the run loop over devices, and what each device's turn does first (its
//!   session's days, its patient, its plan from the configuration or the standing orders),
//!   and the writes of its checkpoints;
//! - [`queue`]: the one-time submissions (`POST /fhir-submissions`), sent first in a run;
//! - [`send`]: one bundle to the EHR (and again without `ifNoneExist` when it shows it has
//!   no conditional create), and the one tally of its answers ([`send::Tally`]) that every
//!   caller moves its checkpoint or counts by;
//! - [`readings`]: the readings checkpoint, late days, and a period's readings sent again;
//! - [`summaries`]: the summaries due per period and their PDFs;
//! - the checkpoints it keeps are `cgm_domain::store::submissions::checkpoints` (the
//!   trait and memory store) and `cgm_shared::store::submissions::dynamodb` (the table);
//! - `exactly_once` (tests only): the exactly-once rules (a partial answer, a lost answer,
//!   late days, a restart, a one-time submission) on memory stores and the stand-in EHR;
//! - [`smart`] gets the access tokens, [`ehr`] talks to the EHR, [`bundle`] builds the
//!   `cgm-data-submission-bundle`, [`orders`] reads standing orders as a plan; the
//!   resources come from `cgm-fhir-profiles`, as the FHIR read API serves them.

pub mod bundle;
pub mod ehr;
#[cfg(test)]
mod exactly_once;
pub mod orders;
mod queue;
mod readings;
mod run;
mod send;
pub mod smart;
mod summaries;

use cgm_agp::pdf::{self, fontdb};
use cgm_domain::ids::DeviceSn;
use cgm_domain::store::StoreError;
use cgm_fhir_profiles::{GlucoseUnit, Naming};
use cgm_shared::aws::{self, CallLimits};
use cgm_shared::config::{Config, ConfigError, FhirSubmitSettings};
use cgm_shared::store::reads::dynamodb::DynamoReadStore;
use cgm_shared::store::rollups::dynamodb::DynamoRollupStore;
use cgm_shared::store::sensors::dynamodb::DynamoSensorStore;
use cgm_shared::store::submissions::dynamodb::{DynamoCheckpointStore, DynamoSubmissionRequests};
use ehr::{Ehr, EhrError};
use orders::OrderError;
use serde::Serialize;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

pub use queue::MAX_REQUEST_ATTEMPTS;

/// The years a FHIR `dateTime` can hold (four digits, no year 0).
const FHIR_YEARS: std::ops::RangeInclusive<i32> = 1..=9999;

#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    #[error(transparent)]
    Ehr(#[from] EhrError),
    /// The EHR refused a bundle as a whole (`$submit-cgm-bundle` answered other than 2xx
    /// after the retries): nothing of it was taken.
    #[error("the whole bundle: {0}")]
    BundleRefused(#[source] EhrError),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A stored value the submitter cannot use (a corrupt item, a device clock far off): what
    /// it is, never its content.
    #[error("stored data it cannot use: {0}")]
    BadStoredData(&'static str),
    #[error("another run moved the checkpoint")]
    Conflict,
    #[error("the EHR did not answer for every entry; the rest goes next time")]
    Unfinished,
    #[error("the EHR has no patient with the sensor's patient identifier")]
    NoSuchPatient,
    #[error("the summary's days do not exist in the zone")]
    NoSuchDays,
    #[error(
        "the EHR refused every entry with ifNoneExist (400): it has no conditional create (or refused them for \
         another reason), so what it may have already is not sent again"
    )]
    NoConditionalCreate,
    #[error("the period holds more readings than one summary reads ({0})")]
    TooManyReadings(String),
    #[error("the summary's PDF could not be made: {0}")]
    Pdf(String),
    #[error("the device has no sensor session (it never pushed, or its session is not kept yet)")]
    NoSession,
    #[error("the device's pushes carry no patientId, and every resource names its patient")]
    NoPatientId,
    #[error(transparent)]
    Order(#[from] OrderError),
}

/// What one run did, for its log line and the invocation's answer.
#[derive(Debug, Default, Clone, Serialize, PartialEq, Eq)]
pub struct RunReport {
    pub devices: usize,
    pub bundles: usize,
    pub accepted: u64,
    pub declined: u64,
    /// Devices left for the next run: time ran out, the EHR did not answer for every entry
    /// or is down, or the device failed (`failed`).
    pub unfinished: usize,
    /// Devices whose work failed (a stored value it cannot use, a storage error, an EHR
    /// error of that device's): skipped, and the run went on with the others.
    pub failed: usize,
    /// Of `failed`, the devices whose bundle the EHR refused whole with a 4xx: the same
    /// bundle is refused every run, so they stay stuck until someone looks.
    pub stuck: usize,
    /// Devices whose session has no patient identifier: nothing can be sent for them.
    pub without_patient: usize,
    /// Devices whose patient has no active standing order (`FHIR_READ_STANDING_ORDERS`).
    pub without_order: usize,
    /// Readings that arrived late (measured before their device's checkpoint) and were sent.
    pub late: u64,
    /// One-time submissions tried (`POST /fhir-submissions`).
    pub requests: usize,
}

impl RunReport {
    /// The run's one line. The template's metric filters read `failed` and `stuck` from it
    /// (`FhirSubmitDevicesFailed`, `FhirSubmitDevicesStuck`) and their alarms watch them.
    fn log(&self) {
        macro_rules! line {
            ($level:ident) => {
                tracing::$level!(
                    devices = self.devices,
                    bundles = self.bundles,
                    accepted = self.accepted,
                    declined = self.declined,
                    late = self.late,
                    requests = self.requests,
                    unfinished = self.unfinished,
                    failed = self.failed,
                    stuck = self.stuck,
                    without_patient = self.without_patient,
                    without_order = self.without_order,
                    "submission run"
                )
            };
        }
        if self.failed > 0 {
            line!(warn);
        } else {
            line!(info);
        }
    }

    /// Counts a device whose work ended in `e`, and logs it (the device and why: never its
    /// patient).
    fn left(&mut self, sn: &DeviceSn, e: &SubmitError) {
        self.unfinished += 1;
        let left = Left::of(e);
        match left {
            Left::Later => {}
            Left::Failed => self.failed += 1,
            Left::Stuck => {
                self.failed += 1;
                self.stuck += 1;
            }
        }
        tracing::warn!(device_sn = %sn.as_str(), outcome = left.as_str(), error = %e, "submission left for the next run");
    }
}

/// Why a device was left for the next run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Left {
    /// What the next run can finish by itself: time ran out, the EHR did not answer for
    /// every entry, or it is down.
    Later,
    /// Something of this device's that will likely fail again: counted, for the alarm.
    Failed,
    /// The EHR refused the device's bundle whole with a 4xx: it will refuse it again.
    Stuck,
}

impl Left {
    fn of(e: &SubmitError) -> Left {
        match e {
            SubmitError::Unfinished => Left::Later,
            SubmitError::Ehr(e) if e.is_outage() => Left::Later,
            SubmitError::BundleRefused(EhrError::Refused { status: 400..=499, .. }) => Left::Stuck,
            _ => Left::Failed,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Left::Later => "unfinished",
            Left::Failed => "failed",
            Left::Stuck => "stuck",
        }
    }
}

/// The submitter, generic over the stores it reads and writes so that memory stores stand in
/// for DynamoDB in its unit tests: `S` the readings ([`ReadStore`](cgm_domain::store::reads::ReadStore)),
/// `U` the daily rollups ([`RollupStore`](cgm_domain::store::rollups::RollupStore)), `T` the
/// sensor sessions ([`SensorStore`](cgm_domain::store::sensors::SensorStore)), `C` its
/// checkpoints ([`CheckpointStore`](cgm_domain::store::submissions::checkpoints::CheckpointStore)) and `Q` the one-time
/// submissions ([`SubmissionRequests`](cgm_domain::store::submissions::SubmissionRequests)).
/// The EHR is reached over HTTP ([`Ehr`]); the tests give it a stand-in on loopback.
pub struct Submitter<
    S = DynamoReadStore,
    U = DynamoRollupStore,
    T = DynamoSensorStore,
    C = DynamoCheckpointStore,
    Q = DynamoSubmissionRequests,
> {
    store: S,
    rollups: U,
    sensors: T,
    checkpoints: C,
    ehr: Ehr,
    zone: cgm_domain::time::SourceZone,
    unit: GlucoseUnit,
    naming: Naming,
    patient_system: String,
    settings: FhirSubmitSettings,
    /// The fonts of the summary's PDF, when `cgm-summary-pdf` is sent.
    fonts: Option<Arc<fontdb::Database>>,
    /// Cleared when the EHR shows it has no conditional create.
    conditional: AtomicBool,
    /// The one-time submissions (`POST /fhir-submissions`), in the submissions table.
    requests: Option<Q>,
}

/// Builds the submitter from the configuration: the EHR's base, the client and its key
/// (from SSM when `FHIR_CLIENT_PRIVATE_KEY_PARAM` names it), the tables. A missing setting
/// stops the cold start and is named.
pub async fn from_config(cfg: &Config) -> Result<Submitter, ConfigError> {
    let s = &cfg.fhir_submit;
    let missing = |var: &'static str, why: &'static str| ConfigError::Missing { var, why };
    let base = s.ehr_base_url.clone().ok_or(missing("FHIR_EHR_BASE_URL", "the submitter sends to this EHR"))?;
    let client_id =
        s.client_id.clone().ok_or(missing("FHIR_CLIENT_ID", "the EHR registered the submitter under it"))?;
    let key_id = s.key_id.clone().ok_or(missing("FHIR_CLIENT_KEY_ID", "the client assertion names its key"))?;
    let patient_system = cfg.fhir.patient_identifier_system.clone().ok_or(missing(
        "FHIR_PATIENT_IDENTIFIER_SYSTEM",
        "every submitted resource names its patient by the hospital's identifier",
    ))?;
    let sdk = aws::sdk_config(cfg).await;
    let pem = aws::resolve_secret(&sdk, &s.private_key, "FHIR_CLIENT_PRIVATE_KEY_PARAM")
        .await?
        .ok_or(missing("FHIR_CLIENT_PRIVATE_KEY_PARAM", "the client assertion is signed with this key"))?;
    let client = smart::Client::new(client_id, key_id, s.signing_alg, &pem, s.scopes.clone())
        .map_err(|e| ConfigError::Invalid { var: "FHIR_CLIENT_PRIVATE_KEY_PARAM", reason: e.to_string() })?;
    let http = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| ConfigError::Invalid {
            var: "FHIR_EHR_BASE_URL",
            reason: format!("cannot build the HTTP client: {e}"),
        })?;
    let tokens = smart::Tokens::new(http.clone(), base.clone(), client);
    let ehr = Ehr::new(http, base, tokens, ehr::Retry::default());
    // A PDF whose text silently vanished would be worse than none: no fonts, no start.
    // Standing orders may ask for the PDF (the IG's example does), and so may a one-time
    // submission: the fonts are loaded whenever AGP_FONT_DIR names them (the stack's does).
    let fonts = if s.submit_summary_pdf || s.read_standing_orders || cfg.agp_font_dir.is_some() {
        let db = pdf::load_configured_fonts(cfg.agp_font_dir.as_deref())
            .map_err(|e| ConfigError::Invalid { var: "AGP_FONT_DIR", reason: e.to_string() })?;
        Some(Arc::new(db))
    } else {
        None
    };
    let dynamo = aws::dynamodb(&sdk, cfg.dynamodb_endpoint.as_deref(), CallLimits::EVENTS);
    let t = &cfg.tables;
    Ok(Submitter::new(
        DynamoReadStore::new(dynamo.clone(), t.readings.clone(), t.follow_tokens.clone()),
        DynamoRollupStore::new(dynamo.clone(), t.rollups.clone()),
        DynamoSensorStore::new(dynamo.clone(), t.sensors.clone()),
        DynamoCheckpointStore::new(dynamo.clone(), t.submissions.clone()),
        ehr,
        cfg,
        patient_system,
    )
    .with_fonts(fonts)
    .with_requests(Some(DynamoSubmissionRequests::new(dynamo, t.submissions.clone()))))
}

impl<S, U, T, C> Submitter<S, U, T, C> {
    /// A submitter without one-time submissions ([`Self::with_requests`] adds them).
    pub fn new(
        store: S,
        rollups: U,
        sensors: T,
        checkpoints: C,
        ehr: Ehr,
        cfg: &Config,
        patient_system: String,
    ) -> Self {
        Submitter {
            store,
            rollups,
            sensors,
            checkpoints,
            ehr,
            zone: cfg.source_timezone,
            unit: GlucoseUnit::of(&cfg.fhir),
            naming: Naming::of(&cfg.fhir),
            patient_system,
            settings: cfg.fhir_submit.clone(),
            fonts: None,
            conditional: AtomicBool::new(true),
            requests: None,
        }
    }
}

impl<S, U, T, C, Q> Submitter<S, U, T, C, Q> {
    /// With the fonts the summary's PDF is drawn in (`cgm-summary-pdf`; without, none is sent).
    pub fn with_fonts(mut self, fonts: Option<Arc<fontdb::Database>>) -> Self {
        self.fonts = fonts;
        self
    }

    /// With the one-time submissions to send first in each run, from this store.
    pub fn with_requests<R>(self, requests: Option<R>) -> Submitter<S, U, T, C, R> {
        let Submitter {
            store,
            rollups,
            sensors,
            checkpoints,
            ehr,
            zone,
            unit,
            naming,
            patient_system,
            settings,
            fonts,
            conditional,
            requests: _,
        } = self;
        Submitter {
            store,
            rollups,
            sensors,
            checkpoints,
            ehr,
            zone,
            unit,
            naming,
            patient_system,
            settings,
            fonts,
            conditional,
            requests,
        }
    }

    pub fn checkpoints(&self) -> &C {
        &self.checkpoints
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use send::whole_bundle;

    #[test]
    fn a_bundle_refused_whole_with_a_4xx_is_stuck_and_an_outage_is_only_later() {
        let refused = |status| whole_bundle(EhrError::Refused { status, issues: vec![] });
        assert_eq!(Left::of(&refused(400)), Left::Stuck);
        assert_eq!(Left::of(&refused(422)), Left::Stuck);
        assert!(send::too_large(&refused(413)));
        assert_eq!(Left::of(&whole_bundle(EhrError::GaveUp { attempts: 6, last: "503".into() })), Left::Later);
        assert_eq!(Left::of(&SubmitError::Unfinished), Left::Later);
        // The same refusal of a search (standing orders, the patient) is no bundle's.
        assert_eq!(Left::of(&SubmitError::Ehr(EhrError::Refused { status: 400, issues: vec![] })), Left::Failed);
        assert_eq!(Left::of(&SubmitError::BadStoredData("x")), Left::Failed);
        assert_eq!(Left::of(&SubmitError::Store(StoreError::unavailable_for_test())), Left::Failed);
    }

    #[test]
    fn a_run_report_counts_each_kind_of_device_left() {
        let mut r = RunReport::default();
        let sn = DeviceSn::from("SN1");
        r.left(&sn, &SubmitError::Unfinished);
        r.left(&sn, &SubmitError::BadStoredData("x"));
        r.left(&sn, &whole_bundle(EhrError::Refused { status: 400, issues: vec![] }));
        assert_eq!((r.unfinished, r.failed, r.stuck), (3, 2, 1));
    }
}
