//! [`PartnerService::handle`]: one request in, the vendor's envelope out, and one log line.

use crate::client::{Envelope, PartnerClient, UNAUTHORIZED, UpstreamError};
use crate::error::{PartnerApi, ProxyError, bad};
use crate::paging::{Page, WindowCursor, prepare_window, take_page};
use crate::tokens::{TokenRecord, TokenStore, Tokens};
use crate::window::{MAX_WINDOW_MS, Window, split, window};
use cgm_domain::cursor::{self, QueryHash};
use cgm_domain::time::now_ms;
use cgm_edge::{Answer, Frame, HttpService, Params, Routes, reply};
use futures_util::future::try_join_all;
use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Request, Response};
use serde::Serialize;
use serde_json::Value;
use std::future::Future;
use std::time::Duration;

/// Every route answers inside API Gateway's 30 s integration timeout, with room to spare
/// (longer than the edge's default: a page may wait on several upstream windows).
const ROUTE_DEADLINE: Duration = Duration::from_secs(27);
/// Upstream windows fetched at once when a page needs more than one.
const WINDOW_CONCURRENCY: usize = 3;
/// A page's JSON stays well under Lambda's 6 MB synchronous response limit, whatever the
/// vendor puts in a record.
const MAX_PAGE_BYTES: usize = 5 * 1024 * 1024;
pub const DEFAULT_LIMIT: usize = 2_000;
pub const MAX_LIMIT: usize = 5_000;

pub struct PartnerService<S> {
    /// `None` while no upstream is configured: every route answers 503 "not configured".
    tokens: Option<Tokens<S>>,
    max_range_ms: i64,
}

/// Which proxied route a request is, from API Gateway's route key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Register,
    RefreshToken,
    UserGlucose,
    DeviceInfo,
    DeviceGlucose,
}

/// The partner proxy's routes: the template's route keys, each with its log name.
const ROUTES: &[cgm_edge::Route<Route>] = {
    use cgm_edge::Route as R;
    &[
        R::new("POST", "/partner/users", "register", Route::Register),
        R::new("POST", "/partner/users/{open_id}/token", "refresh_token", Route::RefreshToken),
        R::new("GET", "/partner/users/{open_id}/glucose", "user_glucose", Route::UserGlucose),
        R::new("GET", "/partner/devices/{device_sn}", "device_info", Route::DeviceInfo),
        R::new("GET", "/partner/devices/{device_sn}/glucose", "device_glucose", Route::DeviceGlucose),
    ]
};

/// `data` of a register or token answer.
#[derive(Debug, Serialize)]
struct TokenData<'a> {
    open_id: &'a str,
    access_token: &'a str,
    expire_in: i64,
}

/// `data` of a glucose listing: the vendor's records as sent, and where the next page starts.
#[derive(Debug, Serialize)]
struct PageData {
    open_id: Option<String>,
    records: Vec<Value>,
    next_cursor: Option<String>,
}

impl<S: TokenStore> HttpService for PartnerService<S> {
    /// Answers one request. Never fails: every outcome is an envelope with a status.
    async fn handle(&self, req: Request) -> Response<Body> {
        cgm_edge::serve(self, req).await
    }
}

impl<S: TokenStore> Routes for PartnerService<S> {
    type Api = PartnerApi;
    type Route = Route;

    fn route_of(method: &Method, path: &str) -> Result<(Route, &'static str), ProxyError> {
        cgm_edge::serve::lookup(ROUTES, method, path).ok_or(ProxyError::NoRoute)
    }

    fn deadline(&self) -> Duration {
        ROUTE_DEADLINE
    }

    async fn route(&self, route: Route, req: &Request, _: &Frame) -> Result<Answer, ProxyError> {
        let p = Params::of(req);
        let data = match route {
            Route::Register => return self.register(p).await,
            Route::RefreshToken => {
                let rec = self.tokens()?.refresh(p.path("open_id")?, None).await?;
                return Ok(token_answer(&rec));
            }
            Route::UserGlucose => self.user_glucose(p).await?,
            Route::DeviceInfo => return self.device_info(p).await,
            Route::DeviceGlucose => self.device_glucose(p).await?,
        };
        let items = data.records.len();
        Ok(Answer::new(ok(&data)).items(items))
    }
}

impl<S: TokenStore> PartnerService<S> {
    pub fn new(tokens: Tokens<S>, max_range_ms: i64) -> Self {
        Self { tokens: Some(tokens), max_range_ms }
    }

    /// The service of a stack without `PARTNER_API_BASE_URL`.
    pub fn unconfigured(max_range_ms: i64) -> Self {
        Self { tokens: None, max_range_ms }
    }

    fn tokens(&self) -> Result<&Tokens<S>, ProxyError> {
        self.tokens.as_ref().ok_or(ProxyError::NotConfigured)
    }

    async fn register(&self, p: Params<'_>) -> Result<Answer, ProxyError> {
        let body = p.json_object()?;
        let uid = match body.get("partner_uid") {
            Some(Value::String(s)) if !s.trim().is_empty() && s.len() <= 256 => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            _ => return Err(bad("partner_uid is required: a non-empty string of at most 256 characters")),
        };
        let region = match body.get("region") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if !s.trim().is_empty() && s.len() <= 16 => Some(s.clone()),
            _ => return Err(bad("region must be a short string such as \"CN\"")),
        };
        let rec = self.tokens()?.register(&uid, region.as_deref()).await?;
        Ok(token_answer(&rec))
    }

    /// Calls upstream with the user's token; on 1001 refreshes once and retries once.
    async fn with_token<'c, F, Fut>(&'c self, open_id: &str, call: F) -> Result<(TokenRecord, Envelope), ProxyError>
    where
        F: Fn(&'c PartnerClient, TokenRecord) -> Fut,
        Fut: Future<Output = Result<Envelope, UpstreamError>>,
    {
        let tokens = self.tokens()?;
        let rec = tokens.current(open_id).await?;
        let mut env = call(tokens.client(), rec.clone()).await?;
        let mut used = rec;
        if env.code == UNAUTHORIZED {
            used = tokens.refresh(open_id, Some(&used.access_token)).await?;
            env = call(tokens.client(), used.clone()).await?;
        }
        if env.code != 0 {
            return Err(ProxyError::Refused { code: env.code, msg: env.msg });
        }
        Ok((used, env))
    }

    /// `start_time` and `end_time`: both or (when `required` is false) neither.
    fn range(&self, p: Params<'_>, required: bool) -> Result<Option<Window>, ProxyError> {
        let (start, end) = match (p.epoch_ms("start_time")?, p.epoch_ms("end_time")?) {
            (Some(s), Some(e)) => (s, e),
            (None, None) if !required => return Ok(None),
            (None, _) => return Err(bad("start_time is required (milliseconds since the epoch)")),
            (_, None) => return Err(bad("end_time is required (milliseconds since the epoch)")),
        };
        let range = window(start, end).ok_or_else(|| bad("start_time is after end_time"))?;
        if range.span_ms() > self.max_range_ms {
            return Err(bad(format!(
                "the range is longer than the {} days one query may ask for",
                self.max_range_ms / 86_400_000
            )));
        }
        Ok(Some(range))
    }

    async fn user_glucose(&self, p: Params<'_>) -> Result<PageData, ProxyError> {
        let open_id = p.path("open_id")?;
        let range = self.range(p, true)?.ok_or_else(|| bad("start_time and end_time are required"))?;
        let limit = p.limit("limit", DEFAULT_LIMIT, MAX_LIMIT)?;
        let (start, end) = (range.start().ms().to_string(), range.end().ms().to_string());
        let qh = QueryHash::of(&["user", open_id, &start, &end]);
        let cursor = p.cursor::<WindowCursor>(qh)?;
        let windows: Vec<Option<Window>> = split(range, MAX_WINDOW_MS).into_iter().map(Some).collect();
        let page = self
            .page(&windows, cursor, limit, |w| async move {
                let w = w.unwrap_or(range);
                let (_, env) = self
                    .with_token(open_id, |c, t| async move { c.user_glucose(&t.open_id, w, &t.access_token).await })
                    .await?;
                records_of(env)
            })
            .await?;
        Ok(page_data(Some(open_id.to_string()), page, qh))
    }

    /// The `open_id` whose token reads a device: the caller's, else the owner learned from
    /// an earlier answer.
    async fn device_reader(&self, p: Params<'_>, device_sn: &str) -> Result<String, ProxyError> {
        if let Some(o) = p.query("open_id") {
            if o.trim().is_empty() {
                return Err(bad("open_id is empty"));
            }
            return Ok(o.to_string());
        }
        self.tokens()?.owner_of(device_sn).await?.ok_or_else(|| {
            bad("no owner of this device is known yet: pass ?open_id= of a user whose token may read it")
        })
    }

    async fn device_info(&self, p: Params<'_>) -> Result<Answer, ProxyError> {
        let sn = p.path("device_sn")?;
        let reader = self.device_reader(p, sn).await?;
        let (_, env) = self.with_token(&reader, |c, t| async move { c.device_info(sn, &t.access_token).await }).await?;
        if let Some(owner) = env.data.get("open_id").and_then(Value::as_str).filter(|o| !o.is_empty()) {
            self.tokens()?.learn_owner(sn, owner).await?;
        }
        // The vendor's device information passes through unchanged.
        Ok(Answer::new(ok(&env.data)))
    }

    async fn device_glucose(&self, p: Params<'_>) -> Result<PageData, ProxyError> {
        let sn = p.path("device_sn")?;
        let range = self.range(p, false)?;
        let limit = p.limit("limit", DEFAULT_LIMIT, MAX_LIMIT)?;
        let reader = self.device_reader(p, sn).await?;
        let (s, e) =
            range.map_or((String::new(), String::new()), |r| (r.start().ms().to_string(), r.end().ms().to_string()));
        let qh = QueryHash::of(&["device", sn, &s, &e]);
        let cursor = p.cursor::<WindowCursor>(qh)?;
        // Without a range the vendor returns the whole history in one answer: one "window".
        let windows: Vec<Option<Window>> = match range {
            Some(r) => split(r, MAX_WINDOW_MS).into_iter().map(Some).collect(),
            None => vec![None],
        };
        let owner = std::sync::Mutex::new(None::<String>);
        let page = self
            .page(&windows, cursor, limit, |w| {
                let (reader, owner) = (&reader, &owner);
                async move {
                    let (_, env) = self
                        .with_token(reader, |c, t| async move { c.device_glucose(sn, w, &t.access_token).await })
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
            self.tokens()?.learn_owner(sn, o).await?;
        }
        Ok(page_data(owner, page, qh))
    }

    /// One page of a windowed listing: fetches the cursor's window, then (concurrently, a
    /// few at a time) as many following windows as the page needs, and cuts the page.
    async fn page<F, Fut>(
        &self,
        windows: &[Option<Window>],
        cursor: Option<WindowCursor>,
        limit: usize,
        fetch: F,
    ) -> Result<Page, ProxyError>
    where
        F: Fn(Option<Window>) -> Fut,
        Fut: Future<Output = Result<Vec<Value>, ProxyError>>,
    {
        let (first, offset) = cursor.map_or((0, 0), |c| (c.window, c.offset));
        if first >= windows.len() {
            return Err(bad("cursor is malformed"));
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
            let page = take_page(&fetched, first, offset, take, windows.len());
            if take == 1 || serde_json::to_vec(&page.records).map_or(0, |b| b.len()) <= MAX_PAGE_BYTES {
                return Ok(page);
            }
            take /= 2;
        }
    }
}

fn ok<T: Serialize>(data: &T) -> Response<Body> {
    reply::vendor_envelope(StatusCode::OK, 0, "", data)
}

fn token_answer(rec: &TokenRecord) -> Answer {
    let data = TokenData {
        open_id: &rec.open_id,
        access_token: rec.access_token.expose(),
        expire_in: rec.expire_in_s(now_ms()),
    };
    Answer::new(ok(&data))
}

fn page_data(open_id: Option<String>, page: Page, qh: QueryHash) -> PageData {
    PageData { open_id, records: page.records, next_cursor: page.next.map(|c| cursor::encode(&c, qh)) }
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
