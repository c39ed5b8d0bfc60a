//! The domain knows no AWS, by build: no crate of the AWS SDK, the Lambda runtime or an
//! HTTP stack may be among cgm-domain's dependencies, direct or through another crate; and
//! the libraries built on the domain alone (the AGP, the FHIR profiles) never reach the SDK
//! nor `cgm-shared`. (`cargo tree` would say the same; this reads the lock file the build
//! uses, whose entries name every dependency, dev ones included, so it runs offline in the
//! normal test run.)

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Crate names (or prefixes ending in `-`) the domain must never build.
const NO_AWS_LAMBDA_OR_HTTP: &[&str] = &[
    "aws-",
    "lambda_http",
    "lambda_runtime",
    "aws_lambda_events",
    "hyper",
    "reqwest",
    "http",
    "tracing-subscriber",
    "cgm-shared",
];
/// What the libraries on the domain alone must never build.
const NO_AWS: &[&str] = &["aws-", "cgm-shared"];

fn refused(name: &str, list: &[&str]) -> bool {
    list.iter().any(|r| if r.ends_with('-') { name.starts_with(r) } else { name == *r })
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

/// Every crate `name` builds, by the lock file.
fn closure(graph: &BTreeMap<String, Vec<String>>, name: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut todo = graph.get(name).cloned().unwrap_or_else(|| panic!("{name} is in Cargo.lock"));
    while let Some(n) = todo.pop() {
        if seen.insert(n.clone()) {
            todo.extend(graph.get(&n).cloned().unwrap_or_default());
        }
    }
    seen
}

#[test]
fn no_aws_lambda_or_http_crate_is_among_the_domains_dependencies_nor_aws_among_its_libraries() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let lock = std::fs::read_to_string(root.join("Cargo.lock")).expect("the workspace's Cargo.lock");
    let graph = lock_graph(&lock);
    assert!(closure(&graph, "cgm-shared").iter().any(|d| d == "aws-sdk-dynamodb"), "the reader sees AWS where it is");
    assert!(closure(&graph, "cgm-domain").contains("chrono"), "the reader follows the domain's dependencies");

    for (krate, list) in [("cgm-domain", NO_AWS_LAMBDA_OR_HTTP), ("cgm-agp", NO_AWS), ("cgm-fhir-profiles", NO_AWS)] {
        let bad: Vec<String> = closure(&graph, krate).into_iter().filter(|n| refused(n, list)).collect();
        assert!(bad.is_empty(), "{krate} builds {bad:?}: it must know no {list:?}");
    }
}
