//! API v3 for followers (xDrip+'s v3 follower): `GET /api/v3/entries` and the empty
//! `treatments` and `devicestatus`, `/api/v3/version` (open) and `/api/v3/status`, as
//! Nightscout's `lib/api3` answers them: `{status, result}`, a Bearer JWT only
//! (`lib/api3/security.js`; API_SECRET and `?token=` are not taken there).

use super::{ENTRIES_TIME_BUDGET, Page, cors, only};
use crate::NightscoutService;
use crate::auth;
use crate::error::{NsError, bad};
use crate::v3::{self, Collection};
use cgm_domain::store::reads::{FollowToken, ReadStore};
use cgm_domain::time::Timestamp;
use cgm_edge::{Answer, Params, reply};
use lambda_http::http::StatusCode;
use serde_json::{Value, json};
use std::time::Instant;

/// What `/api/v3/status` grants a follower, per collection (`c`, `r`, `u`, `d`).
const PERMISSIONS: [(&str, &str); 3] = [("devicestatus", "r"), ("entries", "r"), ("treatments", "r")];

impl<S: ReadStore> NightscoutService<S> {
    /// The follower token a v3 request's Bearer JWT names, or Nightscout's v3 401.
    async fn v3_follower(&self, p: &Params<'_>) -> Result<FollowToken, NsError> {
        let Some(jwt) = auth::bearer(p) else {
            return Err(NsError::V3Unauthorized("Missing or bad access token or JWT"));
        };
        if self.jwt.is_none() {
            return Err(NsError::NotServed(
                "API v3 takes a JWT, and JWTs are off in this stack (NightscoutJwtKeyParameterName is empty): \
                 use API v1 with the follower token",
            ));
        }
        self.jwt_follower(jwt).await?.ok_or(NsError::V3Unauthorized("Bad access token or JWT"))
    }

    /// `GET /api/v3/{entries|treatments|devicestatus}`: a search, `{status: 200, result}`.
    pub(crate) async fn v3_search(
        &self,
        p: Params<'_>,
        collection: Collection,
        started: Instant,
    ) -> Result<Answer, NsError> {
        let token = self.v3_follower(&p).await?;
        let pairs = p.pairs();
        let search = v3::search(pairs.iter().copied(), collection).map_err(bad)?;
        let result: Vec<Value> = match collection {
            Collection::Empty => Vec::new(),
            Collection::Entries => {
                let page = Page { want: search.limit, skip: search.skip, newest_first: search.newest_first };
                let entries = self.gather(&token, &search.filter, page, started + ENTRIES_TIME_BUDGET).await?;
                entries.iter().map(|e| v3::document(e, search.fields.as_deref())).collect()
            }
        };
        let items = result.len();
        let mut resp = reply::json(StatusCode::OK, &json!({"status": 200, "result": result}));
        cors(&mut resp);
        Ok(Answer::new(resp).items(items).device_sn(token.device_sn.as_str()).token_id(token.token_id))
    }

    /// `GET /api/v3/version` (open) and `/api/v3/status` (a Bearer JWT; adds what it may do).
    pub(crate) async fn v3_version(&self, p: Params<'_>, status: bool) -> Result<Answer, NsError> {
        only(&p, &[], false)?;
        let token = if status { Some(self.v3_follower(&p).await?) } else { None };
        let mut result = json!({
            "version": env!("CARGO_PKG_VERSION"),
            "apiVersion": v3::API_VERSION,
            "srvDate": Timestamp::now().ms(),
            "storage": {"storage": "amazon-dynamodb", "version": "2012-08-10"},
        });
        if status {
            result["apiPermissions"] = PERMISSIONS.iter().map(|(c, r)| (c.to_string(), Value::from(*r))).collect();
        }
        let mut resp = reply::json(StatusCode::OK, &json!({"status": 200, "result": result}));
        cors(&mut resp);
        let mut a = Answer::new(resp);
        if let Some(t) = token {
            a = a.device_sn(t.device_sn.as_str()).token_id(t.token_id);
        }
        Ok(a)
    }
}
