//! The one way a request is served: start the frame, find the route in the family's table,
//! answer "no such route" the family's way, run the route under the deadline, reply and log.
//! A route family (an HTTP Lambda's API) is a table of [`Route`]s and a [`Routes`]
//! implementation; its `HttpService::handle` is `cgm_edge::serve(self, req).await`.

use crate::frame::{Answer, Api, Failure, Frame};
use lambda_http::http::Method;
use lambda_http::{Body, Request, Response};
use std::future::Future;
use std::time::Duration;

/// How long a route may run before its family's deadline reply: inside API Gateway's
/// 30-second integration timeout, with room for the reply and the log line.
pub const ROUTE_DEADLINE: Duration = Duration::from_secs(25);

/// One row of a family's route table: the template's method and path (API Gateway's route
/// key, as `RequestMeta::route_path` gives it), the log line's `route`, and the route.
#[derive(Debug, Clone, Copy)]
pub struct Route<R> {
    pub method: &'static str,
    pub path: &'static str,
    pub name: &'static str,
    pub route: R,
}

impl<R> Route<R> {
    pub const fn new(method: &'static str, path: &'static str, name: &'static str, route: R) -> Self {
        Route { method, path, name, route }
    }
}

/// The route of `table` for `method` and `path`, with its log name.
pub fn lookup<R: Copy>(table: &[Route<R>], method: &Method, path: &str) -> Option<(R, &'static str)> {
    table.iter().find(|r| r.method == method.as_str() && r.path == path).map(|r| (r.route, r.name))
}

/// The error type of a family's API.
pub type ErrorOf<R> = <<R as Routes>::Api as Api>::Error;

/// A route family: how a request finds its route, and how a route runs.
pub trait Routes: Send + Sync {
    /// Its log line's name and its replies.
    type Api: Api;
    /// What a route is (usually a fieldless enum).
    type Route: Copy + Send + Sync;

    /// The route for a request's method and template path, with its log name, or the error
    /// a request no route takes is answered with (the family's 404). Most families look it
    /// up in their table with [`lookup`].
    fn route_of(method: &Method, path: &str) -> Result<(Self::Route, &'static str), ErrorOf<Self>>;

    /// How long a route may run.
    fn deadline(&self) -> Duration {
        ROUTE_DEADLINE
    }

    /// Runs one route; the frame says when the request arrived and who sent it.
    fn route(
        &self,
        route: Self::Route,
        req: &Request,
        frame: &Frame,
    ) -> impl Future<Output = Result<Answer, ErrorOf<Self>>> + Send;
}

/// Serves one request: the frame, the route, the deadline, the reply and its log line.
pub async fn serve<R: Routes>(service: &R, req: Request) -> Response<Body> {
    let frame = Frame::start(&req);
    let (route, name) = match R::route_of(req.method(), frame.meta().route_path()) {
        Ok(found) => found,
        Err(none) => return frame.finish::<R::Api>("unknown", Err(Failure::Route(none))),
    };
    let result = frame.within(service.deadline(), service.route(route, &req, &frame)).await;
    frame.finish::<R::Api>(name, result)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reply;
    use lambda_http::http::StatusCode;

    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Demo {
        One,
        Slow,
    }

    const ROUTES: &[Route<Demo>] =
        &[Route::new("GET", "/one", "one", Demo::One), Route::new("POST", "/slow", "slow", Demo::Slow)];

    struct DemoApi;
    #[derive(Debug, thiserror::Error)]
    #[error("no route")]
    struct NoRoute;

    impl Api for DemoApi {
        const NAME: &'static str = "demo";
        type Error = NoRoute;
        fn error_reply(_: &NoRoute) -> Response<Body> {
            reply::status_message(StatusCode::NOT_FOUND, "route not found")
        }
    }

    struct Service;

    impl Routes for Service {
        type Api = DemoApi;
        type Route = Demo;
        fn route_of(method: &Method, path: &str) -> Result<(Demo, &'static str), NoRoute> {
            lookup(ROUTES, method, path).ok_or(NoRoute)
        }
        fn deadline(&self) -> Duration {
            Duration::from_secs(1)
        }
        async fn route(&self, route: Demo, _: &Request, _: &Frame) -> Result<Answer, NoRoute> {
            if route == Demo::Slow {
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
            Ok(Answer::new(reply::status_message(StatusCode::OK, "ok")))
        }
    }

    /// A request as API Gateway hands it over for the route key `method path`.
    fn request(method: &str, path: &str) -> Request {
        use lambda_http::RequestExt;
        use lambda_http::aws_lambda_events::apigw::ApiGatewayV2httpRequestContext;
        let mut ctx = ApiGatewayV2httpRequestContext::default();
        ctx.route_key = Some(format!("{method} {path}"));
        let mut req = Request::default();
        *req.method_mut() = method.parse().unwrap();
        req.with_request_context(lambda_http::request::RequestContext::ApiGatewayV2(ctx))
    }

    #[test]
    fn the_table_finds_by_method_and_path_and_nothing_else() {
        assert_eq!(lookup(ROUTES, &Method::GET, "/one"), Some((Demo::One, "one")));
        assert!(lookup(ROUTES, &Method::POST, "/one").is_none());
        assert!(lookup(ROUTES, &Method::GET, "/one/").is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn a_route_a_missing_route_and_a_late_one() {
        assert_eq!(serve(&Service, request("GET", "/one")).await.status(), StatusCode::OK);
        assert_eq!(serve(&Service, request("GET", "/two")).await.status(), StatusCode::NOT_FOUND);
        assert_eq!(serve(&Service, request("POST", "/slow")).await.status(), StatusCode::GATEWAY_TIMEOUT);
    }
}
