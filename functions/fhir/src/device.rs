//! `GET /fhir/Device/{id}`: a sensor as a `cgm-device`; and the device and its patient
//! that every search starts from (a device exists once it has a session or a reading).

use crate::error::{FhirError, fhir_reply};
use crate::{DISABLED, FhirService};
use cgm_domain::ids::DeviceSn;
use cgm_domain::session::Session;
use cgm_domain::store::reads::{ReadStore, ReadingQuery};
use cgm_domain::store::rollups::RollupStore;
use cgm_domain::store::sensors::SensorStore;
use cgm_edge::{Answer, Params};
use cgm_fhir_profiles as profiles;
use lambda_http::http::StatusCode;
use serde_json::Value;

impl<S: ReadStore, U: RollupStore, T: SensorStore> FhirService<S, U, T> {
    /// The patient of a device as the profiles' subject: by the hospital's identifier.
    fn subject(&self, session: Option<&Session>) -> Result<Value, FhirError> {
        if self.naming.patient_system.is_none() {
            return Err(FhirError::Disabled(DISABLED));
        }
        session
            .and_then(|s| s.patient_id.as_deref())
            .filter(|id| !id.trim().is_empty())
            .and_then(|id| self.naming.patient_by_identifier(id))
            .ok_or(FhirError::NoPatient)
    }

    pub(crate) async fn device(&self, p: Params<'_>) -> Result<Answer, FhirError> {
        p.only(&["_format"])?;
        if self.naming.patient_system.is_none() {
            return Err(FhirError::Disabled(DISABLED));
        }
        let sn = profiles::text_of_fhir_id(p.path("id")?).map(DeviceSn::from).ok_or(FhirError::NotFound("Device"))?;
        let session = self.sensors.session(&sn).await?;
        if session.is_none() && !self.has_readings(&sn).await? {
            return Err(FhirError::NotFound("Device"));
        }
        let patient = self.subject(session.as_ref()).ok();
        let body = profiles::device(&sn, session.as_ref(), &self.naming, patient.as_ref());
        Ok(Answer::new(fhir_reply(StatusCode::OK, body.to_string())).device_sn(sn.as_str()))
    }

    /// The device a search names and its patient as the subject; `None` when the search can
    /// match nothing: an id that names no serial (a hashed one), a device that never pushed.
    pub(crate) async fn searched_device(&self, device_id: &str) -> Result<Option<(DeviceSn, Value)>, FhirError> {
        let Some(sn) = profiles::text_of_fhir_id(device_id).map(DeviceSn::from) else { return Ok(None) };
        let session = self.sensors.session(&sn).await?;
        if session.is_none() && !self.has_readings(&sn).await? {
            return Ok(None);
        }
        let subject = self.subject(session.as_ref())?;
        Ok(Some((sn, subject)))
    }

    pub(crate) async fn has_readings(&self, sn: &DeviceSn) -> Result<bool, FhirError> {
        let q = ReadingQuery {
            device_sn: sn,
            range: cgm_domain::time::TimeRange::ALL,
            valid_only: false,
            newest_first: true,
        };
        Ok(!self.store.query_readings(&q, None, Some(1)).await?.readings.is_empty())
    }
}
