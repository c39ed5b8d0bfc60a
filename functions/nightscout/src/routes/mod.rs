//! The routes: each turns a request into store calls and the pure functions of
//! [`crate::entries`] and [`crate::find`], and their results into Nightscout's replies.

use crate::NightscoutService;
use crate::auth::{self, Presented};
use crate::entries::{self, Entry};
use crate::error::{NsError, bad};
use crate::find::{self, EntryFilter};
use cgm_domain::follow;
use cgm_domain::store::reads::paging;
use cgm_domain::store::reads::{FollowToken, ReadStore, ReadingQuery, StoredReading};
use cgm_domain::time::{TimeRange, Timestamp};
use cgm_domain::trend::TREND_WINDOW_MS;
use cgm_edge::{Answer, Params, reply};
use lambda_http::http::{HeaderValue, StatusCode};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

mod v3;

pub const ENTRIES_DEFAULT_COUNT: usize = 10;
/// The entries of one answer stay well under Lambda's 6 MB reply limit.
const ENTRIES_BUDGET_BYTES: usize = 4_500_000;
/// An answer stops gathering readings after this long and serves what it has.
pub(crate) const ENTRIES_TIME_BUDGET: Duration = Duration::from_secs(20);
/// Readings asked of the index per call.
const CHUNK: usize = 1_000;
/// A new token's life when a legacy one is upgraded on first use.
const LEGACY_TOKEN_LIFE_MS: i64 = 90 * 86_400_000;
/// `lastUsedAt` is written at most this often, not on every poll.
const LAST_USED_RESOLUTION_MS: i64 = 3_600_000;
/// Query parameters every route takes: the credentials, and the cache-buster followers add.
const COMMON: [&str; 3] = ["token", "secret", "rr"];

/// Which of the admitted readings an answer takes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Page {
    pub want: usize,
    pub skip: usize,
    pub newest_first: bool,
}

impl Page {
    pub(crate) fn newest(want: usize) -> Self {
        Page { want, skip: 0, newest_first: true }
    }
}

/// Refuses a parameter the route cannot apply, naming it.
fn only(p: &Params<'_>, known: &[&str], finds: bool) -> Result<(), NsError> {
    for (k, _) in p.pairs() {
        if COMMON.contains(&k) || known.contains(&k) || (finds && k.starts_with("find[")) {
            continue;
        }
        return Err(bad(format!(
            "unknown query parameter {:?}; this route takes {}{}",
            cgm_domain::ids::clip_for_log(k),
            [&COMMON[..], known].concat().join(", "),
            if finds { " and find[...]" } else { "" }
        )));
    }
    Ok(())
}

/// `count`: a whole number; 0 (MongoDB's "no limit") serves as many as fit.
fn count(p: &Params<'_>) -> Result<usize, NsError> {
    match p.query("count").map(str::trim) {
        None => Ok(ENTRIES_DEFAULT_COUNT),
        Some(v) => match v.parse::<usize>() {
            Ok(0) => Ok(usize::MAX),
            Ok(n) => Ok(n),
            Err(_) => Err(bad("count must be a whole number")),
        },
    }
}

/// An HTTP date (`If-Modified-Since`, `Last-Modified`) as ms.
fn http_date(v: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc2822(v.trim()).ok().map(|d| d.timestamp_millis())
}

impl<S: ReadStore> NightscoutService<S> {
    /// The live token a request presents, or 401.
    pub(crate) async fn follower(&self, p: &Params<'_>) -> Result<FollowToken, NsError> {
        let now = Timestamp::now();
        if let Some(jwt) = auth::bearer(p)
            && let Some(token) = self.jwt_follower(jwt).await?
        {
            return Ok(token);
        }
        let Presented::Candidates(candidates) = auth::presented(p) else { return Err(NsError::Unauthorized) };
        for sha1 in candidates {
            let hash = follow::secret_hash(&sha1);
            let token = match self.store.find_follow_token(&hash).await? {
                Some(t) => Some(t),
                // A token stored before the rehash: upgraded in place on its first use.
                None => self.store.upgrade_legacy_follow_token(&sha1, &hash, now.plus_ms(LEGACY_TOKEN_LIFE_MS)).await?,
            };
            let Some(token) = token.filter(|t| t.is_live(now)) else { continue };
            if token.last_used_at.is_none_or(|u| now.since(u) >= LAST_USED_RESOLUTION_MS) {
                self.store.touch_follow_token(&token.token_id, now).await?;
            }
            return Ok(token);
        }
        Err(NsError::Unauthorized)
    }

    /// The live follower token a Bearer JWT this stack signed names; `None` when JWTs are off
    /// or it is not one.
    pub(crate) async fn jwt_follower(&self, jwt: &str) -> Result<Option<FollowToken>, NsError> {
        let Some(claims) = self.jwt.as_ref().and_then(|k| k.verify(jwt)) else { return Ok(None) };
        let token = self.store.get_follow_token(&claims.sub).await?;
        Ok(token.filter(|t| t.is_live(Timestamp::now())))
    }

    /// The valid readings of the token's device the filter admits, newest (or oldest) first,
    /// `skip` passed over, at most `want`, each with the reading before it in time (for its
    /// arrow and delta), within the time budget.
    pub(crate) async fn gather(
        &self,
        token: &FollowToken,
        filter: &EntryFilter,
        page: Page,
        until: Instant,
    ) -> Result<Vec<Entry>, NsError> {
        let Page { want, skip, newest_first } = page;
        let from = filter.from_ms.map_or(Timestamp::MIN, |f| Timestamp::from_ms(f).minus_ms(TREND_WINDOW_MS));
        let to = filter.to_ms.map_or(Timestamp::MAX, Timestamp::from_ms);
        let Some(range) = TimeRange::new(from, to) else { return Ok(Vec::new()) };
        if want == 0 || filter.no_sgv || filter.from_ms.zip(filter.to_ms).is_some_and(|(f, t)| f > t) {
            return Ok(Vec::new());
        }
        let q = ReadingQuery { device_sn: &token.device_sn, range, valid_only: true, newest_first };
        let admits =
            |r: &StoredReading| filter.admits_time(r.measured_at.ms()) && filter.admits_sgv(entries::sgv(r.mmol));
        let wanted = want.saturating_add(skip);
        let mut raw: Vec<StoredReading> = Vec::new();
        let mut matched = 0usize;
        let mut start = None;
        loop {
            let page = paging::fill_page(&self.store, &q, start, CHUNK, usize::MAX, until, |r| (r.clone(), 1)).await?;
            matched += page.items.iter().filter(|r| admits(r)).count();
            raw.extend(page.items);
            // Enough, with the reading before the last one served (its previous) in hand:
            // oldest first, it came before it.
            let last_has_previous = !newest_first || raw.iter().rposition(&admits).is_some_and(|i| i + 1 < raw.len());
            let full = matched >= wanted && last_has_previous;
            match page.next {
                Some(next) if !full && Instant::now() < until && raw.len() < 200_000 => start = Some(next),
                _ => break,
            }
        }
        let previous = |i: usize| if newest_first { raw.get(i + 1) } else { i.checked_sub(1).and_then(|j| raw.get(j)) };
        let mut out = Vec::new();
        let mut bytes = 0usize;
        let mut passed = 0usize;
        for (i, r) in raw.iter().enumerate() {
            if out.len() == want {
                break;
            }
            if !admits(r) {
                continue;
            }
            if passed < skip {
                passed += 1;
                continue;
            }
            let e = entries::entry(r, previous(i), &self.zone);
            bytes += serde_json::to_vec(&e).map_or(0, |v| v.len() + 1);
            if bytes > ENTRIES_BUDGET_BYTES {
                break;
            }
            out.push(e);
        }
        Ok(out)
    }

    pub(crate) async fn entries(&self, p: Params<'_>, started: Instant, current: bool) -> Result<Answer, NsError> {
        let token = self.follower(&p).await?;
        let (filter, want) = if current {
            only(&p, &[], false)?;
            (EntryFilter::default(), 1)
        } else {
            only(&p, &["count"], true)?;
            (find::entry_filter(p.pairs()).map_err(bad)?, count(&p)?)
        };
        let entries = self.gather(&token, &filter, Page::newest(want), started + ENTRIES_TIME_BUDGET).await?;
        let newest = entries.iter().map(|e| e.date).max();
        let since = p.header("if-modified-since").and_then(http_date);
        let mut resp = match (newest, since) {
            // Nothing newer than the client has (HTTP dates are to the second).
            (Some(n), Some(s)) if n / 1000 <= s / 1000 => {
                let mut r = reply::text(StatusCode::NOT_MODIFIED, "application/json", String::new());
                *r.body_mut() = lambda_http::Body::Empty;
                r
            }
            _ => reply::json(StatusCode::OK, &entries),
        };
        if let Some(text) = newest.and_then(chrono::DateTime::from_timestamp_millis) {
            let v = text.format("%a, %d %b %Y %H:%M:%S GMT").to_string();
            if let Ok(h) = HeaderValue::from_str(&v) {
                resp.headers_mut().insert("last-modified", h);
            }
        }
        cors(&mut resp);
        Ok(Answer::new(resp).items(entries.len()).device_sn(token.device_sn.as_str()).token_id(token.token_id))
    }

    /// The server's status, as Nightscout's `lib/api/status.js` answers it. Open; a token
    /// presented must be live, and then the device's own thresholds are shown.
    pub(crate) async fn status(&self, p: Params<'_>) -> Result<Answer, NsError> {
        only(&p, &[], false)?;
        let token = match auth::presented(&p) {
            Presented::Nothing => None,
            Presented::Candidates(_) => Some(self.follower(&p).await?),
        };
        let (mut low, mut high) = (3.9, 10.0);
        if let Some(t) = &token {
            let q = ReadingQuery {
                device_sn: &t.device_sn,
                range: TimeRange::new(Timestamp::MIN, Timestamp::MAX).expect("the whole of time"),
                valid_only: false,
                newest_first: true,
            };
            let batch = self.store.query_readings(&q, None, Some(1)).await?;
            if let Some(r) = batch.readings.first() {
                low = r.low.filter(|v| (1.0..=30.0).contains(v)).unwrap_or(low);
                high = r.high.filter(|v| (1.0..=30.0).contains(v) && *v > low).unwrap_or(high);
            }
        }
        let now = Timestamp::now();
        // As Nightscout's: the presented token resolved, with a JWT for it when JWTs are on.
        let authorized = token.as_ref().map(|t| {
            let jwt =
                self.jwt.as_ref().and_then(|k| k.issue(&t.token_id, now.ms() / 1000, t.expires_at.ms() / 1000).ok());
            let (exp, jwt) = match jwt {
                Some((j, c)) => (c.exp, Some(j)),
                None => (t.expires_at.ms() / 1000, None),
            };
            json!({"token": jwt, "sub": t.token_id, "permissionGroups": [crate::jwt::PERMISSIONS],
                   "iat": now.ms() / 1000, "exp": exp})
        });
        let body = json!({
            "status": "ok",
            "name": "cgm-bridge",
            "version": env!("CARGO_PKG_VERSION"),
            "serverTime": now.utc_text(),
            "serverTimeEpoch": now.ms(),
            "apiEnabled": true,
            "careportalEnabled": false,
            "boluscalcEnabled": false,
            "settings": {
                "units": if self.mmol { "mmol" } else { "mg/dl" },
                "timeFormat": 24,
                "theme": "default",
                "enable": [],
                "thresholds": {
                    "bgHigh": entries::sgv(13.9),
                    "bgTargetTop": entries::sgv(high),
                    "bgTargetBottom": entries::sgv(low),
                    "bgLow": entries::sgv(3.0),
                },
                "authDefaultRoles": "denied",
            },
            "extendedSettings": {},
            "authorized": authorized,
            "runtimeState": "loaded",
        });
        let mut resp = reply::json(StatusCode::OK, &body);
        cors(&mut resp);
        let mut a = Answer::new(resp);
        if let Some(t) = token {
            a = a.device_sn(t.device_sn.as_str()).token_id(t.token_id);
        }
        Ok(a)
    }

    /// Exchanges a follower token (in the path, as Nightscout's access tokens are) for a JWT:
    /// `{token, sub, permissionGroups, iat, exp}`.
    pub(crate) async fn authorization_request(&self, p: Params<'_>) -> Result<Answer, NsError> {
        only(&p, &[], false)?;
        let Some(keys) = &self.jwt else {
            return Err(NsError::NotServed(
                "JWTs are off in this stack (NightscoutJwtKeyParameterName is empty): present the follower token itself",
            ));
        };
        let presented = p.path("token").map_err(|_| NsError::Unauthorized)?;
        let sha1 = follow::presented_sha1(presented).ok_or(NsError::Unauthorized)?;
        let now = Timestamp::now();
        let token = self
            .store
            .find_follow_token(&follow::secret_hash(&sha1))
            .await?
            .filter(|t| t.is_live(now))
            .ok_or(NsError::Unauthorized)?;
        let (jwt, claims) =
            keys.issue(&token.token_id, now.ms() / 1000, token.expires_at.ms() / 1000).map_err(|e| {
                tracing::error!(target: "cgm_nightscout", error = %e, "JWT not signed");
                NsError::NotServed("a JWT could not be signed")
            })?;
        let body = json!({"token": jwt, "sub": claims.sub, "permissionGroups": claims.permission_groups,
                          "iat": claims.iat, "exp": claims.exp});
        let mut resp = reply::json(StatusCode::OK, &body);
        cors(&mut resp);
        Ok(Answer::new(resp).device_sn(token.device_sn.as_str()).token_id(token.token_id))
    }

    /// Nightscout's computed properties of the newest readings, those named in the path
    /// (`/api/v2/properties/bgnow,delta`) or all it can compute.
    pub(crate) async fn properties(&self, p: Params<'_>, started: Instant) -> Result<Answer, NsError> {
        only(&p, &[], false)?;
        let token = self.follower(&p).await?;
        let names: Option<Vec<&str>> = p.path("names").ok().map(|n| n.split(',').map(str::trim).collect());
        // Four 5-minute buckets back from the newest: 30 readings cover them at any interval.
        let entries =
            self.gather(&token, &EntryFilter::default(), Page::newest(30), started + ENTRIES_TIME_BUDGET).await?;
        let body = crate::properties::properties(&entries, names.as_deref(), self.mmol);
        let mut resp = reply::json(StatusCode::OK, &body);
        cors(&mut resp);
        Ok(Answer::new(resp).items(body.len()).device_sn(token.device_sn.as_str()).token_id(token.token_id))
    }

    /// Treatments and device status: this feed keeps none, so `[]` for any filter.
    pub(crate) async fn empty(&self, p: Params<'_>) -> Result<Answer, NsError> {
        only(&p, &["count"], true)?;
        let token = self.follower(&p).await?;
        let mut resp = reply::json(StatusCode::OK, &Vec::<Value>::new());
        cors(&mut resp);
        Ok(Answer::new(resp).device_sn(token.device_sn.as_str()).token_id(token.token_id))
    }

    /// No profile is kept: `profile.json` is `[]`; `profile/current` (one object, for
    /// clients that need one) is a default holding only what is known: the units, the zone
    /// and the target range.
    pub(crate) async fn profiles(&self, p: Params<'_>, current: bool) -> Result<Answer, NsError> {
        only(&p, &["count"], true)?;
        let token = self.follower(&p).await?;
        let body = if current {
            let units = if self.mmol { "mmol" } else { "mg/dl" };
            let (low, high) = if self.mmol { (json!(3.9), json!(10.0)) } else { (json!(70), json!(180)) };
            json!({
                "_id": "default",
                "defaultProfile": "Default",
                "startDate": "1970-01-01T00:00:00.000Z",
                "mills": 0,
                "units": units,
                "store": {"Default": {
                    "units": units,
                    "timezone": self.zone.iana_name(),
                    "target_low": [{"time": "00:00", "timeAsSeconds": 0, "value": low}],
                    "target_high": [{"time": "00:00", "timeAsSeconds": 0, "value": high}],
                }},
            })
        } else {
            json!([])
        };
        let mut resp = reply::json(StatusCode::OK, &body);
        cors(&mut resp);
        Ok(Answer::new(resp).device_sn(token.device_sn.as_str()).token_id(token.token_id))
    }
}

/// Followers may be web pages on another origin; the token, not a cookie, authorizes.
pub(crate) fn cors(resp: &mut lambda_http::Response<lambda_http::Body>) {
    resp.headers_mut().insert("access-control-allow-origin", HeaderValue::from_static("*"));
}
