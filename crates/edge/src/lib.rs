//! The HTTP edge of cgm-bridge: what every HTTP Lambda (push, partner, read, report,
//! Nightscout, FHIR) and the local server share, so that a route is written once and
//! behaves like every other.
//!
//! - [`meta`]: what API Gateway says about a request (request id, route key, source address);
//! - [`params`]: typed path, query and body parameters, with one [`params::BadRequest`];
//! - [`frame`]: the serve frame: the route's deadline, the latency, one log line per request;
//! - [`reply`]: the reply builders of each API family (the push envelope, the vendor envelope,
//!   the read side's `{status, message}`);
//! - [`serve`]: the one way a request is served: a family's route table, the deadline, the
//!   frame; an HTTP Lambda's `handle` is `cgm_edge::serve(self, req)`.
//!
//! Domain logic is not here: a function crate turns a request into a domain call through
//! these pieces and maps its own error enum to a reply in one `match`. `lambda_http` lives
//! here and in the function crates' `main`, never in `cgm-shared`.

pub mod frame;
pub mod meta;
pub mod params;
pub mod reply;
pub mod serve;

pub use frame::{Answer, Api, Failure, Frame};
pub use meta::RequestMeta;
pub use params::{BadRequest, Params};
pub use serve::{ROUTE_DEADLINE, Route, Routes, serve};

use lambda_http::{Body, Request, Response};
use std::future::Future;

/// An HTTP Lambda's service: one request in, one reply out. It never fails: every outcome,
/// errors included, is a reply.
pub trait HttpService: Send + Sync {
    fn handle(&self, req: Request) -> impl Future<Output = Response<Body>> + Send;
}

/// Runs `service` under the Lambda runtime: what every HTTP function's `main` ends with.
pub async fn run<S: HttpService>(service: &S) -> Result<(), lambda_http::Error> {
    lambda_http::run(lambda_http::service_fn(move |req: Request| async move {
        Ok::<_, lambda_http::Error>(service.handle(req).await)
    }))
    .await
}
