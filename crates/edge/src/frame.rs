//! The serve frame: what happens around every route. It starts the clock, bounds the route
//! by its deadline, turns the route's error into its API family's reply, and writes the one
//! log line of the request.
//!
//! The log line's `message` is the API family's name (`push`, `partner`, `read`) and it
//! carries `outcome` and a numeric `status`: the template's metric filters match exactly
//! these fields (a test runs the filters over this output). Ids are clipped; no personal
//! field or token is ever a field here.

use crate::meta::RequestMeta;
use cgm_domain::ids::clip_for_log;
use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, RequestExt, Response};
use std::fmt::Display;
use std::future::Future;
use std::time::{Duration, Instant};

/// An API family: its name in the log line and how its errors become replies.
pub trait Api {
    /// The log line's `message`.
    const NAME: &'static str;
    type Error: Display;
    /// The reply for a route's error: the family's one `match` from error to status.
    fn error_reply(e: &Self::Error) -> Response<Body>;
    /// The reply when a route ran past its deadline: by default the `{status, message}`
    /// family's 504.
    fn deadline_reply(after: Duration) -> Response<Body> {
        crate::reply::status_message(
            StatusCode::GATEWAY_TIMEOUT,
            &format!("the answer took longer than {} s", after.as_secs()),
        )
    }
    /// The log line's `outcome` when a route failed or ran late (the push route's metric
    /// filters count `unavailable`); none by default.
    const FAILURE_OUTCOME: Option<&'static str> = None;
}

/// How a route did not produce an answer.
#[derive(Debug)]
pub enum Failure<E> {
    Route(E),
    Deadline(Duration),
}

/// What the log line says about a request beyond its status and latency. Route handlers
/// set what they know; a field left `None` is left out of the line.
#[derive(Debug, Default, Clone)]
pub struct LogFields {
    pub outcome: Option<&'static str>,
    pub test_id: Option<String>,
    pub device_sn: Option<String>,
    pub token_id: Option<String>,
    pub items: Option<usize>,
    /// Why, for the operator: a fixed sentence, never request data.
    pub reason: Option<String>,
    /// Names of pushed fields kept as sent because they are outside their bounds
    /// (`increMinute,serialNo`): counted by a metric filter.
    pub out_of_range: Option<String>,
    /// Log at WARN although the status is a success (a push conflict).
    pub warn: bool,
}

/// A route's reply and what its log line says about it.
pub struct Answer {
    pub resp: Response<Body>,
    pub log: LogFields,
}

impl Answer {
    pub fn new(resp: Response<Body>) -> Self {
        Answer { resp, log: LogFields::default() }
    }

    pub fn items(mut self, n: usize) -> Self {
        self.log.items = Some(n);
        self
    }

    pub fn device_sn(mut self, sn: impl Into<String>) -> Self {
        self.log.device_sn = Some(sn.into());
        self
    }

    pub fn token_id(mut self, id: impl Into<String>) -> Self {
        self.log.token_id = Some(id.into());
        self
    }
}

/// One request being served.
pub struct Frame {
    started: Instant,
    meta: RequestMeta,
    body_bytes: usize,
    path_device: Option<String>,
}

impl Frame {
    pub fn start(req: &Request) -> Self {
        Frame {
            started: Instant::now(),
            meta: RequestMeta::of(req),
            body_bytes: req.body().len(),
            path_device: req.path_parameters_ref().and_then(|p| p.first("device_sn")).map(str::to_string),
        }
    }

    pub fn meta(&self) -> &RequestMeta {
        &self.meta
    }

    /// When the request arrived: routes that budget their own time (a page that stops
    /// filling) count from here.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// Runs a route's future under its deadline.
    pub async fn within<T, E>(
        &self,
        deadline: Duration,
        route: impl Future<Output = Result<T, E>>,
    ) -> Result<T, Failure<E>> {
        let left = deadline.saturating_sub(self.started.elapsed());
        match tokio::time::timeout(left, route).await {
            Ok(r) => r.map_err(Failure::Route),
            Err(_) => Err(Failure::Deadline(deadline)),
        }
    }

    /// The reply, and the request's one log line.
    pub fn finish<A: Api>(self, route: &'static str, result: Result<Answer, Failure<A::Error>>) -> Response<Body> {
        let (resp, log, error) = match result {
            Ok(a) => (a.resp, a.log, None),
            Err(Failure::Route(e)) => (A::error_reply(&e), failed::<A>(), Some(e.to_string())),
            Err(Failure::Deadline(d)) => (
                A::deadline_reply(d),
                failed::<A>(),
                Some(format!("the answer took longer than {} s", d.as_secs_f64())),
            ),
        };
        let latency_ms = (self.started.elapsed().as_secs_f64() * 1e6).round() / 1e3;
        let status = resp.status();
        let device_sn = log.device_sn.as_deref().or(self.path_device.as_deref()).map(clip_for_log);
        macro_rules! line {
            ($level:expr) => {
                tracing::event!(
                    target: "cgm_edge",
                    $level,
                    request_id = %self.meta.request_id,
                    route,
                    outcome = log.outcome,
                    status = status.as_u16(),
                    test_id = log.test_id.as_deref().map(clip_for_log),
                    device_sn,
                    token_id = log.token_id.as_deref().map(clip_for_log),
                    items = log.items,
                    reason = log.reason.as_deref(),
                    out_of_range = log.out_of_range.as_deref(),
                    error = error.as_deref(),
                    body_bytes = self.body_bytes,
                    latency_ms,
                    "{}",
                    A::NAME
                )
            };
        }
        match level(status, error.is_some() || log.warn) {
            Level::Error => line!(tracing::Level::ERROR),
            Level::Warn => line!(tracing::Level::WARN),
            Level::Info => line!(tracing::Level::INFO),
        }
        resp
    }
}

fn failed<A: Api>() -> LogFields {
    LogFields { outcome: A::FAILURE_OUTCOME, ..LogFields::default() }
}

enum Level {
    Error,
    Warn,
    Info,
}

fn level(status: StatusCode, noteworthy: bool) -> Level {
    if status.is_server_error() {
        Level::Error
    } else if status.is_client_error() || noteworthy {
        Level::Warn
    } else {
        Level::Info
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reply;

    struct Demo;

    #[derive(Debug, thiserror::Error)]
    #[error("demo failure")]
    struct DemoError;

    impl Api for Demo {
        const NAME: &'static str = "demo";
        type Error = DemoError;
        fn error_reply(_: &DemoError) -> Response<Body> {
            reply::status_message(StatusCode::BAD_REQUEST, "demo failure")
        }
        fn deadline_reply(_: Duration) -> Response<Body> {
            reply::status_message(StatusCode::GATEWAY_TIMEOUT, "late")
        }
    }

    fn logged(run: impl FnOnce()) -> Vec<serde_json::Value> {
        let lines = cgm_shared::telemetry::Captured::default();
        let w = lines.clone();
        let sub = cgm_shared::telemetry::subscriber(true, Some("info"), move || w.clone());
        tracing::subscriber::with_default(sub, run);
        lines.text().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    }

    #[test]
    fn one_line_per_request_with_the_routes_fields() {
        let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
        let lines = logged(|| {
            let frame = Frame::start(&Request::default());
            let answer = Answer::new(reply::status_message(StatusCode::OK, "ok")).items(3).device_sn("SN-1");
            let result = rt.block_on(frame.within(Duration::from_secs(1), async { Ok::<_, DemoError>(answer) }));
            assert_eq!(frame.finish::<Demo>("demo_route", result).status(), StatusCode::OK);
        });
        assert_eq!(lines.len(), 1);
        let l = &lines[0];
        assert_eq!(
            (l["message"].as_str(), l["route"].as_str(), l["status"].as_u64()),
            (Some("demo"), Some("demo_route"), Some(200))
        );
        assert_eq!(
            (l["items"].as_u64(), l["device_sn"].as_str(), l["level"].as_str()),
            (Some(3), Some("SN-1"), Some("INFO"))
        );
        assert!(l.get("error").is_none() && l.get("outcome").is_none(), "{l}");
    }

    #[test]
    fn errors_and_deadlines_become_the_familys_replies() {
        let rt = tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap();
        let lines = logged(|| {
            let frame = Frame::start(&Request::default());
            let r = rt.block_on(frame.within(Duration::from_secs(1), async { Err::<Answer, _>(DemoError) }));
            assert_eq!(frame.finish::<Demo>("x", r).status(), StatusCode::BAD_REQUEST);
            let frame = Frame::start(&Request::default());
            let slow = async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                Ok::<Answer, DemoError>(Answer::new(reply::status_message(StatusCode::OK, "")))
            };
            let r = rt.block_on(frame.within(Duration::from_secs(1), slow));
            assert_eq!(frame.finish::<Demo>("x", r).status(), StatusCode::GATEWAY_TIMEOUT);
        });
        assert_eq!(lines[0]["error"], "demo failure");
        assert_eq!(lines[0]["level"], "WARN");
        assert_eq!(lines[1]["error"], "the answer took longer than 1 s");
        assert_eq!(lines[1]["level"], "ERROR");
    }
}
