//! Shared set-up for the integration tests: a DynamoDB Local to talk to (started by
//! `make test`, found through `DYNAMODB_ENDPOINT`), tables created from the template under
//! a prefix of each test's own so tests run in parallel, real API Gateway events, and log
//! capture.

/// The stand-in EHR lives in `tools/ehr`, so `make dev` and the benchmarks run it too.
pub use cgm_ehr as fake_ehr;
pub mod alert_reference;
pub mod fake_partner;
pub mod fake_ssm;
pub mod fhir_validator;
pub mod filter_pattern;
pub mod net;
pub mod runtime_api;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use cgm_local::tables;
use cgm_local::template::Template;
use cgm_shared::Config;
use lambda_http::Request;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;

pub type Item = HashMap<String, AttributeValue>;

/// The seed's example payload, verbatim.
pub const SEED_EXAMPLE: &str = include_str!("../../crates/domain/tests/data/seed-example.json");
/// A real API Gateway HTTP API (payload 2.0) event for the push route.
pub const PUSH_EVENT: &str = include_str!("../../functions/push/tests/data/push-event.json");

/// The DynamoDB Local these tests use. Fails, naming what is missing, when there is none.
pub fn endpoint() -> String {
    std::env::var("DYNAMODB_ENDPOINT").ok().filter(|e| !e.is_empty()).unwrap_or_else(|| {
        panic!(
            "these tests need DynamoDB Local: run them with `make test` (it starts one on a free port), \
             or start one yourself and set DYNAMODB_ENDPOINT=http://127.0.0.1:<port>"
        )
    })
}

/// The tests' own reads (whole-table scans) on a busy 2-core machine: patient, unlike the
/// push path's limits.
const TEST_CALLS: cgm_shared::aws::CallLimits = cgm_shared::aws::CallLimits {
    connect: std::time::Duration::from_secs(5),
    attempt: std::time::Duration::from_secs(30),
    operation: std::time::Duration::from_secs(60),
    max_attempts: 3,
};

/// A fresh set of tables, named `<random prefix><LogicalId>`, created from the template.
pub struct Stack {
    pub endpoint: String,
    pub client: Client,
    pub table_vars: HashMap<String, String>,
}

impl Stack {
    pub async fn new() -> Self {
        Self::new_at(&endpoint()).await
    }

    /// The same on another DynamoDB Local (one a test starts and stops itself).
    pub async fn new_at(endpoint: &str) -> Self {
        let endpoint = endpoint.to_string();
        let cfg = Config::from_lookup(|k| (k == "DYNAMODB_ENDPOINT").then(|| endpoint.clone())).unwrap();
        let sdk = cgm_shared::aws::sdk_config(&cfg).await;
        let client = cgm_shared::aws::dynamodb(&sdk, Some(&endpoint), TEST_CALLS);
        let prefix = format!("t{}-", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        let template = Template::load_default().expect("infra/template.yaml");
        let table_vars = tables::create_from_template(&client, &template, &prefix)
            .await
            .unwrap_or_else(|e| panic!("creating tables in DynamoDB Local at {endpoint} failed: {e}"));
        Stack { endpoint, client, table_vars }
    }

    /// The configuration a function would read, with these tables and `extra` settings.
    pub fn config(&self, extra: &[(&str, &str)]) -> Config {
        self.config_at(&self.endpoint, extra)
    }

    /// The same, pointed at another endpoint (an unreachable or slow one).
    pub fn config_at(&self, endpoint: &str, extra: &[(&str, &str)]) -> Config {
        let mut env: HashMap<String, String> = self.table_vars.clone();
        env.insert("DYNAMODB_ENDPOINT".into(), endpoint.into());
        for (k, v) in extra {
            env.insert(k.to_string(), v.to_string());
        }
        Config::from_lookup(|k| env.get(k).cloned()).expect("test configuration")
    }

    pub fn table(&self, var: &str) -> &str {
        &self.table_vars[var]
    }

    /// A client of DynamoDB Local's stream API.
    pub async fn streams(&self) -> aws_sdk_dynamodbstreams::Client {
        let cfg = self.config(&[]);
        let sdk = cgm_shared::aws::sdk_config(&cfg).await;
        aws_sdk_dynamodbstreams::Client::from_conf(
            aws_sdk_dynamodbstreams::config::Builder::from(&sdk).endpoint_url(&self.endpoint).build(),
        )
    }

    /// Every record of a table's stream so far, from each shard's start: (stream ARN,
    /// [(shard id, its records)]), shards with no record left out.
    pub async fn stream_records(
        &self,
        var: &str,
    ) -> (String, Vec<(String, Vec<aws_sdk_dynamodbstreams::types::Record>)>) {
        let streams = self.streams().await;
        let table = self.client.describe_table().table_name(self.table(var)).send().await.expect("describe table");
        let arn = table.table.and_then(|t| t.latest_stream_arn).expect("the table has a stream");
        let shards = streams
            .describe_stream()
            .stream_arn(&arn)
            .send()
            .await
            .expect("describe stream")
            .stream_description
            .and_then(|d| d.shards)
            .unwrap_or_default();
        let mut out = Vec::new();
        for shard in shards {
            let id = shard.shard_id().expect("a shard id").to_string();
            let it = streams
                .get_shard_iterator()
                .stream_arn(&arn)
                .shard_id(&id)
                .shard_iterator_type(aws_sdk_dynamodbstreams::types::ShardIteratorType::TrimHorizon)
                .send()
                .await
                .expect("a shard iterator")
                .shard_iterator;
            let records = streams.get_records().set_shard_iterator(it).send().await.expect("get records").records;
            let records = records.unwrap_or_default();
            if !records.is_empty() {
                out.push((id, records));
            }
        }
        (arn, out)
    }

    /// Every item of a table (tests only: the tables are tiny).
    pub async fn scan(&self, var: &str) -> Vec<Item> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .client
                .scan()
                .table_name(self.table(var))
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .expect("scan");
            items.extend(out.items.unwrap_or_default());
            start = out.last_evaluated_key;
            if start.is_none() {
                return items;
            }
        }
    }
}

/// Serves every template route on an ephemeral loopback port, with the handlers built from
/// `cfg` as each Lambda's cold start builds them (what `make dev` runs); the base URL.
pub async fn serve_locally(cfg: &Config) -> String {
    let handlers = cgm_local::handlers(cfg).await.expect("handlers from the test configuration");
    let router =
        cgm_local::server::Router::new(Template::load_default().expect("infra/template.yaml").routes(), &handlers)
            .expect("every template route has a handler");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a loopback port");
    let base = format!("http://{}", listener.local_addr().expect("bound"));
    tokio::spawn(cgm_local::server::serve(listener, Arc::new(router)));
    base
}

/// A poppler tool (`pdfinfo`, `pdftotext`, `pdffonts`, `pdftoppm`) run on `pdf`: what it
/// printed. A missing tool or a PDF it refuses fails the test, saying which.
pub fn poppler(tool: &str, args: &[&str], pdf: &std::path::Path, tail: &[&str]) -> String {
    let out = std::process::Command::new(tool).args(args).arg(pdf).args(tail).output().unwrap_or_else(|e| {
        panic!("{tool} (poppler-utils) is needed to read the PDF: run tools/install.sh pdf-tools ({e})")
    });
    assert!(out.status.success(), "{tool} refused the PDF: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// What `pdfinfo` says of a base64 PDF (a FHIR `presentedForm`'s `data`).
pub fn pdfinfo_of_base64(data: &str) -> String {
    use base64::Engine as _;
    let pdf = base64::engine::general_purpose::STANDARD.decode(data).expect("base64 PDF data");
    let dir = TempDir::new("pdf");
    let file = dir.path().join("report.pdf");
    std::fs::write(&file, pdf).expect("writing the PDF");
    poppler("pdfinfo", &[], &file, &[])
}

/// A folder under the system's temporary directory, removed when dropped.
pub struct TempDir(std::path::PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        let p = std::env::temp_dir().join(format!("cgm-{tag}-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&p).expect("creating a temporary folder");
        TempDir(p)
    }

    pub fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A push as API Gateway delivers it: the real event shape with this body, query string
/// and source address.
pub fn push_request(body: &str, query: &str, source_ip: &str) -> Request {
    let mut e = api_event("POST", "/sinocare/cgm", "/sinocare/cgm", &[], query, Some(body));
    e["requestContext"]["http"]["sourceIp"] = json!(source_ip);
    lambda_http::request::from_str(&e.to_string()).expect("a valid API Gateway event")
}

/// Any route's request as API Gateway delivers it: `route` is the template path (with
/// `{params}`), `path` the concrete one.
pub fn api_request(
    method: &str,
    route: &str,
    path: &str,
    params: &[(&str, &str)],
    query: &str,
    body: Option<&str>,
) -> Request {
    let e = api_event(method, route, path, params, query, body);
    lambda_http::request::from_str(&e.to_string()).expect("a valid API Gateway event")
}

/// The API Gateway (HTTP API, payload 2.0) event of [`api_request`], as JSON: what a
/// Lambda Runtime API hands a function. `queryStringParameters` joins a repeated key's
/// values with commas, as API Gateway does.
pub fn api_event(
    method: &str,
    route: &str,
    path: &str,
    params: &[(&str, &str)],
    query: &str,
    body: Option<&str>,
) -> Value {
    let mut e: Value = serde_json::from_str(PUSH_EVENT).unwrap();
    let route_key = format!("{method} {route}");
    e["routeKey"] = json!(route_key);
    e["rawPath"] = json!(path);
    e["rawQueryString"] = json!(query);
    let mut q = serde_json::Map::new();
    for (k, v) in query.split('&').filter_map(|kv| kv.split_once('=')) {
        match q.get_mut(k) {
            Some(Value::String(s)) => *s = format!("{s},{v}"),
            _ => drop(q.insert(k.to_string(), json!(v))),
        }
    }
    e["queryStringParameters"] = q.into();
    e["pathParameters"] =
        params.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>().into();
    e["requestContext"]["routeKey"] = json!(route_key);
    e["requestContext"]["http"]["method"] = json!(method);
    e["requestContext"]["http"]["path"] = json!(path);
    e["requestContext"]["requestId"] = json!(uuid::Uuid::new_v4().to_string());
    e["body"] = body.map_or(Value::Null, |b| json!(b));
    e
}

/// The seed example with fields of `data` replaced (`null` values are set, not removed).
pub fn seed_with(patch: Value) -> String {
    let mut body: Value = serde_json::from_str(SEED_EXAMPLE).unwrap();
    for (k, v) in patch.as_object().expect("patch is an object") {
        body["data"][k] = v.clone();
    }
    body.to_string()
}

/// The seed example with fields of `data` removed.
pub fn seed_without(fields: &[&str]) -> String {
    let mut body: Value = serde_json::from_str(SEED_EXAMPLE).unwrap();
    for f in fields {
        body["data"].as_object_mut().unwrap().remove(*f);
    }
    body.to_string()
}

/// The status and JSON body of a handler's reply.
pub fn reply_of(resp: &lambda_http::Response<lambda_http::Body>) -> (u16, Value) {
    (resp.status().as_u16(), serde_json::from_slice(resp.body()).expect("JSON reply"))
}

/// Every log line written while the returned guard lives (on this thread, which is where a
/// `#[tokio::test]` runs everything), at `level` for every target, the AWS SDK's included.
pub fn capture_logs(level: &str) -> (LogBuffer, tracing::subscriber::DefaultGuard) {
    let buf = LogBuffer::default();
    let writer = buf.clone();
    let sub = cgm_shared::telemetry::subscriber(true, Some(level), move || writer.clone());
    let guard = tracing::subscriber::set_default(sub);
    (buf, guard)
}

pub use cgm_shared::telemetry::Captured as LogBuffer;

pub fn s<'a>(item: &'a Item, k: &str) -> Option<&'a str> {
    item.get(k).and_then(|v| v.as_s().ok()).map(String::as_str)
}

pub fn n<'a>(item: &'a Item, k: &str) -> Option<&'a str> {
    item.get(k).and_then(|v| v.as_n().ok()).map(String::as_str)
}
