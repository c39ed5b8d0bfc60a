//! The ward's view of its sensors and alerts, from the sensors table the stream consumer
//! keeps: `GET /sensors`, `GET /sensors/{device_sn}`, `GET /patients/{patient_id}/sensors`,
//! `GET /alerts` and `POST /alerts/{alert_id}/acknowledge`. IAM only; the patient
//! references (`patientId`, `visitId`) appear, and the patient route answers, only with
//! `READ_PATIENT_FIELDS=true`.

use crate::ReadService;
use crate::error::{ReadError, bad};
use cgm_domain::alerts::{self, AlertKind, Episode};
use cgm_domain::ids::{DeviceSn, clip_for_log};
use cgm_domain::session::{Mark, Session};
use cgm_domain::store::reads::ReadStore;
use cgm_domain::store::rollups::RollupStore;
use cgm_domain::store::sensors::{Saved, SensorStore};
use cgm_domain::time::{SourceZone, Timestamp};
use cgm_edge::{Answer, Params, reply};
use lambda_http::http::StatusCode;
use serde::Serialize;

#[derive(Debug, Serialize)]
struct MarkOut {
    at: i64,
    at_local: Option<String>,
    serial_no: Option<u64>,
    mmol: f64,
    valid: bool,
}

#[derive(Debug, Serialize)]
struct AlertOut {
    alert_id: String,
    kind: &'static str,
    level: u8,
    device_sn: String,
    customer_name: Option<String>,
    opened_at: i64,
    opened_at_local: Option<String>,
    notified_at: i64,
    notifications: u32,
    acknowledged_at: Option<i64>,
    value_mmol: Option<f64>,
    threshold_mmol: Option<f64>,
}

#[derive(Debug, Serialize)]
struct SensorOut {
    device_sn: String,
    customer_name: Option<String>,
    active: bool,
    cgm_status: Option<String>,
    cgm_day: Option<u64>,
    interval_minutes: Option<u64>,
    readings: u64,
    wear_start: i64,
    wear_start_local: Option<String>,
    expected_end: Option<i64>,
    expected_end_local: Option<String>,
    ended_at: Option<i64>,
    first: MarkOut,
    last: MarkOut,
    /// Whole minutes since the last reading was measured.
    last_age_minutes: i64,
    open_alerts: Vec<AlertOut>,
    #[serde(skip_serializing_if = "Option::is_none")]
    patient_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    visit_id: Option<String>,
}

#[derive(Debug, Serialize)]
struct SensorsReply {
    count: usize,
    sensors: Vec<SensorOut>,
}

#[derive(Debug, Serialize)]
struct AlertsReply {
    count: usize,
    alerts: Vec<AlertOut>,
}

fn mark(m: &Mark, zone: &SourceZone) -> MarkOut {
    MarkOut {
        at: m.at.ms(),
        at_local: zone.format_local_at(m.at),
        serial_no: m.serial_no,
        mmol: m.mmol,
        valid: m.valid,
    }
}

fn alert_out(s: &Session, kind: AlertKind, ep: &Episode, zone: &SourceZone) -> AlertOut {
    AlertOut {
        alert_id: ep.id.clone(),
        kind: kind.as_str(),
        level: kind.level(),
        device_sn: s.device_sn.to_string(),
        customer_name: s.customer_name.clone(),
        opened_at: ep.opened_at.ms(),
        opened_at_local: zone.format_local_at(ep.opened_at),
        notified_at: ep.notified_at.ms(),
        notifications: ep.notifications,
        acknowledged_at: ep.acknowledged_at.map(Timestamp::ms),
        value_mmol: ep.value_mmol,
        threshold_mmol: ep.threshold_mmol,
    }
}

fn open_alerts(s: &Session, zone: &SourceZone) -> Vec<AlertOut> {
    s.alerts.iter().filter_map(|(k, st)| st.open.as_ref().map(|ep| alert_out(s, *k, ep, zone))).collect()
}

impl<S: ReadStore, U: RollupStore, T: SensorStore> ReadService<S, U, T> {
    fn sensor_out(&self, s: &Session, now: Timestamp) -> SensorOut {
        let z = &self.zone;
        let patient = |v: &Option<String>| if self.patient_fields { v.clone() } else { None };
        SensorOut {
            device_sn: s.device_sn.to_string(),
            customer_name: s.customer_name.clone(),
            active: s.active(),
            cgm_status: s.cgm_status.clone(),
            cgm_day: s.cgm_day,
            interval_minutes: s.incre_minute,
            readings: s.readings(),
            wear_start: s.wear_start().ms(),
            wear_start_local: z.format_local_at(s.wear_start()),
            expected_end: s.expected_end().map(Timestamp::ms),
            expected_end_local: s.expected_end().and_then(|t| z.format_local_at(t)),
            ended_at: s.ended_at.map(Timestamp::ms),
            first: mark(&s.first, z),
            last: mark(&s.last, z),
            last_age_minutes: now.since(s.last.at).max(0) / 60_000,
            open_alerts: open_alerts(s, z),
            patient_id: patient(&s.patient_id),
            visit_id: patient(&s.visit_id),
        }
    }

    fn sensors_reply(&self, sessions: &[Session]) -> Answer {
        let now = Timestamp::now();
        let sensors: Vec<SensorOut> = sessions.iter().map(|s| self.sensor_out(s, now)).collect();
        let n = sensors.len();
        Answer::new(reply::json(StatusCode::OK, &SensorsReply { count: n, sensors })).items(n)
    }

    /// The sessions a ward filter names: a hospital's (`customer`), or every running one
    /// (`active=true`), or a hospital's running ones (both).
    async fn ward(&self, p: &Params<'_>) -> Result<Vec<Session>, ReadError> {
        let customer = p.query("customer").map(str::trim).filter(|c| !c.is_empty());
        let active = p.flag("active")?;
        let sessions = match (customer, active) {
            (Some(c), _) => self.sensors.by_customer(c).await?,
            (None, true) => self.sensors.active().await?,
            (None, false) => return Err(bad("give customer (a hospital's customerName), or active=true")),
        };
        Ok(sessions.into_iter().filter(|s| !active || s.active()).collect())
    }

    pub(crate) async fn list_sensors(&self, p: Params<'_>) -> Result<Answer, ReadError> {
        p.only(&["customer", "active"])?;
        let sessions = self.ward(&p).await?;
        Ok(self.sensors_reply(&sessions))
    }

    pub(crate) async fn sensor(&self, p: Params<'_>) -> Result<Answer, ReadError> {
        p.only(&[])?;
        let sn = DeviceSn::from(p.path("device_sn")?);
        let s = self.sensors.session(&sn).await?.ok_or(ReadError::NotFound("sensor"))?;
        Ok(Answer::new(reply::json(StatusCode::OK, &self.sensor_out(&s, Timestamp::now()))).items(1))
    }

    pub(crate) async fn patient_sensors(&self, p: Params<'_>) -> Result<Answer, ReadError> {
        if !self.patient_fields {
            return Err(ReadError::Disabled("patient routes are off: the stack's ReadPatientFields is false"));
        }
        p.only(&[])?;
        let patient = p.path("patient_id")?;
        let sessions = self.sensors.by_patient(patient).await?;
        Ok(self.sensors_reply(&sessions))
    }

    pub(crate) async fn list_alerts(&self, p: Params<'_>) -> Result<Answer, ReadError> {
        p.only(&["customer", "state"])?;
        match p.query("state").map(str::trim) {
            None | Some("open") => {}
            Some(_) => return Err(bad("state must be open: resolved alerts are on the event bus, not kept here")),
        }
        let sessions = match p.query("customer").map(str::trim).filter(|c| !c.is_empty()) {
            Some(c) => self.sensors.by_customer(c).await?,
            None => self.sensors.active().await?,
        };
        let mut alerts: Vec<AlertOut> = sessions.iter().flat_map(|s| open_alerts(s, &self.zone)).collect();
        alerts.sort_by_key(|a| (std::cmp::Reverse(a.level), a.opened_at));
        let n = alerts.len();
        Ok(Answer::new(reply::json(StatusCode::OK, &AlertsReply { count: n, alerts })).items(n))
    }

    /// Stops an open alert's re-notifications until it resolves. Acknowledging twice is the
    /// same as once; a resolved or unknown alert is 404.
    pub(crate) async fn acknowledge(&self, p: Params<'_>, caller: Option<&str>) -> Result<Answer, ReadError> {
        p.only(&[])?;
        let id = p.path("alert_id")?;
        let (sn, kind, _) = alerts::parse_alert_id(id).ok_or(ReadError::NotFound("alert"))?;
        for _ in 0..3 {
            let mut s = self.sensors.session(&sn).await?.ok_or(ReadError::NotFound("alert"))?;
            let ep = s
                .alerts
                .get_mut(&kind)
                .and_then(|st| st.open.as_mut())
                .filter(|ep| ep.id == id)
                .ok_or(ReadError::NotFound("alert"))?;
            if ep.acknowledged_at.is_none() {
                ep.acknowledged_at = Some(Timestamp::now());
                if self.sensors.put_session(&s).await? == Saved::Conflict {
                    continue;
                }
                tracing::info!(target: "cgm_read", device_sn = clip_for_log(sn.as_str()), kind = kind.as_str(), by = caller.unwrap_or("unknown"), "alert acknowledged");
            }
            let st = &s.alerts[&kind];
            let ep = st.open.as_ref().ok_or(ReadError::NotFound("alert"))?;
            return Ok(Answer::new(reply::json(StatusCode::OK, &alert_out(&s, kind, ep, &self.zone))).items(1));
        }
        Err(ReadError::Busy)
    }
}
