//! The local HTTP server: each request on 127.0.0.1 becomes the API Gateway HTTP API
//! (payload 2.0) event the Lambda would receive, parsed by `lambda_http` exactly as in the
//! cloud, and goes to the same handler. Routes and path parameters come from the template.

use crate::template::Route;
use base64::Engine;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use lambda_http::{Body, Request, Response};
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::net::TcpListener;

/// API Gateway's own payload limit: larger requests never reach a Lambda.
const API_GATEWAY_MAX_BODY: usize = 10 * 1024 * 1024;

pub type BoxFuture = Pin<Box<dyn Future<Output = Response<Body>> + Send>>;
/// A function's handler, as the Lambda runtime would call it.
pub type Handler = Arc<dyn Fn(Request) -> BoxFuture + Send + Sync>;

struct Bound {
    route: Route,
    segments: Vec<String>,
    handler: Handler,
}

pub struct Router {
    routes: Vec<Bound>,
    counter: AtomicU64,
}

#[derive(Debug, thiserror::Error)]
#[error("template function {0} has no local handler")]
pub struct MissingHandler(pub String);

impl Router {
    /// Binds every template route to its function's handler; a route whose function has
    /// no handler here is an error, so `make dev` never silently lacks a route.
    pub fn new(routes: Vec<Route>, handlers: &HashMap<String, Handler>) -> Result<Self, MissingHandler> {
        let routes = routes
            .into_iter()
            .map(|route| {
                let handler =
                    handlers.get(&route.function).cloned().ok_or_else(|| MissingHandler(route.function.clone()))?;
                let segments = route.path.trim_matches('/').split('/').map(str::to_string).collect();
                Ok(Bound { route, segments, handler })
            })
            .collect::<Result<_, _>>()?;
        Ok(Router { routes, counter: AtomicU64::new(0) })
    }

    pub fn routes(&self) -> impl Iterator<Item = &Route> {
        self.routes.iter().map(|b| &b.route)
    }

    /// The route for a method and path, with its path parameters.
    /// The route a request takes: as API Gateway chooses, the most specific that matches
    /// (literal segments before variables, a greedy `{name+}` last).
    fn find(&self, method: &str, path: &str) -> Option<(&Bound, Map<String, Value>)> {
        let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
        let specificity = |b: &Bound| {
            let literals = b.segments.iter().filter(|s| !s.starts_with('{')).count();
            (b.segments.last().is_some_and(|s| s.ends_with("+}")), std::cmp::Reverse(literals))
        };
        self.routes
            .iter()
            .filter(|b| b.route.method == method || b.route.method == "ANY")
            .filter_map(|b| Some((b, Self::matches(b, &parts)?)))
            .min_by_key(|(b, _)| specificity(b))
    }

    /// The path parameters of `parts` on route `b`, if it matches.
    fn matches(b: &Bound, parts: &[&str]) -> Option<Map<String, Value>> {
        // A last segment `{name+}` is API Gateway's greedy variable: one or more segments.
        let greedy = b.segments.last().and_then(|s| s.strip_prefix('{')).and_then(|s| s.strip_suffix("+}"));
        let mut params = Map::new();
        match greedy {
            Some(name) if parts.len() >= b.segments.len() => {
                let rest = parts[b.segments.len() - 1..].join("/");
                if rest.is_empty() {
                    return None;
                }
                params.insert(name.to_string(), Value::String(percent_decode(&rest)));
            }
            Some(_) => return None,
            None if b.segments.len() != parts.len() => return None,
            None => {}
        }
        let fixed = b.segments.len() - usize::from(greedy.is_some());
        for (seg, part) in b.segments[..fixed].iter().zip(parts) {
            match seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(name) if !part.is_empty() => {
                    params.insert(name.to_string(), Value::String(percent_decode(part)));
                }
                None if seg == part => {}
                _ => return None,
            }
        }
        Some(params)
    }

    async fn dispatch(&self, req: hyper::Request<Incoming>, peer: SocketAddr) -> hyper::Response<Full<Bytes>> {
        let (parts, body) = req.into_parts();
        let method = parts.method.as_str().to_string();
        let path = parts.uri.path().to_string();
        let Some((bound, params)) = self.find(&method, &path) else {
            // What API Gateway answers for a route that does not exist.
            return plain(404, r#"{"message":"Not Found"}"#);
        };
        let body = match Limited::new(body, API_GATEWAY_MAX_BODY).collect().await {
            Ok(b) => b.to_bytes(),
            Err(_) => return plain(413, r#"{"message":"Request Entity Too Large"}"#),
        };
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let event = event_json(&bound.route, &parts, params, &body, peer, n);
        let request = match lambda_http::request::from_str(&event.to_string()) {
            Ok(r) => r,
            Err(_) => return plain(400, r#"{"message":"Bad Request"}"#),
        };
        into_hyper((bound.handler)(request).await)
    }
}

/// The API Gateway HTTP API payload 2.0 event for one request.
fn event_json(
    route: &Route,
    parts: &hyper::http::request::Parts,
    params: Map<String, Value>,
    body: &Bytes,
    peer: SocketAddr,
    n: u64,
) -> Value {
    let mut headers = Map::new();
    for (name, value) in &parts.headers {
        let v = String::from_utf8_lossy(value.as_bytes()).into_owned();
        match headers.get_mut(name.as_str()) {
            // API Gateway joins repeated headers with commas.
            Some(Value::String(existing)) => {
                existing.push(',');
                existing.push_str(&v);
            }
            _ => {
                headers.insert(name.as_str().to_string(), Value::String(v));
            }
        }
    }
    let now = cgm_domain::time::now_ms();
    let (body_field, base64) = match std::str::from_utf8(body) {
        _ if body.is_empty() => (Value::Null, false),
        Ok(text) => (Value::String(text.to_string()), false),
        Err(_) => (Value::String(base64::engine::general_purpose::STANDARD.encode(body)), true),
    };
    json!({
        "version": "2.0",
        "routeKey": format!("{} {}", route.method, route.path),
        "rawPath": parts.uri.path(),
        "rawQueryString": parts.uri.query().unwrap_or(""),
        "headers": headers,
        "pathParameters": params,
        "requestContext": {
            "accountId": "000000000000",
            "apiId": "local",
            "domainName": headers.get("host").cloned().unwrap_or(Value::String("127.0.0.1".into())),
            "domainPrefix": "local",
            "http": {
                "method": parts.method.as_str(),
                "path": parts.uri.path(),
                "protocol": "HTTP/1.1",
                "sourceIp": peer.ip().to_string(),
                "userAgent": headers.get("user-agent").cloned().unwrap_or(Value::String(String::new())),
            },
            "requestId": format!("local-{now:x}-{n}"),
            "routeKey": format!("{} {}", route.method, route.path),
            "stage": "$default",
            "timeEpoch": now,
        },
        "body": body_field,
        "isBase64Encoded": base64,
    })
}

fn into_hyper(resp: Response<Body>) -> hyper::Response<Full<Bytes>> {
    let (parts, body) = resp.into_parts();
    let bytes = match body {
        Body::Empty => Bytes::new(),
        Body::Text(t) => Bytes::from(t),
        Body::Binary(b) => Bytes::from(b),
        _ => Bytes::new(),
    };
    hyper::Response::from_parts(parts, Full::new(bytes))
}

fn plain(status: u16, body: &'static str) -> hyper::Response<Full<Bytes>> {
    let mut r = hyper::Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *r.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut().insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static("application/json"));
    r
}

fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned()
}

/// Serves `router` on `listener` until the future is dropped.
pub async fn serve(listener: TcpListener, router: Arc<Router>) {
    loop {
        let Ok((stream, peer)) = listener.accept().await else { continue };
        let router = router.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let router = router.clone();
                async move { Ok::<_, Infallible>(router.dispatch(req, peer).await) }
            });
            let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), svc).await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn handler() -> Handler {
        Arc::new(|_req| Box::pin(async { Response::new(Body::Empty) }))
    }

    #[test]
    fn routes_match_with_path_parameters() {
        let routes = vec![
            Route { function: "F".into(), method: "GET".into(), path: "/partner/users/{open_id}/glucose".into() },
            Route { function: "F".into(), method: "POST".into(), path: "/sinocare/cgm".into() },
        ];
        let r = Router::new(routes, &HashMap::from([("F".to_string(), handler())])).unwrap();
        let (b, p) = r.find("GET", "/partner/users/u%2F1/glucose").unwrap();
        assert_eq!(b.route.path, "/partner/users/{open_id}/glucose");
        assert_eq!(p["open_id"], "u/1");
        assert!(r.find("GET", "/partner/users//glucose").is_none());
        assert!(r.find("GET", "/sinocare/cgm").is_none());
        assert!(r.find("POST", "/sinocare/cgm").is_some());
    }

    #[test]
    fn a_greedy_variable_takes_one_or_more_segments() {
        let routes = vec![Route { function: "F".into(), method: "GET".into(), path: "/socket.io/{proxy+}".into() }];
        let r = Router::new(routes, &HashMap::from([("F".to_string(), handler())])).unwrap();
        assert_eq!(r.find("GET", "/socket.io/a/b").unwrap().1["proxy"], "a/b");
        assert_eq!(r.find("GET", "/socket.io/x").unwrap().1["proxy"], "x");
        assert!(r.find("GET", "/socket.io/").is_none(), "not none");
        assert!(r.find("GET", "/other/x").is_none());
    }

    #[test]
    fn the_most_specific_route_wins_whatever_the_order() {
        let route = |path: &str| Route { function: "F".into(), method: "GET".into(), path: path.into() };
        let routes = vec![route("/api/v3/{proxy+}"), route("/api/v3/{collection}"), route("/api/v3/entries")];
        let r = Router::new(routes, &HashMap::from([("F".to_string(), handler())])).unwrap();
        assert_eq!(r.find("GET", "/api/v3/entries").unwrap().0.route.path, "/api/v3/entries");
        assert_eq!(r.find("GET", "/api/v3/food").unwrap().0.route.path, "/api/v3/{collection}");
        assert_eq!(r.find("GET", "/api/v3/food/x").unwrap().0.route.path, "/api/v3/{proxy+}");
    }

    #[test]
    fn a_route_without_a_handler_is_an_error() {
        let routes = vec![Route { function: "G".into(), method: "GET".into(), path: "/x".into() }];
        assert!(Router::new(routes, &HashMap::new()).is_err());
    }
}
