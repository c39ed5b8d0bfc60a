//! A stand-in for SSM Parameter Store on loopback: enough `GetParameter` (the AWS JSON 1.1
//! protocol) for a function's cold start to read its SecureStrings, so the real bootstraps
//! run as they do in Lambda (`<NAME>_PARAM` naming the secret). Point a function at it with
//! the SDK's own `AWS_ENDPOINT_URL_SSM`.

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;

#[derive(Clone)]
pub struct FakeSsm {
    pub url: String,
    params: Arc<Mutex<HashMap<String, String>>>,
}

impl FakeSsm {
    pub async fn start(params: &[(&str, &str)]) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a loopback port");
        let url = format!("http://{}", listener.local_addr().expect("bound"));
        let params: HashMap<String, String> = params.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let ssm = FakeSsm { url, params: Arc::new(Mutex::new(params)) };
        let server = ssm.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let ssm = server.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                        let ssm = ssm.clone();
                        async move {
                            let body = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                            Ok::<_, Infallible>(ssm.answer(&body))
                        }
                    });
                    let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), svc).await;
                });
            }
        });
        ssm
    }

    fn answer(&self, body: &[u8]) -> hyper::Response<Full<Bytes>> {
        let asked: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let name = asked["Name"].as_str().unwrap_or_default().to_string();
        let (status, reply) = match self.params.lock().unwrap().get(&name) {
            Some(v) => (200, json!({"Parameter": {"Name": name, "Type": "SecureString", "Value": v, "Version": 1}})),
            None => (400, json!({"__type": "ParameterNotFound", "message": "parameter not found"})),
        };
        let mut r = hyper::Response::new(Full::new(Bytes::from(reply.to_string())));
        *r.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::BAD_REQUEST);
        r.headers_mut().insert("content-type", "application/x-amz-json-1.1".parse().unwrap());
        r
    }
}
