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
//! [`smart`] gets the access tokens, [`ehr`] talks to the EHR, [`bundle`] builds the
//! `cgm-data-submission-bundle`; the resources come from `cgm-fhir-profiles`, as the FHIR
//! read API serves them.

pub mod bundle;
pub mod checkpoints;
pub mod ehr;
pub mod orders;
pub mod smart;

use bundle::{Entry, patient_subject, submission_bundle};
use cgm_agp::pdf::{self, fontdb};
use cgm_domain::ids::DeviceSn;
use cgm_domain::session::Session;
use cgm_domain::store::StoreError;
use cgm_domain::store::reads::paging::{ReadAllError, fill_page};
use cgm_domain::store::reads::{Position, ReadStore, ReadingQuery, StoredReading};
use cgm_domain::store::rollups::RollupStore;
use cgm_domain::store::sensors::SensorStore;
use cgm_domain::store::submissions::{RequestStatus, SubmissionRequest, SubmissionRequests};
use cgm_domain::time::{SourceZone, TimeRange, Timestamp};
use cgm_fhir_profiles::summary::summary_figures;
use cgm_fhir_profiles::{self as profiles, GlucoseUnit, Naming};
use cgm_shared::aws::{self, CallLimits};
use cgm_shared::config::{Config, ConfigError, FhirSubmitSettings, PatientReference};
use cgm_shared::store::reads::dynamodb::DynamoReadStore;
use cgm_shared::store::rollups::dynamodb::DynamoRollupStore;
use cgm_shared::store::sensors::dynamodb::DynamoSensorStore;
use cgm_shared::store::submissions::dynamodb::DynamoSubmissionRequests;
use checkpoints::dynamodb::DynamoCheckpointStore;
use checkpoints::{Checkpoint, CheckpointStore, Kind, Saved};
use chrono::{Datelike, Days, NaiveDate};
use ehr::{Ehr, EhrError};
use orders::{OrderError, Plan, ReadingsPlan, SummaryPlan};
use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// A bundle's readings stay well under what EHRs take in one request.
const BUNDLE_BUDGET_BYTES: usize = 3_000_000;
/// At most this many summaries per device in one run (a sensor that started long ago).
const MAX_SUMMARIES_PER_RUN: usize = 8;
/// Runs that try one one-time submission before it is written `failed`.
pub const MAX_REQUEST_ATTEMPTS: u32 = 5;
/// The longest one-time submission (`POST /fhir-submissions` takes no longer one).
const MAX_REQUEST_DAYS: i64 = 90;
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

pub struct Submitter<S = DynamoReadStore, U = DynamoRollupStore, T = DynamoSensorStore, C = DynamoCheckpointStore> {
    store: S,
    rollups: U,
    sensors: T,
    checkpoints: C,
    ehr: Ehr,
    zone: SourceZone,
    unit: GlucoseUnit,
    naming: Naming,
    patient_system: String,
    settings: FhirSubmitSettings,
    /// The fonts of the summary's PDF, when `cgm-summary-pdf` is sent.
    fonts: Option<Arc<fontdb::Database>>,
    /// Cleared when the EHR shows it has no conditional create.
    conditional: AtomicBool,
    /// The one-time submissions (`POST /fhir-submissions`), in the submissions table.
    requests: Option<DynamoSubmissionRequests>,
}

/// A device's patient, as a run names it.
struct Patient<'s> {
    /// The hospital's identifier (Sinocare's `patientId`).
    id: &'s str,
    /// The EHR's logical id, when found by search.
    ehr_id: Option<String>,
    subject: Value,
}

/// What [`Submitter::resend`] did: the stored readings it read, and the EHR's answers.
#[derive(Debug, Default, Clone, Copy)]
struct Resent {
    seen: u64,
    created: u64,
    accepted: u64,
    declined: u64,
}

/// What the EHR said to one bundle, entry by entry after the device's.
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

/// The EHR refused a whole bundle as too large (413): the same entries go in smaller ones.
fn too_large(e: &SubmitError) -> bool {
    matches!(e, SubmitError::BundleRefused(EhrError::Refused { status: 413, .. }))
}

/// `$submit-cgm-bundle`'s refusal of the bundle as a whole, told apart from the EHR's other
/// errors: it is about what was sent, so sending it again meets it again.
fn whole_bundle(e: EhrError) -> SubmitError {
    match e {
        e @ EhrError::Refused { .. } => SubmitError::BundleRefused(e),
        e => SubmitError::Ehr(e),
    }
}

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

/// Half the bundle size (at least one reading), logged.
fn smaller(batch: usize) -> usize {
    let half = (batch / 2).max(1);
    tracing::warn!(batch = half, "the EHR refused a bundle as too large (413): sending smaller ones");
    half
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
        let dir = cfg.agp_font_dir.as_deref().unwrap_or(DEFAULT_FONT_DIR);
        let db = pdf::load_fonts(std::path::Path::new(dir))
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

/// Where the fonts layer puts its fonts in Lambda.
const DEFAULT_FONT_DIR: &str = "/opt/fonts";

impl<S: ReadStore, U: RollupStore, T: SensorStore, C: CheckpointStore> Submitter<S, U, T, C> {
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

    /// With the fonts the summary's PDF is drawn in (`cgm-summary-pdf`; without, none is sent).
    pub fn with_fonts(mut self, fonts: Option<Arc<fontdb::Database>>) -> Self {
        self.fonts = fonts;
        self
    }

    /// With the one-time submissions to send first in each run.
    pub fn with_requests(mut self, requests: Option<DynamoSubmissionRequests>) -> Self {
        self.requests = requests;
        self
    }

    pub fn checkpoints(&self) -> &C {
        &self.checkpoints
    }

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

    /// Each run starts from what the EHR's CapabilityStatement declares of conditional
    /// create; when it declares nothing, from "it has it" (the IG recommends it), corrected
    /// by the first bundle's answers ([`Self::send`]). So an EHR that gains (or loses) it is
    /// followed from the next run, not only after a cold start.
    async fn learn_conditional_create(&self, until: Instant) {
        let declared = self.ehr.declares_conditional_create(until).await;
        if declared == Some(false) {
            tracing::info!("the EHR declares no conditional create: entries go without ifNoneExist");
        }
        self.conditional.store(declared.unwrap_or(true), Ordering::Relaxed);
    }

    /// The session's patient as the entries name it (found by search when so configured);
    /// `None` when its pushes carry no `patientId`.
    async fn patient<'s>(&self, session: &'s Session, until: Instant) -> Result<Option<Patient<'s>>, SubmitError> {
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

    /// The one-time submissions queued by `POST /fhir-submissions`, oldest first: each sends
    /// its period's readings and summary again (with `ifNoneExist` only, so the EHR matches
    /// what it has), whatever the checkpoints say, and is written `done` or `failed`. One the
    /// EHR did not answer for entirely stays queued for the next run, up to
    /// [`MAX_REQUEST_ATTEMPTS`]. A storage error here leaves the requests for the next run
    /// and never stops the devices' part of the run.
    async fn requests(&self, until: Instant, report: &mut RunReport) {
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
                        (RequestStatus::Done, sent.accepted, sent.declined, None);
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
            let verdicts = self
                .send_summary(&session, &patient.subject, r.first, r.last, r.profiles.summary_pdf, true, until, report)
                .await?;
            for v in verdicts.unwrap_or_default() {
                match v {
                    Verdict::Pending => return Err(SubmitError::Unfinished),
                    Verdict::Accepted => sent.accepted += 1,
                    Verdict::Declined => sent.declined += 1,
                }
            }
        }
        report.accepted += sent.accepted;
        report.declined += sent.declined;
        Ok(sent)
    }

    fn device_entry(&self, session: &Session, subject: &Value) -> Entry {
        Entry::of(profiles::device(&session.device_sn, Some(session), &self.naming, Some(subject)))
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

    /// Sends `entries` (the device's first) and answers each after the device's, retrying
    /// once without `ifNoneExist` when the EHR shows it has no conditional create (unless
    /// `only_conditional`: entries the EHR may have already must not be sent without it).
    async fn send(
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
    async fn advance(
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

    /// The readings after the checkpoint, oldest first, a bundle at a time. The checkpoint
    /// passes every stored reading, warm-up ones too (they are not sent), and counts them per
    /// local day, so its counts compare with the session's ([`Self::late_days`]).
    async fn readings(
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
                let back = Timestamp(now.ms().saturating_sub(back));
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
            let mut passed = page.items.len();
            for (k, i) in sendable.iter().enumerate() {
                // An entry without an answer was not taken.
                match statuses.get(k).map_or(Verdict::Pending, |s| verdict(*s)) {
                    Verdict::Accepted => {
                        c.accepted += 1;
                        report.accepted += 1;
                    }
                    Verdict::Declined => {
                        c.declined += 1;
                        report.declined += 1;
                    }
                    Verdict::Pending => {
                        passed = *i;
                        break;
                    }
                }
            }
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
                    report.late += r.created;
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
    async fn resend(
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
                for s in &statuses {
                    match verdict(*s) {
                        Verdict::Pending => return Err(SubmitError::Unfinished),
                        Verdict::Accepted => out.accepted += 1,
                        Verdict::Declined => out.declined += 1,
                    }
                }
                out.created += statuses.iter().filter(|s| **s == 201).count() as u64;
            }
            out.seen += seen;
            match page.next {
                Some(p) => start = Some(p),
                None => return Ok(out),
            }
        }
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

    /// Writes `c` as it now stands, over the version it was read as: another run's write in
    /// between is a conflict (this run stops for the device; the next reads it again).
    async fn save(&self, c: &mut Checkpoint) -> Result<(), SubmitError> {
        let next =
            c.version.checked_add(1).ok_or(SubmitError::BadStoredData("the checkpoint's version is at its limit"))?;
        c.updated_at = Timestamp::now();
        if self.checkpoints.put(c).await? == Saved::Conflict {
            return Err(SubmitError::Conflict);
        }
        c.version = next;
        Ok(())
    }

    /// The local day of `t` when a FHIR `dateTime` can hold it (years 1 to 9999 in the zone).
    fn fhir_day(&self, t: Timestamp) -> Option<NaiveDate> {
        self.zone.local_date(t).filter(|d| FHIR_YEARS.contains(&d.year()))
    }

    /// The local days of the session's first and last readings. Either outside what FHIR can
    /// write is a stored value gone wrong (a corrupt item, a device clock far off): nothing
    /// of the device can be placed by it, so the device fails, for someone to look at.
    fn session_days(&self, s: &Session) -> Result<(NaiveDate, NaiveDate), SubmitError> {
        let first = self
            .fhir_day(s.first.at)
            .ok_or(SubmitError::BadStoredData("the session's first reading is at no time of years 1 to 9999"))?;
        let last = self
            .fhir_day(s.last.at)
            .ok_or(SubmitError::BadStoredData("the session's last reading is at no time of years 1 to 9999"))?;
        Ok((first, last))
    }

    /// A checkpoint of an ended session that has everything is done: no longer looked at.
    async fn close_if_done(&self, mut c: Checkpoint, session: &Session, kind: Kind) -> Result<(), SubmitError> {
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

    /// The summary of the local days `first` to `last` (and its PDF when `pdf`), sent as one
    /// bundle: what the EHR said to each of its entries; `None` when there is nothing to
    /// summarise (fewer than two valid readings).
    #[allow(clippy::too_many_arguments)]
    async fn send_summary(
        &self,
        session: &Session,
        subject: &Value,
        first: NaiveDate,
        last: NaiveDate,
        pdf: bool,
        only_conditional: bool,
        until: Instant,
        report: &mut RunReport,
    ) -> Result<Option<Vec<Verdict>>, SubmitError> {
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
        let verdicts = self.send(entries, only_conditional, until, report).await?.into_iter().map(verdict).collect();
        Ok(Some(verdicts))
    }

    /// The summaries due: one every `plan.every_days` local days from the sensor's first
    /// day, each over the `plan.lookback_days` that end with its period, once the period's
    /// last day has passed.
    async fn summaries(
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
            let Some(verdicts) = sent else {
                tracing::info!(device_sn = %sn.as_str(), %first, last = %window_end, "fewer than two valid readings: no summary for the period");
                // Fewer than two valid readings: nothing to summarise, the period is passed.
                c.through = Some(place);
                self.save(&mut c).await?;
                continue;
            };
            // The panel and its members go together: the checkpoint moves when the EHR
            // answered for all seven.
            if verdicts.iter().any(|v| matches!(v, Verdict::Pending)) {
                return Err(SubmitError::Unfinished);
            }
            let places = vec![place; verdicts.len()];
            self.advance(&mut c, &verdicts, &places, report).await?;
        }
        self.close_if_done(c, session, Kind::Summary).await
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

    #[test]
    fn a_bundle_refused_whole_with_a_4xx_is_stuck_and_an_outage_is_only_later() {
        let refused = |status| whole_bundle(EhrError::Refused { status, issues: vec![] });
        assert_eq!(Left::of(&refused(400)), Left::Stuck);
        assert_eq!(Left::of(&refused(422)), Left::Stuck);
        assert!(too_large(&refused(413)));
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
