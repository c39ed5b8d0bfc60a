//! The local stack behind `make dev` and `make test`: DynamoDB Local (the official AWS
//! engine, run by Java), tables created from `infra/template.yaml`'s own definitions, and
//! a loopback HTTP server that turns each request into the API Gateway HTTP API event the
//! Lambda would receive and hands it to the same handler code.
//!
//! Not deployed. Nothing here is used by the Lambdas themselves.

pub mod dynamodb_local;
pub mod server;
pub mod tables;
pub mod template;

use std::path::PathBuf;

/// The repository root, found from this crate's place in it.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}
