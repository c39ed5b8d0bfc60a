//! One-time FHIR submissions: what `POST /fhir-submissions` asks the FHIR submitter to send
//! (a device's readings, summary and its PDF over a period of local days), and how it went.
//!
//! A request is an item of the submissions table beside the submitter's checkpoints, under
//! its own key (`deviceSn` = `request#<id>`, `kind` = `request`), so the checkpoints'
//! readers never take it for a device. The FHIR function writes it `queued`; the submitter's
//! next run sends it and writes `done` or `failed` with the counts; the table's TTL removes
//! it 90 days after it was made.

pub mod checkpoints;
pub mod memory;

use crate::ids::DeviceSn;
use crate::store::StoreError;
use crate::time::Timestamp;
use chrono::NaiveDate;
use std::future::Future;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestStatus {
    /// Not yet sent, or left for the next run (the EHR did not answer for everything).
    Queued,
    Done,
    /// It cannot be sent: `reason` says why.
    Failed,
}

impl RequestStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RequestStatus::Queued => "queued",
            RequestStatus::Done => "done",
            RequestStatus::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [RequestStatus::Queued, RequestStatus::Done, RequestStatus::Failed].into_iter().find(|k| k.as_str() == s)
    }
}

/// What a one-time submission sends: the IG's profile ids, as `FHIR_SUBMIT_PROFILES` names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RequestProfiles {
    pub readings: bool,
    pub summary: bool,
    pub summary_pdf: bool,
}

impl RequestProfiles {
    pub const NAMES: [&'static str; 3] = ["cgm-sensor-reading", "cgm-summary", "cgm-summary-pdf"];

    pub fn names(&self) -> Vec<&'static str> {
        let on = [self.readings, self.summary, self.summary_pdf];
        Self::NAMES.iter().zip(on).filter(|(_, on)| *on).map(|(n, _)| *n).collect()
    }

    /// From names; `Err` names the first unknown one.
    pub fn of<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<Self, &'a str> {
        let mut p = RequestProfiles::default();
        for n in names {
            match n {
                "cgm-sensor-reading" => p.readings = true,
                "cgm-summary" => p.summary = true,
                "cgm-summary-pdf" => p.summary_pdf = true,
                other => return Err(other),
            }
        }
        Ok(p)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubmissionRequest {
    pub id: String,
    pub device_sn: DeviceSn,
    /// The first and last local day sent.
    pub first: NaiveDate,
    pub last: NaiveDate,
    pub profiles: RequestProfiles,
    pub status: RequestStatus,
    /// Runs that tried it.
    pub attempts: u32,
    /// Entries the EHR accepted (created or matched) and declined, in the last attempt.
    pub accepted: u64,
    pub declined: u64,
    /// Why it failed or was left for later: the submitter's error, which names no patient.
    pub reason: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// The store's write counter (0: never written).
    pub version: u64,
}

pub trait SubmissionRequests: Send + Sync {
    /// Writes a new request (version 0); an id already taken is a conflict (`false`).
    fn create(&self, r: &SubmissionRequest) -> impl Future<Output = Result<bool, StoreError>> + Send;

    fn get(&self, id: &str) -> impl Future<Output = Result<Option<SubmissionRequest>, StoreError>> + Send;

    /// Writes `r` as version `r.version + 1` if the stored one is still `r.version`
    /// (`false`: another run moved it).
    fn put(&self, r: &SubmissionRequest) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Every request still queued, oldest first.
    fn queued(&self) -> impl Future<Output = Result<Vec<SubmissionRequest>, StoreError>> + Send;
}
