//! The read side: what Sinocare pushed, made useful. A device's readings by time (JSON or
//! CSV, paged), the gaps in its sequence, the consensus CGM metrics, a daily chart as SVG,
//! and a Nightscout-compatible feed that followers such as xDrip+ read with a per-device
//! token.
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
mod follow;
mod nightscout;
mod paging;
mod params;
mod routes;
mod text;

use cgm_edge::{Answer, Frame, HttpService};
use cgm_shared::aws::{self, CallLimits};
use cgm_shared::config::Config;
use cgm_shared::store::reads::ReadStore;
use cgm_shared::store::reads::dynamodb::DynamoReadStore;
use cgm_shared::store::rollups::RollupStore;
use cgm_shared::store::rollups::dynamodb::DynamoRollupStore;
use cgm_shared::time::SourceZone;
use error::{ReadApi, ReadError};
use lambda_http::http::Method;
use lambda_http::{Body, Request, Response};
use std::time::{Duration, Instant};

/// Every route answers inside API Gateway's 30 s and the function's 28 s timeout.
const ROUTE_DEADLINE: Duration = Duration::from_secs(25);

pub struct ReadService<S, U = DynamoRollupStore> {
    store: S,
    /// Daily rollups, which the summary reads for whole days.
    rollups: U,
    zone: SourceZone,
}

/// Which route a request is, from API Gateway's route key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Readings,
    Gaps,
    Summary,
    Chart,
    CreateToken,
    ListTokens,
    RevokeToken,
    Entries,
}

impl Route {
    fn of(method: &Method, path: &str) -> Option<Route> {
        Some(match (method.as_str(), path) {
            ("GET", "/devices/{device_sn}/readings") => Route::Readings,
            ("GET", "/devices/{device_sn}/gaps") => Route::Gaps,
            ("GET", "/devices/{device_sn}/summary") => Route::Summary,
            ("GET", "/devices/{device_sn}/chart.svg") => Route::Chart,
            ("POST", "/devices/{device_sn}/follow-tokens") => Route::CreateToken,
            ("GET", "/devices/{device_sn}/follow-tokens") => Route::ListTokens,
            ("DELETE", "/devices/{device_sn}/follow-tokens/{token_id}") => Route::RevokeToken,
            ("GET", "/api/v1/entries.json" | "/api/v1/entries/sgv.json") => Route::Entries,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Route::Readings => "readings",
            Route::Gaps => "gaps",
            Route::Summary => "summary",
            Route::Chart => "chart",
            Route::CreateToken => "create_follow_token",
            Route::ListTokens => "list_follow_tokens",
            Route::RevokeToken => "revoke_follow_token",
            Route::Entries => "nightscout_entries",
        }
    }
}

impl<S: ReadStore, U: RollupStore> HttpService for ReadService<S, U> {
    /// Answers one request. Never fails: every outcome is a reply with a status.
    async fn handle(&self, req: Request) -> Response<Body> {
        let frame = Frame::start(&req);
        let Some(route) = Route::of(req.method(), frame.meta().route_path()) else {
            return frame.finish::<ReadApi>("unknown", Err(ReadError::NotFound("route").into()));
        };
        let started = frame.started();
        let caller = frame.meta().caller.clone();
        let result = frame.within(ROUTE_DEADLINE, self.route(route, &req, caller.as_deref(), started)).await;
        frame.finish::<ReadApi>(route.name(), result)
    }
}

impl<S: ReadStore, U: RollupStore> ReadService<S, U> {
    pub fn new(store: S, rollups: U, zone: SourceZone) -> Self {
        Self { store, rollups, zone }
    }

    pub fn store(&self) -> &S {
        &self.store
    }

    async fn route(
        &self,
        route: Route,
        req: &Request,
        caller: Option<&str>,
        started: Instant,
    ) -> Result<Answer, ReadError> {
        let p = cgm_edge::Params::of(req);
        match route {
            Route::Readings => self.readings(p, started).await,
            Route::Gaps => self.gaps(p).await,
            Route::Summary => self.summary(p).await,
            Route::Chart => self.chart(p).await,
            Route::CreateToken => self.create_token(p, caller).await,
            Route::ListTokens => self.list_tokens(p).await,
            Route::RevokeToken => self.revoke_token(p, caller).await,
            Route::Entries => self.entries(p, started).await,
        }
    }
}

/// Builds the service the way a cold start does: one DynamoDB client for the process. The
/// read side holds no secret, so there is nothing else to resolve.
pub async fn from_config(cfg: &Config) -> ReadService<DynamoReadStore, DynamoRollupStore> {
    let sdk = aws::sdk_config(cfg).await;
    let client = aws::dynamodb(&sdk, cfg.dynamodb_endpoint.as_deref(), CallLimits::READ);
    let store = DynamoReadStore::new(client.clone(), cfg.tables.readings.clone(), cfg.tables.follow_tokens.clone());
    ReadService::new(store, DynamoRollupStore::new(client, cfg.tables.rollups.clone()), cfg.source_timezone)
}
