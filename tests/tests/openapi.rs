//! docs/openapi.yaml against the SAM template: every HttpApi route is documented, and
//! nothing is documented that the template does not serve, and every template route is one
//! its handler knows (that last test builds the handlers, so it needs DynamoDB Local).

use cgm_local::template::Template;
use serde_norway::Value;
use std::collections::BTreeSet;

/// The operation keys of an OpenAPI path item; anything else there (`parameters`,
/// `summary`, …) is not an operation.
const METHODS: [&str; 8] = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

fn openapi() -> Value {
    let path = cgm_local::repo_root().join("docs/openapi.yaml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{} is not valid YAML: {e}", path.display()))
}

/// (METHOD, path, operation) of every operation in the document.
fn operations(doc: &Value) -> Vec<(String, String, &Value)> {
    let paths = doc.get("paths").and_then(Value::as_mapping).expect("docs/openapi.yaml has a paths mapping");
    let mut out = Vec::new();
    for (path, item) in paths {
        let path = path.as_str().expect("every path is a string");
        let Some(item) = item.as_mapping() else { continue };
        for (key, op) in item {
            if let Some(m) = key.as_str().filter(|k| METHODS.contains(k)) {
                out.push((m.to_ascii_uppercase(), path.to_string(), op));
            }
        }
    }
    out
}

fn listed(set: &BTreeSet<(String, String)>) -> String {
    set.iter().map(|(m, p)| format!("\n  {m} {p}")).collect()
}

#[test]
fn openapi_documents_exactly_the_template_routes() {
    // Given the template's HttpApi routes and the document's operations
    let template = Template::load_default().expect("infra/template.yaml loads");
    let served: BTreeSet<(String, String)> = template.routes().into_iter().map(|r| (r.method, r.path)).collect();
    let doc = openapi();
    let documented: BTreeSet<(String, String)> = operations(&doc).into_iter().map(|(m, p, _)| (m, p)).collect();

    // Then both name the same (method, path) pairs
    assert!(!served.is_empty(), "the template has no HttpApi routes: is the parser still reading Events?");
    let undocumented: BTreeSet<_> = served.difference(&documented).cloned().collect();
    let unserved: BTreeSet<_> = documented.difference(&served).cloned().collect();
    assert!(
        undocumented.is_empty() && unserved.is_empty(),
        "docs/openapi.yaml and infra/template.yaml disagree.\nServed but not documented:{}\nDocumented but not served:{}",
        if undocumented.is_empty() { " none".to_string() } else { listed(&undocumented) },
        if unserved.is_empty() { " none".to_string() } else { listed(&unserved) },
    );
}

#[test]
fn every_operation_has_its_own_operation_id() {
    let doc = openapi();
    let mut seen = BTreeSet::new();
    for (method, path, op) in operations(&doc) {
        let id = op.get("operationId").and_then(Value::as_str);
        let id = id.unwrap_or_else(|| panic!("{method} {path} has no operationId"));
        assert!(seen.insert(id.to_string()), "operationId {id} is used twice (again on {method} {path})");
    }
}

/// The third side of the triangle: every template route is one its function's edge
/// recognises. A route the handler does not know answers "no such route" / "route not
/// found" (404) without touching storage; any other answer means the handler routed it.
#[tokio::test]
async fn every_template_route_is_served_by_its_function() {
    let stack = cgm_tests::Stack::new().await;
    // The partner routes that call upstream meet a refused port at once.
    let upstream = cgm_tests::net::refused_url();
    let cfg = stack.config(&[("PARTNER_API_BASE_URL", &upstream)]);
    let handlers = cgm_local::handlers(&cfg).await.expect("handlers from the test configuration");
    let mut unknown = Vec::new();
    for route in Template::load_default().expect("infra/template.yaml").routes() {
        let path = route.path.replace(['{', '}'], "");
        let params: Vec<(String, String)> = route
            .path
            .split('/')
            .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|n| (n.to_string(), format!("{n}-1")))
            .collect();
        let params: Vec<(&str, &str)> = params.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let req = cgm_tests::api_request(&route.method, &route.path, &path, &params, "", Some("{}"));
        let resp = (handlers[&route.function])(req).await;
        let body = String::from_utf8_lossy(resp.body()).into_owned();
        if body.contains("no such route") || body.contains("route not found") {
            unknown.push(format!("{} {} ({}): {body}", route.method, route.path, route.function));
        }
    }
    assert!(unknown.is_empty(), "template routes their handler does not know:\n{}", unknown.join("\n"));
}
