use crate::{params, reply};
use cgm_shared::partner::ProxyError;
use cgm_shared::partner::client::{Envelope, UNAUTHORIZED, UpstreamError};
use cgm_shared::partner::paging::{Cursor, Page, prepare_window, query_hash, take_page};
use cgm_shared::partner::tokens::{TokenRecord, TokenStore, Tokens};
use cgm_shared::partner::window::{MAX_WINDOW_MS, Window, split};
use cgm_shared::time::now_ms;
use futures_util::future::try_join_all;
use lambda_http::http::Method;
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response};
use serde_json::{Value, json};
use std::future::Future;
use std::time::{Duration, Instant};

/// Every route answers inside API Gateway's 30 s integration timeout, with room to spare.
const ROUTE_DEADLINE: Duration = Duration::from_secs(27);
/// Upstream windows fetched at once when a page needs more than one.
const WINDOW_CONCURRENCY: usize = 3;
/// A page's JSON stays well under Lambda's 6 MB synchronous response limit, whatever the
/// vendor puts in a record.
const MAX_PAGE_BYTES: usize = 5 * 1024 * 1024;

pub struct PartnerService<S> {
    tokens: Tokens<S>,
    max_range_ms: i64,
}

/// Which proxied route a request is, from API Gateway's route key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Register,
    RefreshToken,
    UserGlucose,
    DeviceInfo,
    DeviceGlucose,
}

impl Route {
    fn of(method: &Method, route_key: &str) -> Option<Route> {
        let path = route_key.split_once(' ').map_or(route_key, |(_, p)| p);
        Some(match (method.as_str(), path) {
            ("POST", "/partner/users") => Route::Register,
            ("POST", "/partner/users/{open_id}/token") => Route::RefreshToken,
            ("GET", "/partner/users/{open_id}/glucose") => Route::UserGlucose,
            ("GET", "/partner/devices/{device_sn}") => Route::DeviceInfo,
            ("GET", "/partner/devices/{device_sn}/glucose") => Route::DeviceGlucose,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Route::Register => "register",
            Route::RefreshToken => "refresh_token",
            Route::UserGlucose => "user_glucose",
            Route::DeviceInfo => "device_info",
            Route::DeviceGlucose => "device_glucose",
        }
    }
}

impl<S: TokenStore> PartnerService<S> {
    pub fn new(tokens: Tokens<S>, max_range_ms: i64) -> Self {
        Self { tokens, max_range_ms }
    }

    pub fn tokens(&self) -> &Tokens<S> {
        &self.tokens
    }

    /// Answers one request. Never fails: every outcome is an envelope with a status.
    pub async fn handle(&self, req: Request) -> Response<Body> {
        let started = Instant::now();
        let (route_key, request_id) = match req.request_context_ref() {
            Some(RequestContext::ApiGatewayV2(ctx)) => {
                (ctx.route_key.clone().unwrap_or_default(), ctx.request_id.clone().unwrap_or_default())
            }
            _ => (String::new(), String::new()),
        };
        let Some(route) = Route::of(req.method(), &route_key) else {
            return reply::error(&ProxyError::BadRequest("no such route".into()));
        };
        let result = match tokio::time::timeout(ROUTE_DEADLINE, self.route(route, &req)).await {
            Ok(r) => r,
            Err(_) => Err(ProxyError::Deadline(ROUTE_DEADLINE.as_secs())),
        };
        let resp = match &result {
            Ok(data) => reply::ok(data.clone()),
            Err(e) => reply::error(e),
        };
        let latency_ms = (started.elapsed().as_secs_f64() * 1e6).round() / 1e3;
        match &result {
            Ok(_) => {
                tracing::info!(target: "cgm_partner", request_id, route = route.name(), status = resp.status().as_u16(), latency_ms, "partner")
            }
            Err(e) => {
                tracing::warn!(target: "cgm_partner", request_id, route = route.name(), status = resp.status().as_u16(), error = %e, latency_ms, "partner")
            }
        }
        resp
    }

    async fn route(&self, route: Route, req: &Request) -> Result<Value, ProxyError> {
        match route {
            Route::Register => self.register(req).await,
            Route::RefreshToken => {
                let open_id = params::path_param(req, "open_id")?;
                let rec = self.tokens.refresh(&open_id, None).await?;
                Ok(token_data(&rec))
            }
            Route::UserGlucose => self.user_glucose(req).await,
            Route::DeviceInfo => self.device_info(req).await,
            Route::DeviceGlucose => self.device_glucose(req).await,
        }
    }

    async fn register(&self, req: &Request) -> Result<Value, ProxyError> {
        let body = params::json_body(req)?;
        let uid = match body.get("partner_uid") {
            Some(Value::String(s)) if !s.trim().is_empty() && s.len() <= 256 => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            _ => {
                return Err(ProxyError::BadRequest(
                    "partner_uid is required: a non-empty string of at most 256 characters".into(),
                ));
            }
        };
        let region = match body.get("region") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if !s.trim().is_empty() && s.len() <= 16 => Some(s.clone()),
            _ => return Err(ProxyError::BadRequest("region must be a short string such as \"CN\"".into())),
        };
        let rec = self.tokens.register(&uid, region.as_deref()).await?;
        Ok(token_data(&rec))
    }

    /// Calls upstream with the user's token; on 1001 refreshes once and retries once.
    async fn with_token<F, Fut>(&self, open_id: &str, call: F) -> Result<(TokenRecord, Envelope), ProxyError>
    where
        F: Fn(TokenRecord) -> Fut,
        Fut: Future<Output = Result<Envelope, UpstreamError>>,
    {
        let rec = self.tokens.current(open_id).await?;
        let mut env = call(rec.clone()).await?;
        let mut used = rec;
        if env.code == UNAUTHORIZED {
            used = self.tokens.refresh(open_id, Some(&used.access_token)).await?;
            env = call(used.clone()).await?;
        }
        if env.code != 0 {
            return Err(ProxyError::Refused { code: env.code, msg: env.msg });
        }
        Ok((used, env))
    }

    async fn user_glucose(&self, req: &Request) -> Result<Value, ProxyError> {
        let open_id = params::path_param(req, "open_id")?;
        let (start, end) = params::range(req, true, self.max_range_ms)?.ok_or_else(missing_range)?;
        let limit = params::limit(req)?;
        let qh = query_hash(&["user", &open_id, &start.to_string(), &end.to_string()]);
        let cursor = params::cursor(req, qh)?;
        let windows: Vec<Option<Window>> = split(start, end, MAX_WINDOW_MS).into_iter().map(Some).collect();
        let user = &open_id;
        let page = self
            .page(&windows, cursor, limit, qh, |w| async move {
                let w = w.unwrap_or(Window { start_ms: start, end_ms: end });
                let (_, env) = self
                    .with_token(user, |t| async move {
                        self.tokens.client().user_glucose(&t.open_id, w.start_ms, w.end_ms, &t.access_token).await
                    })
                    .await?;
                records_of(env)
            })
            .await?;
        Ok(page_data(json!(open_id), page))
    }

    /// The `open_id` whose token reads a device: the caller's, else the owner learned from
    /// an earlier answer.
    async fn device_reader(&self, req: &Request, device_sn: &str) -> Result<String, ProxyError> {
        if let Some(o) = params::query(req, "open_id") {
            if o.trim().is_empty() {
                return Err(ProxyError::BadRequest("open_id is empty".into()));
            }
            return Ok(o.to_string());
        }
        self.tokens.owner_of(device_sn).await?.ok_or_else(|| {
            ProxyError::BadRequest(
                "no owner of this device is known yet: pass ?open_id= of a user whose token may read it".into(),
            )
        })
    }

    async fn device_info(&self, req: &Request) -> Result<Value, ProxyError> {
        let sn = params::path_param(req, "device_sn")?;
        let reader = self.device_reader(req, &sn).await?;
        let (_, env) = self
            .with_token(&reader, |t| {
                let sn = sn.clone();
                async move { self.tokens.client().device_info(&sn, &t.access_token).await }
            })
            .await?;
        if let Some(owner) = env.data.get("open_id").and_then(Value::as_str).filter(|o| !o.is_empty()) {
            self.tokens.learn_owner(&sn, owner).await?;
        }
        Ok(env.data)
    }

    async fn device_glucose(&self, req: &Request) -> Result<Value, ProxyError> {
        let sn = params::path_param(req, "device_sn")?;
        let range = params::range(req, false, self.max_range_ms)?;
        let limit = params::limit(req)?;
        let reader = self.device_reader(req, &sn).await?;
        let (s, e) = range.map_or((String::new(), String::new()), |(s, e)| (s.to_string(), e.to_string()));
        let qh = query_hash(&["device", &sn, &s, &e]);
        let cursor = params::cursor(req, qh)?;
        // Without a range the vendor returns the whole history in one answer: one "window".
        let windows: Vec<Option<Window>> = match range {
            Some((s, e)) => split(s, e, MAX_WINDOW_MS).into_iter().map(Some).collect(),
            None => vec![None],
        };
        let owner = std::sync::Mutex::new(None::<String>);
        let page = self
            .page(&windows, cursor, limit, qh, |w| {
                let (sn, reader, owner) = (&sn, &reader, &owner);
                async move {
                    let (_, env) = self
                        .with_token(reader, |t| async move {
                            let r = w.map(|w| (w.start_ms, w.end_ms));
                            self.tokens.client().device_glucose(sn, r, &t.access_token).await
                        })
                        .await?;
                    if let Some(o) = env.data.get("open_id").and_then(Value::as_str).filter(|o| !o.is_empty()) {
                        *owner.lock().unwrap_or_else(|p| p.into_inner()) = Some(o.to_string());
                    }
                    records_of(env)
                }
            })
            .await?;
        let owner = owner.into_inner().unwrap_or_else(|p| p.into_inner());
        if let Some(o) = &owner {
            self.tokens.learn_owner(&sn, o).await?;
        }
        Ok(page_data(owner.map_or(Value::Null, Value::String), page))
    }

    /// One page of a windowed listing: fetches the cursor's window, then (concurrently, a
    /// few at a time) as many following windows as the page needs, and cuts the page.
    async fn page<F, Fut>(
        &self,
        windows: &[Option<Window>],
        cursor: Option<Cursor>,
        limit: usize,
        qh: u64,
        fetch: F,
    ) -> Result<Page, ProxyError>
    where
        F: Fn(Option<Window>) -> Fut,
        Fut: Future<Output = Result<Vec<Value>, ProxyError>>,
    {
        let (first, offset) = cursor.map_or((0, 0), |c| (c.window, c.offset));
        if first >= windows.len() {
            return Err(ProxyError::BadRequest("cursor is malformed".into()));
        }
        let mut fetched: Vec<Vec<Value>> = Vec::new();
        let mut next = first;
        while next < windows.len() {
            let have: usize = fetched.iter().map(Vec::len).sum::<usize>().saturating_sub(offset);
            if have >= limit {
                break;
            }
            // The cursor's own window first: a continuation page usually needs no other.
            // After that, as many windows as the density seen so far says the page still
            // needs, a few at a time.
            let batch = if fetched.is_empty() {
                1
            } else {
                let per_window = (fetched.iter().map(Vec::len).sum::<usize>() / fetched.len()).max(1);
                (limit - have).div_ceil(per_window).clamp(1, WINDOW_CONCURRENCY)
            };
            let upto = (next + batch).min(windows.len());
            let got = try_join_all((next..upto).map(|i| fetch(windows[i]))).await?;
            // Each window keeps only the records it owns, sorted and de-duplicated, so an
            // edge record the vendor returns for two windows is listed once.
            fetched.extend(got.into_iter().zip(next..upto).map(|(records, i)| prepare_window(records, windows[i])));
            next = upto;
        }
        let mut take = limit;
        loop {
            let page = take_page(&fetched, first, offset, take, qh, windows.len());
            if take == 1 || serde_json::to_vec(&page.records).map_or(0, |b| b.len()) <= MAX_PAGE_BYTES {
                return Ok(page);
            }
            take /= 2;
        }
    }
}

fn missing_range() -> ProxyError {
    ProxyError::BadRequest("start_time and end_time are required".into())
}

fn token_data(rec: &TokenRecord) -> Value {
    json!({
        "open_id": rec.open_id,
        "access_token": rec.access_token.expose(),
        "expire_in": rec.expire_in_s(now_ms()),
    })
}

fn page_data(open_id: Value, page: Page) -> Value {
    json!({
        "open_id": open_id,
        "records": page.records,
        "next_cursor": page.next.map(|c| c.encode()),
    })
}

/// The records of a glucose answer: `data.records`, absent or null meaning none.
fn records_of(env: Envelope) -> Result<Vec<Value>, ProxyError> {
    let records = match env.data {
        Value::Null => return Ok(Vec::new()),
        Value::Object(mut o) => o.remove("records"),
        _ => return Err(UpstreamError::Malformed("data is not an object").into()),
    };
    match records {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(a)) => Ok(a),
        Some(_) => Err(UpstreamError::Malformed("data.records is not a list").into()),
    }
}
