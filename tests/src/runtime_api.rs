//! A stand-in for the Lambda Runtime API on loopback, enough to run a real `bootstrap`:
//! it hands out queued events on `GET …/invocation/next` and records when the function
//! first asked (the end of init) and when each response came back. The benchmarks time
//! cold starts with it; the runtime canary test runs the release bootstraps under it.

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::net::TcpListener;
use tokio::sync::Notify;

#[derive(Default)]
struct State {
    queue: VecDeque<(String, String)>,
    first_next: Option<Instant>,
    responses: Vec<(String, Instant, String)>,
    errors: Vec<String>,
}

#[derive(Clone)]
pub struct RuntimeApi {
    state: Arc<Mutex<State>>,
    more: Arc<Notify>,
    done: Arc<Notify>,
    pub addr: SocketAddr,
}

impl RuntimeApi {
    pub async fn start() -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let api = RuntimeApi {
            state: Arc::default(),
            more: Arc::new(Notify::new()),
            done: Arc::new(Notify::new()),
            addr: listener.local_addr()?,
        };
        let server = api.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let api = server.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req| {
                        let api = api.clone();
                        async move { Ok::<_, Infallible>(api.serve(req).await) }
                    });
                    let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), svc).await;
                });
            }
        });
        Ok(api)
    }

    pub fn push(&self, id: String, event: String) {
        self.state.lock().unwrap().queue.push_back((id, event));
        self.more.notify_waiters();
    }

    pub fn first_next(&self) -> Option<Instant> {
        self.state.lock().unwrap().first_next
    }

    pub fn responses(&self) -> Vec<(String, Instant, String)> {
        self.state.lock().unwrap().responses.clone()
    }

    pub fn errors(&self) -> Vec<String> {
        self.state.lock().unwrap().errors.clone()
    }

    /// Waits until `n` responses (or errors) have come back.
    pub async fn wait_for(&self, n: usize) {
        loop {
            let notified = self.done.notified();
            {
                let s = self.state.lock().unwrap();
                if s.responses.len() + s.errors.len() >= n {
                    return;
                }
            }
            notified.await;
        }
    }

    async fn serve(&self, req: hyper::Request<Incoming>) -> hyper::Response<Full<Bytes>> {
        let path = req.uri().path().to_string();
        let now = Instant::now();
        if path.ends_with("/invocation/next") {
            {
                let mut s = self.state.lock().unwrap();
                s.first_next.get_or_insert(now);
            }
            loop {
                let notified = self.more.notified();
                if let Some((id, body)) = self.state.lock().unwrap().queue.pop_front() {
                    let deadline = chrono::Utc::now().timestamp_millis() + 4_000;
                    let mut r = hyper::Response::new(Full::new(Bytes::from(body)));
                    let h = r.headers_mut();
                    h.insert("lambda-runtime-aws-request-id", id.parse().unwrap());
                    h.insert("lambda-runtime-deadline-ms", deadline.to_string().parse().unwrap());
                    h.insert(
                        "lambda-runtime-invoked-function-arn",
                        "arn:aws:lambda:local:000000000000:function:push".parse().unwrap(),
                    );
                    return r;
                }
                notified.await;
            }
        }
        let body = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
        let text = String::from_utf8_lossy(&body).into_owned();
        {
            let mut s = self.state.lock().unwrap();
            if path.ends_with("/response") {
                let id = path.trim_end_matches("/response").rsplit('/').next().unwrap_or_default().to_string();
                s.responses.push((id, now, text));
            } else {
                s.errors.push(format!("{path}: {text}"));
            }
        }
        self.done.notify_waiters();
        let mut r = hyper::Response::new(Full::new(Bytes::from_static(b"{}")));
        *r.status_mut() = hyper::StatusCode::ACCEPTED;
        r
    }
}
