//! [`ReadService::handle`]: one request in, one reply out, and one JSON log line. Each route
//! reads its input through `params`, its data through the store (queries on the device/time
//! index), computes with the pure modules and answers through `reply`.

use crate::chart::{self, ChartInput, ChartPoint};
use crate::cursor::{self, GapPosition};
use crate::follow::{self, NoRandomness};
use crate::gaps::{self, Gap, Seq};
use crate::metrics::{self, round_to};
use crate::nightscout;
use crate::paging::{self, ReadAllError, Side};
use crate::params::{self, Format};
use crate::reply;
use cgm_shared::store::StoreError;
use cgm_shared::store::reads::{FollowToken, ReadStore, ReadingQuery, StoredReading, TokenHash};
use cgm_shared::time::{SourceZone, now_ms};
use chrono::{DateTime, SecondsFormat, Utc};
use lambda_http::http::{HeaderValue, Method, StatusCode};
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// Every route answers inside API Gateway's 30 s and the function's 28 s timeout.
const ROUTE_DEADLINE: Duration = Duration::from_secs(25);
/// A paged route stops filling a page after this long and answers with what it has and a
/// cursor, rather than running into the deadline.
const PAGE_TIME_BUDGET: Duration = Duration::from_secs(20);
/// The readings of one page stay well under Lambda's 6 MB reply limit (5 MB with room for
/// the envelope), whatever the ids in them.
const PAGE_BUDGET_BYTES: usize = 4_500_000;

pub const READINGS_DEFAULT_LIMIT: usize = 1_000;
pub const READINGS_MAX_LIMIT: usize = 5_000;
pub const GAPS_DEFAULT_LIMIT: usize = 1_000;
pub const GAPS_MAX_LIMIT: usize = 5_000;
pub const ENTRIES_DEFAULT_COUNT: usize = 10;
pub const ENTRIES_MAX_COUNT: usize = 1_000;
const DAY_MS: i64 = 86_400_000;
/// The consensus reports on 14 days; summary and gaps default to the last 14.
pub const ANALYSIS_DEFAULT_MS: i64 = 14 * DAY_MS;
/// Summary and gaps read their whole range: 90 days of one-minute readings is 129,600.
pub const ANALYSIS_MAX_MS: i64 = 90 * DAY_MS;
/// A backstop far above what 90 days can hold, so a runaway device cannot exhaust memory.
const MAX_READINGS_IN_MEMORY: usize = 200_000;

/// The longest id written to a log line; ids come from requests and can be long.
const LOG_ID_CHARS: usize = 128;

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The caller's input; the message says what is wrong and never echoes a token.
    #[error("{0}")]
    BadRequest(String),
    /// A follower route without a live token.
    #[error("missing, wrong or revoked follower token")]
    Unauthorized,
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("storage failed")]
    Store(#[from] StoreError),
    #[error("the answer took longer than {0} s")]
    Deadline(u64),
    #[error(transparent)]
    Randomness(#[from] NoRandomness),
}

impl From<ReadAllError> for ReadError {
    fn from(e: ReadAllError) -> Self {
        match e {
            ReadAllError::Store(s) => ReadError::Store(s),
            ReadAllError::TooMany(_) => ReadError::BadRequest(format!("{e}; ask for a shorter range")),
        }
    }
}

fn bad(msg: impl Into<String>) -> ReadError {
    ReadError::BadRequest(msg.into())
}

/// Which route a request is, from API Gateway's route key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Readings,
    Gaps,
    Summary,
    Chart,
    CreateToken,
    RevokeToken,
    Entries,
}

impl Route {
    fn of(method: &Method, route_key: &str) -> Option<Route> {
        let path = route_key.split_once(' ').map_or(route_key, |(_, p)| p);
        Some(match (method.as_str(), path) {
            ("GET", "/devices/{device_sn}/readings") => Route::Readings,
            ("GET", "/devices/{device_sn}/gaps") => Route::Gaps,
            ("GET", "/devices/{device_sn}/summary") => Route::Summary,
            ("GET", "/devices/{device_sn}/chart.svg") => Route::Chart,
            ("POST", "/devices/{device_sn}/follow-tokens") => Route::CreateToken,
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
            Route::RevokeToken => "revoke_follow_token",
            Route::Entries => "nightscout_entries",
        }
    }
}

/// A route's reply and what its log line says about it.
struct Answer {
    resp: Response<Body>,
    /// How many records the reply holds (readings, gaps, entries).
    items: Option<usize>,
    /// The device, when the route learned it from a token rather than the path.
    device_sn: Option<String>,
    token_id: Option<String>,
}

impl Answer {
    fn new(resp: Response<Body>) -> Self {
        Answer { resp, items: None, device_sn: None, token_id: None }
    }
}

pub struct ReadService<S> {
    store: S,
    zone: SourceZone,
}

impl<S: ReadStore> ReadService<S> {
    pub fn new(store: S, zone: SourceZone) -> Self {
        Self { store, zone }
    }

    pub fn store(&self) -> &S {
        &self.store
    }

    /// Answers one request. Never fails: every outcome is a reply with a status.
    pub async fn handle(&self, req: Request) -> Response<Body> {
        let started = Instant::now();
        let (route_key, request_id) = match req.request_context_ref() {
            Some(RequestContext::ApiGatewayV2(ctx)) => {
                (ctx.route_key.clone().unwrap_or_default(), ctx.request_id.clone().unwrap_or_default())
            }
            _ => (String::new(), String::new()),
        };
        let Some(route) = Route::of(req.method(), &route_key) else {
            return reply::error(&ReadError::NotFound("route"));
        };
        let path_device = req.path_parameters_ref().and_then(|p| p.first("device_sn")).map(|d| clip(d).to_string());
        let result = match tokio::time::timeout(ROUTE_DEADLINE, self.route(route, &req, started)).await {
            Ok(r) => r,
            Err(_) => Err(ReadError::Deadline(ROUTE_DEADLINE.as_secs())),
        };
        let latency_ms = (started.elapsed().as_secs_f64() * 1e6).round() / 1e3;
        match result {
            Ok(a) => {
                let device_sn = a.device_sn.as_deref().map(clip).map(str::to_string).or(path_device);
                tracing::info!(
                    target: "cgm_read",
                    request_id,
                    route = route.name(),
                    device_sn,
                    token_id = a.token_id,
                    status = a.resp.status().as_u16(),
                    items = a.items,
                    latency_ms,
                    "read"
                );
                a.resp
            }
            Err(e) => {
                let resp = reply::error(&e);
                let status = resp.status().as_u16();
                if status >= 500 {
                    tracing::error!(target: "cgm_read", request_id, route = route.name(), device_sn = path_device, status, error = %e, latency_ms, "read");
                } else {
                    tracing::warn!(target: "cgm_read", request_id, route = route.name(), device_sn = path_device, status, error = %e, latency_ms, "read");
                }
                resp
            }
        }
    }

    async fn route(&self, route: Route, req: &Request, started: Instant) -> Result<Answer, ReadError> {
        match route {
            Route::Readings => self.readings(req, started).await,
            Route::Gaps => self.gaps(req).await,
            Route::Summary => self.summary(req).await,
            Route::Chart => self.chart(req).await,
            Route::CreateToken => self.create_token(req).await,
            Route::RevokeToken => self.revoke_token(req).await,
            Route::Entries => self.entries(req, started).await,
        }
    }

    async fn readings(&self, req: &Request, started: Instant) -> Result<Answer, ReadError> {
        let sn = params::path_param(req, "device_sn")?;
        let (from, to) = params::from_to(req)?;
        let include_invalid = params::flag(req, "include_invalid")?;
        let limit = params::limit(req, "limit", READINGS_DEFAULT_LIMIT, READINGS_MAX_LIMIT)?;
        let format = params::format(req)?;
        let (from_ms, to_ms) = (from.unwrap_or(i64::MIN), to.unwrap_or(i64::MAX));
        let qh = cursor::query_hash(&[
            "readings",
            &sn,
            &from_ms.to_string(),
            &to_ms.to_string(),
            if include_invalid { "all" } else { "valid" },
        ]);
        let start = match params::query(req, "cursor") {
            None => None,
            Some(c) => {
                let p = cursor::decode_position(c, qh).map_err(|e| bad(e.to_string()))?;
                // A start key outside the query's range is refused by DynamoDB: say so here.
                if !(from_ms..=to_ms).contains(&p.measured_at_ms) {
                    return Err(bad("cursor is malformed"));
                }
                Some(p)
            }
        };
        let q = ReadingQuery { device_sn: &sn, from_ms, to_ms, valid_only: !include_invalid, newest_first: false };
        let until = started + PAGE_TIME_BUDGET;
        let zone = self.zone;
        match format {
            Format::Json => {
                let page = paging::fill_page(&self.store, &q, start, limit, PAGE_BUDGET_BYTES, until, |r| {
                    let v = reading_json(r, &zone);
                    let size = v.to_string().len() + 1;
                    (v, size)
                })
                .await?;
                let items = page.items.len();
                let body = json!({
                    "device_sn": sn,
                    "from": from,
                    "to": to,
                    "include_invalid": include_invalid,
                    "readings": page.items,
                    "next_cursor": page.next.map(|p| cursor::encode_position(&p, qh)),
                });
                Ok(Answer { items: Some(items), ..Answer::new(reply::json(StatusCode::OK, &body)) })
            }
            Format::Csv => {
                let page = paging::fill_page(&self.store, &q, start, limit, PAGE_BUDGET_BYTES, until, |r| {
                    let row = csv_row(r, &zone);
                    let size = row.len();
                    (row, size)
                })
                .await?;
                let items = page.items.len();
                let mut body = String::with_capacity(page.items.iter().map(String::len).sum::<usize>() + 128);
                body.push_str(CSV_HEADER);
                for row in &page.items {
                    body.push_str(row);
                }
                let mut resp = reply::text("text/csv; charset=utf-8", body);
                // CSV has no room for the cursor: it travels in a header.
                if let Some(next) = page.next.map(|p| cursor::encode_position(&p, qh))
                    && let Ok(v) = HeaderValue::from_str(&next)
                {
                    resp.headers_mut().insert("x-next-cursor", v);
                }
                resp.headers_mut()
                    .insert("content-disposition", HeaderValue::from_static("attachment; filename=\"readings.csv\""));
                Ok(Answer { items: Some(items), ..Answer::new(resp) })
            }
        }
    }

    async fn gaps(&self, req: &Request) -> Result<Answer, ReadError> {
        let sn = params::path_param(req, "device_sn")?;
        let (from, to) = params::analysis_range(req, now_ms(), ANALYSIS_DEFAULT_MS, ANALYSIS_MAX_MS)?;
        let limit = params::limit(req, "limit", GAPS_DEFAULT_LIMIT, GAPS_MAX_LIMIT)?;
        // The cursor is tied to the parameters as given: with `to` left to default to now it
        // stays valid from one page to the next.
        let qh = cursor::query_hash(&[
            "gaps",
            &sn,
            params::query(req, "from").unwrap_or(""),
            params::query(req, "to").unwrap_or(""),
        ]);
        let after = match params::query(req, "cursor") {
            None => None,
            Some(c) => Some(cursor::decode_gap(c, qh).map_err(|e| bad(e.to_string()))?),
        };
        let q = ReadingQuery { device_sn: &sn, from_ms: from, to_ms: to, valid_only: false, newest_first: false };
        let (readings, before, next) = tokio::try_join!(
            async { paging::read_all(&self.store, &q, MAX_READINGS_IN_MEMORY).await.map_err(ReadError::from) },
            async { paging::neighbour(&self.store, &sn, Side::Before(from)).await.map_err(ReadError::from) },
            async { paging::neighbour(&self.store, &sn, Side::After(to)).await.map_err(ReadError::from) },
        )?;
        let without_serial = readings.iter().filter(|r| r.serial_no.is_none()).count();
        let seqs: Vec<Seq> = before
            .iter()
            .chain(readings.iter())
            .chain(next.iter())
            .filter_map(|r| {
                Some(Seq { serial_no: r.serial_no?, measured_at_ms: r.measured_at_ms, incre_minute: r.incre_minute })
            })
            .collect();
        let report = gaps::find_gaps(&seqs, from, to);
        let remaining: Vec<&Gap> = report
            .gaps
            .iter()
            .filter(|g| {
                after.is_none_or(|a| (g.expected_from_ms, g.first_serial_no) > (a.expected_from_ms, a.first_serial_no))
            })
            .collect();
        let shown = &remaining[..remaining.len().min(limit)];
        let next_cursor = (remaining.len() > shown.len()).then(|| {
            let last = shown[shown.len() - 1];
            cursor::encode_gap(
                GapPosition { expected_from_ms: last.expected_from_ms, first_serial_no: last.first_serial_no },
                qh,
            )
        });
        let zone = self.zone;
        let body = analysis_body(
            &sn,
            from,
            to,
            &zone,
            json!({
                "expected": report.expected,
                "received": report.received,
                "missing": report.missing,
                "gap_count": report.gaps.len(),
                "readings_without_serial_no": without_serial,
                "gaps": shown.iter().map(|g| gap_json(g, &zone)).collect::<Vec<_>>(),
                "next_cursor": next_cursor,
            }),
        );
        Ok(Answer { items: Some(shown.len()), ..Answer::new(reply::json(StatusCode::OK, &body)) })
    }

    async fn summary(&self, req: &Request) -> Result<Answer, ReadError> {
        let sn = params::path_param(req, "device_sn")?;
        let (from, to) = params::analysis_range(req, now_ms(), ANALYSIS_DEFAULT_MS, ANALYSIS_MAX_MS)?;
        let q = ReadingQuery { device_sn: &sn, from_ms: from, to_ms: to, valid_only: false, newest_first: false };
        let readings = paging::read_all(&self.store, &q, MAX_READINGS_IN_MEMORY).await?;
        let values: Vec<f64> = readings.iter().filter(|r| r.valid).map(|r| r.mmol).collect();
        let interval = usual_interval(&readings);
        let expected = metrics::expected_readings(from, to, interval);
        let s = metrics::summarize(&values);
        let zone = self.zone;
        let r1 = |v: f64| round_to(v, 1);
        let body = analysis_body(
            &sn,
            from,
            to,
            &zone,
            json!({
                "readings": values.len(),
                "invalid_readings_excluded": readings.len() - values.len(),
                "interval_minutes": interval,
                "expected_readings": expected,
                "capture_percent": r1(metrics::capture_percent(values.len(), expected)),
                "mean_mmol": s.as_ref().map(|s| round_to(s.mean_mmol, 2)),
                "mean_mg_dl": s.as_ref().map(|s| r1(s.mean_mg_dl)),
                "gmi_percent": s.as_ref().map(|s| r1(s.gmi_percent)),
                "sd_mmol": s.as_ref().and_then(|s| s.sd_mmol).map(|v| round_to(v, 2)),
                "cv_percent": s.as_ref().and_then(|s| s.cv_percent).map(r1),
                "cv_method": "sample standard deviation (n - 1) divided by the mean",
                "time_in_ranges_percent": s.as_ref().map(|s| json!({
                    "very_low_below_3_0": r1(s.bands.very_low),
                    "low_3_0_to_3_9": r1(s.bands.low),
                    "in_range_3_9_to_10_0": r1(s.bands.in_range),
                    "high_10_0_to_13_9": r1(s.bands.high),
                    "very_high_above_13_9": r1(s.bands.very_high),
                })),
            }),
        );
        Ok(Answer { items: Some(values.len()), ..Answer::new(reply::json(StatusCode::OK, &body)) })
    }

    async fn chart(&self, req: &Request) -> Result<Answer, ReadError> {
        let sn = params::path_param(req, "device_sn")?;
        let day = match params::date(req)? {
            Some(d) => d,
            None => {
                let now = Utc::now();
                now.with_timezone(&self.zone.offset_at(now)).date_naive()
            }
        };
        let (start, end) = self.zone.local_day_ms(day).ok_or_else(|| bad("date is out of range"))?;
        let q = ReadingQuery { device_sn: &sn, from_ms: start, to_ms: end - 1, valid_only: false, newest_first: false };
        let readings = paging::read_all(&self.store, &q, MAX_READINGS_IN_MEMORY).await?;
        let points: Vec<ChartPoint> = readings
            .iter()
            .map(|r| ChartPoint { at_ms: r.measured_at_ms, mmol: r.mmol, valid: r.valid, incre_minute: r.incre_minute })
            .collect();
        // The device's thresholds as of its latest reading that day.
        let low = readings.iter().rev().find_map(|r| r.low);
        let high = readings.iter().rev().find_map(|r| r.high);
        let day_text = day.format("%Y-%m-%d").to_string();
        let zone = self.zone.label();
        let svg = chart::render(&ChartInput {
            device_sn: &sn,
            day: &day_text,
            zone: &zone,
            day_start_ms: start,
            day_end_ms: end,
            points: &points,
            low,
            high,
        });
        Ok(Answer { items: Some(points.len()), ..Answer::new(reply::text("image/svg+xml", svg)) })
    }

    async fn create_token(&self, req: &Request) -> Result<Answer, ReadError> {
        let sn = params::path_param(req, "device_sn")?;
        let (token_id, token) = follow::new_token()?;
        let now = now_ms();
        let record = FollowToken {
            token_id: token_id.clone(),
            device_sn: sn.clone(),
            token_hash: follow::sha256_hex(&token),
            sha1_hash: follow::sha1_hex(&token),
            created_at_ms: now,
        };
        self.store.put_follow_token(&record).await?;
        let body = json!({
            "token_id": token_id,
            "token": token,
            "device_sn": sn,
            "created_at": utc_text(now),
        });
        Ok(Answer { token_id: Some(token_id), ..Answer::new(reply::json(StatusCode::CREATED, &body)) })
    }

    async fn revoke_token(&self, req: &Request) -> Result<Answer, ReadError> {
        let sn = params::path_param(req, "device_sn")?;
        let token_id = params::path_param(req, "token_id")?;
        if !self.store.delete_follow_token(&sn, &token_id).await? {
            return Err(ReadError::NotFound("follow token"));
        }
        let body = json!({ "token_id": token_id, "device_sn": sn, "revoked": true });
        Ok(Answer { token_id: Some(clip(&token_id).to_string()), ..Answer::new(reply::json(StatusCode::OK, &body)) })
    }

    /// The live token a follower presents: `?token=`, or Nightscout's `api-secret` header
    /// (the SHA-1 hex of the token; the token itself is accepted there too).
    async fn follower(&self, req: &Request) -> Result<FollowToken, ReadError> {
        let hash = if let Some(t) = params::query(req, "token") {
            let t = t.trim();
            if !follow::looks_like_token(t) {
                return Err(ReadError::Unauthorized);
            }
            (follow::sha256_hex(&t.to_ascii_lowercase()), true)
        } else if let Some(h) = req.headers().get("api-secret").and_then(|v| v.to_str().ok()) {
            if follow::looks_like_token(h.trim()) {
                (follow::sha256_hex(&h.trim().to_ascii_lowercase()), true)
            } else {
                (follow::api_secret(h).ok_or(ReadError::Unauthorized)?, false)
            }
        } else {
            return Err(ReadError::Unauthorized);
        };
        let hash = match &hash {
            (h, true) => TokenHash::Sha256(h),
            (h, false) => TokenHash::Sha1(h),
        };
        self.store.find_follow_token(hash).await?.ok_or(ReadError::Unauthorized)
    }

    async fn entries(&self, req: &Request, started: Instant) -> Result<Answer, ReadError> {
        let token = self.follower(req).await?;
        let count = params::limit(req, "count", ENTRIES_DEFAULT_COUNT, ENTRIES_MAX_COUNT)?;
        let bound = |name: &str| params::query(req, name).map(|v| params::parse_time(name, v)).transpose();
        let gte = match (bound("find[date][$gte]")?, bound("find[date][$gt]")?) {
            (Some(a), Some(b)) => Some(a.max(b.saturating_add(1))),
            (a, b) => a.or(b.map(|b| b.saturating_add(1))),
        };
        let lte = match (bound("find[date][$lte]")?, bound("find[date][$lt]")?) {
            (Some(a), Some(b)) => Some(a.min(b.saturating_sub(1))),
            (a, b) => a.or(b.map(|b| b.saturating_sub(1))),
        };
        if let (Some(g), Some(l)) = (gte, lte)
            && g > l
        {
            return Err(bad("find[date] asks for an empty range"));
        }
        // Readings just before the period are fetched too: the oldest entry's arrow needs
        // its previous reading.
        let q = ReadingQuery {
            device_sn: &token.device_sn,
            from_ms: gte.map_or(i64::MIN, |g| g.saturating_sub(nightscout::TREND_WINDOW_MS)),
            to_ms: lte.unwrap_or(i64::MAX),
            valid_only: true,
            newest_first: true,
        };
        let until = started + PAGE_TIME_BUDGET;
        let page =
            paging::fill_page(&self.store, &q, None, count + 1, PAGE_BUDGET_BYTES, until, |r| (r.clone(), 1)).await?;
        let shown = page.items.iter().take_while(|r| gte.is_none_or(|g| r.measured_at_ms >= g)).count().min(count);
        let entries = nightscout::entries(&page.items, shown, &self.zone);
        let mut resp = reply::json(StatusCode::OK, &Value::Array(entries));
        // Followers may be web pages on another origin; the token, not a cookie, authorizes.
        resp.headers_mut().insert("access-control-allow-origin", HeaderValue::from_static("*"));
        Ok(Answer { resp, items: Some(shown), device_sn: Some(token.device_sn), token_id: Some(token.token_id) })
    }
}

const CSV_HEADER: &str =
    "device_sn,test_id,serial_no,measured_at,measured_at_utc,local_time,glucose_mmol,status,valid\r\n";

fn reading_json(r: &StoredReading, zone: &SourceZone) -> Value {
    json!({
        "test_id": r.test_id,
        "serial_no": r.serial_no,
        "measured_at": r.measured_at_ms,
        "measured_at_utc": utc_text(r.measured_at_ms),
        "local_time": zone.format_local_ms(r.measured_at_ms),
        "glucose_mmol": r.mmol,
        "status": r.status,
        "valid": r.valid,
    })
}

fn csv_row(r: &StoredReading, zone: &SourceZone) -> String {
    format!(
        "{},{},{},{},{},{},{},{},{}\r\n",
        reply::csv_field(&r.device_sn),
        reply::csv_field(&r.test_id),
        r.serial_no.map(|n| n.to_string()).unwrap_or_default(),
        r.measured_at_ms,
        utc_text(r.measured_at_ms).unwrap_or_default(),
        zone.format_local_ms(r.measured_at_ms).unwrap_or_default(),
        r.mmol,
        reply::csv_field(r.status.as_deref().unwrap_or("")),
        r.valid,
    )
}

fn gap_json(g: &Gap, zone: &SourceZone) -> Value {
    let side = |n: &gaps::Neighbour| {
        json!({
            "serial_no": n.serial_no,
            "measured_at": n.measured_at_ms,
            "local_time": zone.format_local_ms(n.measured_at_ms),
        })
    };
    json!({
        "first_serial_no": g.first_serial_no,
        "last_serial_no": g.last_serial_no,
        "missing": g.missing(),
        "incre_minute": g.incre_minute,
        "expected_from": g.expected_from_ms,
        "expected_from_local": zone.format_local_ms(g.expected_from_ms),
        "expected_to": g.expected_to_ms,
        "expected_to_local": zone.format_local_ms(g.expected_to_ms),
        "after": side(&g.after),
        "before": side(&g.before),
    })
}

/// The sensor interval most readings report (default 3 minutes).
fn usual_interval(readings: &[StoredReading]) -> u64 {
    let mut counts: std::collections::BTreeMap<u64, usize> = std::collections::BTreeMap::new();
    for m in readings.iter().filter_map(|r| r.incre_minute).filter(|m| *m > 0) {
        *counts.entry(m).or_default() += 1;
    }
    counts.into_iter().max_by_key(|(m, n)| (*n, std::cmp::Reverse(*m))).map_or(gaps::DEFAULT_INCRE_MINUTE, |(m, _)| m)
}

fn utc_text(ms: i64) -> Option<String> {
    DateTime::from_timestamp_millis(ms).map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true))
}

/// What every analysis reply starts with: the device and its range, in UTC ms and in local
/// time; `rest` holds the analysis itself.
fn analysis_body(sn: &str, from: i64, to: i64, zone: &SourceZone, rest: Value) -> Value {
    let mut body = json!({
        "device_sn": sn,
        "from": from,
        "from_local": zone.format_local_ms(from),
        "to": to,
        "to_local": zone.format_local_ms(to),
    });
    if let (Value::Object(b), Value::Object(r)) = (&mut body, rest) {
        b.extend(r);
    }
    body
}

fn clip(s: &str) -> &str {
    match s.char_indices().nth(LOG_ID_CHARS) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}
