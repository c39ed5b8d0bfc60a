//! The Nightscout follower API for one device per follower token: what Nightscout serves its
//! followers (xDrip+, LoopFollow, nightguard, client libraries), as its source defines it
//! (nightscout/cgm-remote-monitor; `../shared/reference/nightscout.md` has the facts we rely
//! on):
//!
//! - `GET /api/v1/entries`, `/entries/sgv`, `/entries/current` (each also with `.json`):
//!   `sgv` entries newest first, `count` (default 10), `find[...]` filters ([`find`]),
//!   `If-Modified-Since`;
//! - `GET /api/v1/status(.json)`: the server's status and settings;
//! - `GET /api/v2/properties[/names]`: `bgnow`, `delta`, `direction`, `buckets`
//!   ([`properties`]);
//! - the calls followers make around the entries, answered as a server without them would:
//!   empty treatments and device status, and no profile but a default one where a client
//!   needs one.
//!
//! - API v3 for xDrip+'s v3 follower ([`v3`]): `GET /api/v3/entries` (Nightscout's v3
//!   search: `field$op=value`, `sort$desc`, `limit`, `skip`, `fields`), the empty
//!   `treatments` and `devicestatus`, `/api/v3/version` and `/api/v3/status`; a Bearer JWT
//!   only, as Nightscout's v3 takes.
//!
//! Authentication as Nightscout accepts it ([`auth`]): `Authorization: Bearer <JWT>` (from
//! `GET /api/v2/authorization/request/{token}`, [`jwt`]), `?secret=`, else the `api-secret`
//! header (the SHA-1 hex of the token, the token, or `token=<token>`), and `?token=`. Open
//! routes in the stack (no IAM): the token is the only key, and this function can read
//! nothing but the readings index's measurement fields and the follower tokens.

pub mod auth;
pub mod entries;
pub mod error;
pub mod find;
pub mod jwt;
pub mod properties;
mod routes;
pub mod v3;

use cgm_domain::store::reads::ReadStore;
use cgm_domain::time::SourceZone;
use cgm_edge::{Answer, Frame, HttpService, Routes};
use cgm_shared::aws::{self, CallLimits};
use cgm_shared::config::{Config, ConfigError};
use cgm_shared::store::reads::dynamodb::DynamoReadStore;
use error::{NightscoutApi, NsError};
use lambda_http::http::Method;
use lambda_http::{Body, Request, Response};

pub struct NightscoutService<S> {
    store: S,
    zone: SourceZone,
    /// `NIGHTSCOUT_UNITS=mmol`: what the status tells followers to display.
    mmol: bool,
    /// The JWT signing key (`NIGHTSCOUT_JWT_KEY[_PARAM]`); none, no JWT is issued or taken.
    jwt: Option<jwt::JwtKeys>,
}

/// Which route a request is, from API Gateway's route key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Entries,
    Current,
    Status,
    /// Treatments and device status: none are kept, so an empty list.
    Empty,
    Profiles,
    CurrentProfile,
    Properties,
    AuthRequest,
    SocketIo,
    V3Entries,
    /// v3 treatments and device status: an empty search.
    V3Empty,
    V3Version,
    V3Status,
    /// Any other path under `/api/v3`.
    V3Other,
}

impl Route {
    fn of(path: &str) -> Option<Route> {
        let p = path.strip_suffix(".json").unwrap_or(path);
        Some(match p {
            "/api/v1/entries" | "/api/v1/entries/sgv" => Route::Entries,
            "/api/v1/entries/current" => Route::Current,
            "/api/v1/status" => Route::Status,
            "/api/v1/treatments" | "/api/v1/devicestatus" => Route::Empty,
            "/api/v1/profile" | "/api/v1/profiles" => Route::Profiles,
            "/api/v1/profile/current" => Route::CurrentProfile,
            "/api/v2/properties" | "/api/v2/properties/{names}" => Route::Properties,
            "/api/v2/authorization/request/{token}" => Route::AuthRequest,
            _ if path.starts_with("/socket.io") => Route::SocketIo,
            "/api/v3/entries" => Route::V3Entries,
            "/api/v3/treatments" | "/api/v3/devicestatus" => Route::V3Empty,
            "/api/v3/version" => Route::V3Version,
            "/api/v3/status" => Route::V3Status,
            _ if path.starts_with("/api/v3/") => Route::V3Other,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Route::Entries => "entries",
            Route::Current => "entries_current",
            Route::Status => "status",
            Route::Empty => "empty",
            Route::Profiles => "profiles",
            Route::CurrentProfile => "profile_current",
            Route::Properties => "properties",
            Route::AuthRequest => "authorization_request",
            Route::SocketIo => "socket_io",
            Route::V3Entries => "v3_entries",
            Route::V3Empty => "v3_empty",
            Route::V3Version => "v3_version",
            Route::V3Status => "v3_status",
            Route::V3Other => "v3_other",
        }
    }
}

impl<S: ReadStore> HttpService for NightscoutService<S> {
    /// Answers one request. Never fails: every outcome is a reply with a status.
    async fn handle(&self, req: Request) -> Response<Body> {
        cgm_edge::serve(self, req).await
    }
}

impl<S: ReadStore> Routes for NightscoutService<S> {
    type Api = NightscoutApi;
    type Route = Route;

    /// Nightscout's paths, by path alone, with or without `.json`.
    fn route_of(_: &Method, path: &str) -> Result<(Route, &'static str), NsError> {
        Route::of(path).map(|r| (r, r.name())).ok_or(NsError::NotFound("route"))
    }

    async fn route(&self, route: Route, req: &Request, frame: &Frame) -> Result<Answer, NsError> {
        let p = cgm_edge::Params::of(req);
        let started = frame.started();
        match route {
            Route::Entries => self.entries(p, started, false).await,
            Route::Current => self.entries(p, started, true).await,
            Route::Status => self.status(p).await,
            Route::Empty => self.empty(p).await,
            Route::Profiles => self.profiles(p, false).await,
            Route::CurrentProfile => self.profiles(p, true).await,
            Route::Properties => self.properties(p, started).await,
            Route::AuthRequest => self.authorization_request(p).await,
            Route::V3Entries => self.v3_search(p, v3::Collection::Entries, started).await,
            Route::V3Empty => self.v3_search(p, v3::Collection::Empty, started).await,
            Route::V3Version => self.v3_version(p, false).await,
            Route::V3Status => self.v3_version(p, true).await,
            Route::V3Other => Err(NsError::V3NotFound),
            Route::SocketIo => Err(NsError::NotServed(
                "Socket.IO is not served: this feed answers the REST API only; turn the follower's socket \
                 (\"websocket\", \"real-time\") setting off",
            )),
        }
    }
}

impl<S: ReadStore> NightscoutService<S> {
    pub fn new(store: S, zone: SourceZone, mmol: bool) -> Self {
        Self { store, zone, mmol, jwt: None }
    }

    /// The same, issuing and accepting JWTs signed with `keys`.
    pub fn with_jwt(self, keys: jwt::JwtKeys) -> Self {
        Self { jwt: Some(keys), ..self }
    }

    pub fn store(&self) -> &S {
        &self.store
    }
}

/// Builds the service the way a cold start does: the JWT key (from `NIGHTSCOUT_JWT_KEY` or
/// the SSM parameter `NIGHTSCOUT_JWT_KEY_PARAM` names) once, and one DynamoDB client.
pub async fn from_config(cfg: &Config) -> Result<NightscoutService<DynamoReadStore>, ConfigError> {
    let sdk = aws::sdk_config(cfg).await;
    let key = aws::resolve_secret(&sdk, &cfg.nightscout_jwt_key, "NIGHTSCOUT_JWT_KEY_PARAM").await?;
    if let Some(k) = &key
        && k.expose().chars().count() < jwt::MIN_KEY_CHARS
    {
        return Err(ConfigError::Invalid {
            var: "NIGHTSCOUT_JWT_KEY_PARAM",
            reason: format!("the JWT signing key must be at least {} characters", jwt::MIN_KEY_CHARS),
        });
    }
    let client = aws::dynamodb(&sdk, cfg.dynamodb_endpoint.as_deref(), CallLimits::READ);
    let store = DynamoReadStore::new(client, cfg.tables.readings.clone(), cfg.tables.follow_tokens.clone());
    let service = NightscoutService::new(store, cfg.source_timezone, cfg.nightscout_mmol);
    Ok(match key {
        Some(k) => service.with_jwt(
            jwt::JwtKeys::new(k.expose(), cfg.nightscout_jwt_hours)
                .map_err(|reason| ConfigError::Invalid { var: "NIGHTSCOUT_JWT_KEY_PARAM", reason })?,
        ),
        None => service,
    })
}

#[cfg(test)]
mod tests;
