//! The domain knows no AWS, by build: no crate of the AWS SDK, the Lambda runtime or an
//! HTTP stack may be among cgm-domain's dependencies, direct or through another crate.
//! (`cargo tree` would say the same; this reads the manifest and the lock file the build
//! uses, so it runs offline and in the normal test run.)

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Crate names (or prefixes ending in `-`) the domain must never build.
const REFUSED: [&str; 8] =
    ["aws-", "lambda_http", "lambda_runtime", "aws_lambda_events", "hyper", "reqwest", "http", "tracing-subscriber"];

fn refused(name: &str) -> bool {
    REFUSED.iter().any(|r| if r.ends_with('-') { name.starts_with(r) } else { name == *r })
}

/// `Cargo.lock`'s packages: name → names of its dependencies.
fn lock_graph(lock: &str) -> BTreeMap<String, Vec<String>> {
    let mut graph = BTreeMap::new();
    let (mut name, mut deps, mut in_deps) = (None::<String>, Vec::new(), false);
    let mut flush = |name: &mut Option<String>, deps: &mut Vec<String>| {
        if let Some(n) = name.take() {
            graph.entry(n).or_insert_with(Vec::new).append(deps);
        }
    };
    for line in lock.lines() {
        let line = line.trim();
        if line == "[[package]]" {
            flush(&mut name, &mut deps);
            in_deps = false;
        } else if let Some(v) = line.strip_prefix("name = ") {
            name = Some(v.trim_matches('"').to_string());
        } else if line.starts_with("dependencies = [") {
            in_deps = !line.ends_with(']');
        } else if in_deps && line == "]" {
            in_deps = false;
        } else if in_deps {
            // `"name"` or `"name version"` or `"name version (source)"`.
            let dep = line.trim_matches([',', '"']).split(' ').next().unwrap_or_default();
            deps.push(dep.to_string());
        }
    }
    flush(&mut name, &mut deps);
    graph
}

#[test]
fn no_aws_lambda_or_http_crate_is_among_the_domains_dependencies() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let lock = std::fs::read_to_string(root.join("Cargo.lock")).expect("the workspace's Cargo.lock");
    let graph = lock_graph(&lock);
    assert!(graph.contains_key("cgm-domain"), "cgm-domain is in Cargo.lock");
    assert!(graph.get("cgm-shared").is_some_and(|d| d.iter().any(|d| d.starts_with("aws-"))), "the reader sees AWS where it is");

    // Everything cgm-domain builds (its normal dependencies, from its own manifest, then
    // the lock file's closure).
    let manifest = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml")).unwrap();
    let direct: Vec<String> = manifest
        .split("[dependencies]")
        .nth(1)
        .expect("a [dependencies] table")
        .split("\n[")
        .next()
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(['.', '=', ' ']).next().filter(|n| !n.is_empty() && !n.starts_with('#')))
        .map(str::to_string)
        .collect();
    assert!(direct.iter().any(|d| d == "chrono"), "the manifest was read: {direct:?}");
    let mut seen = BTreeSet::new();
    let mut todo = direct.clone();
    while let Some(n) = todo.pop() {
        if seen.insert(n.clone()) {
            todo.extend(graph.get(&n).cloned().unwrap_or_default());
        }
    }
    let bad: Vec<&String> = seen.iter().filter(|n| refused(n)).collect();
    assert!(bad.is_empty(), "cgm-domain builds {bad:?}: the domain must know no AWS, Lambda or HTTP");
}
