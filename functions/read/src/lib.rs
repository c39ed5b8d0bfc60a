//! The read side: what Sinocare pushed, made useful. A device's readings by time (JSON or
//! CSV, paged), the gaps in its sequence, the consensus CGM metrics, the numbers of an
//! ambulatory glucose profile, a daily chart as SVG,
//! the ward's sensors and alerts, and the per-device follower tokens that the Nightscout
//! function (`functions/nightscout`) accepts.
//!
//! Everything is read from the readings table's device/time index with queries (never a
//! scan) that fetch measurement fields only: patient fields never reach this function.
//! It writes nothing but follower tokens, which it stores hashed.
//!
//! The maths (gaps, trend arrows, chart geometry; the metrics are in `cgm-shared`) are plain
//! functions in their own modules; [`routes`] turns requests into those calls and their
//! results into replies, one module per route family; [`error`] maps every failure to a
//! reply in one place.

mod chart;
pub mod error;
mod params;
mod routes;
mod text;

use cgm_domain::store::reads::ReadStore;
use cgm_domain::store::rollups::RollupStore;
use cgm_domain::store::sensors::SensorStore;
use cgm_domain::time::SourceZone;
use cgm_edge::{Answer, Frame, HttpService, Routes};
use cgm_shared::aws::{self, CallLimits};
use cgm_shared::config::Config;
use cgm_shared::store::reads::dynamodb::DynamoReadStore;
use cgm_shared::store::rollups::dynamodb::DynamoRollupStore;
use cgm_shared::store::sensors::dynamodb::DynamoSensorStore;
use error::{ReadApi, ReadError};
use lambda_http::http::Method;
use lambda_http::{Body, Request, Response};

pub struct ReadService<S, U = DynamoRollupStore, T = DynamoSensorStore> {
    store: S,
    /// Daily rollups, which the summary and gaps read for whole days.
    rollups: U,
    /// Sensor sessions and their alerts, kept by the stream consumer.
    sensors: T,
    zone: SourceZone,
    /// `READ_PATIENT_FIELDS`: the sensor routes show patient references.
    patient_fields: bool,
}

/// Which route a request is, from API Gateway's route key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Readings,
    Gaps,
    Summary,
    Agp,
    AgpSvg,
    Chart,
    CreateToken,
    ListTokens,
    RevokeToken,
    Sensors,
    Sensor,
    PatientSensors,
    Alerts,
    AcknowledgeAlert,
}

/// The read API's routes: the template's route keys, each with its log name.
const ROUTES: &[cgm_edge::Route<Route>] = {
    use cgm_edge::Route as R;
    &[
        R::new("GET", "/devices/{device_sn}/readings", "readings", Route::Readings),
        R::new("GET", "/devices/{device_sn}/gaps", "gaps", Route::Gaps),
        R::new("GET", "/devices/{device_sn}/summary", "summary", Route::Summary),
        R::new("GET", "/devices/{device_sn}/agp.json", "agp_json", Route::Agp),
        R::new("GET", "/devices/{device_sn}/agp.svg", "agp_svg", Route::AgpSvg),
        R::new("GET", "/devices/{device_sn}/chart.svg", "chart", Route::Chart),
        R::new("POST", "/devices/{device_sn}/follow-tokens", "create_follow_token", Route::CreateToken),
        R::new("GET", "/devices/{device_sn}/follow-tokens", "list_follow_tokens", Route::ListTokens),
        R::new("DELETE", "/devices/{device_sn}/follow-tokens/{token_id}", "revoke_follow_token", Route::RevokeToken),
        R::new("GET", "/sensors", "sensors", Route::Sensors),
        R::new("GET", "/sensors/{device_sn}", "sensor", Route::Sensor),
        R::new("GET", "/patients/{patient_id}/sensors", "patient_sensors", Route::PatientSensors),
        R::new("GET", "/alerts", "alerts", Route::Alerts),
        R::new("POST", "/alerts/{alert_id}/acknowledge", "acknowledge_alert", Route::AcknowledgeAlert),
    ]
};

impl<S: ReadStore, U: RollupStore, T: SensorStore> HttpService for ReadService<S, U, T> {
    /// Answers one request. Never fails: every outcome is a reply with a status.
    async fn handle(&self, req: Request) -> Response<Body> {
        cgm_edge::serve(self, req).await
    }
}

impl<S: ReadStore, U: RollupStore, T: SensorStore> Routes for ReadService<S, U, T> {
    type Api = ReadApi;
    type Route = Route;

    fn route_of(method: &Method, path: &str) -> Result<(Route, &'static str), ReadError> {
        cgm_edge::serve::lookup(ROUTES, method, path).ok_or(ReadError::NotFound("route"))
    }

    async fn route(&self, route: Route, req: &Request, frame: &Frame) -> Result<Answer, ReadError> {
        let p = cgm_edge::Params::of(req);
        let (caller, started) = (frame.meta().caller.as_deref(), frame.started());
        match route {
            Route::Readings => self.readings(p, started).await,
            Route::Gaps => self.gaps(p).await,
            Route::Summary => self.summary(p).await,
            Route::Agp => self.agp_json(p).await,
            Route::AgpSvg => self.agp_svg(p).await,
            Route::Chart => self.chart(p).await,
            Route::CreateToken => self.create_token(p, caller).await,
            Route::ListTokens => self.list_tokens(p).await,
            Route::RevokeToken => self.revoke_token(p, caller).await,
            Route::Sensors => self.list_sensors(p).await,
            Route::Sensor => self.sensor(p).await,
            Route::PatientSensors => self.patient_sensors(p).await,
            Route::Alerts => self.list_alerts(p).await,
            Route::AcknowledgeAlert => self.acknowledge(p, caller).await,
        }
    }
}

impl<S: ReadStore, U: RollupStore, T: SensorStore> ReadService<S, U, T> {
    pub fn new(store: S, rollups: U, sensors: T, zone: SourceZone, patient_fields: bool) -> Self {
        Self { store, rollups, sensors, zone, patient_fields }
    }

    pub fn sensor_store(&self) -> &T {
        &self.sensors
    }

    pub fn store(&self) -> &S {
        &self.store
    }
}

/// Builds the service the way a cold start does: one DynamoDB client for the process. The
/// read side holds no secret, so there is nothing else to resolve.
pub async fn from_config(cfg: &Config) -> ReadService<DynamoReadStore> {
    let sdk = aws::sdk_config(cfg).await;
    with_client(cfg, aws::dynamodb(&sdk, cfg.dynamodb_endpoint.as_deref(), CallLimits::READ))
}

/// The service on a DynamoDB client the caller made (the report function shares its own).
pub fn with_client(cfg: &Config, client: aws_sdk_dynamodb::Client) -> ReadService<DynamoReadStore> {
    let store = DynamoReadStore::new(client.clone(), cfg.tables.readings.clone(), cfg.tables.follow_tokens.clone());
    ReadService::new(
        store,
        DynamoRollupStore::new(client.clone(), cfg.tables.rollups.clone()),
        DynamoSensorStore::new(client, cfg.tables.sensors.clone()),
        cfg.source_timezone,
        cfg.read_patient_fields,
    )
}
