//! Reads what the local stack needs from the SAM template: the DynamoDB tables, which
//! environment variable names each table, and the HTTP API routes of each function.

use serde_norway::{Mapping, Value};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path} is not valid YAML: {source}")]
    Yaml { path: PathBuf, source: serde_norway::Error },
    #[error("template resource {resource}: {what}")]
    Shape { resource: String, what: String },
}

#[derive(Debug, Clone, PartialEq)]
pub struct KeyPart {
    pub name: String,
    /// `HASH` or `RANGE`.
    pub key_type: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct IndexDef {
    pub name: String,
    pub key_schema: Vec<KeyPart>,
    pub projection_type: String,
    pub non_key_attributes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TableDef {
    pub logical_id: String,
    /// (name, `S` | `N` | `B`)
    pub attributes: Vec<(String, String)>,
    pub key_schema: Vec<KeyPart>,
    pub global_indexes: Vec<IndexDef>,
    pub stream_view_type: Option<String>,
    /// The TTL attribute, when the table has one.
    pub ttl_attribute: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    pub function: String,
    pub method: String,
    pub path: String,
}

/// A CloudWatch Logs metric filter of the template.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricFilter {
    pub logical_id: String,
    /// The log group's logical id (`!Ref`), when it names one.
    pub log_group: Option<String>,
    pub pattern: String,
    pub metric: String,
    /// `MetricValue`: a number, or `$.field` of the matched line.
    pub value: String,
}

impl MetricFilter {
    /// What the metric gets from a line the pattern matched: the constant, or the line's
    /// field (`None` when the line has no such number).
    pub fn value_of(&self, line: &serde_json::Value) -> Option<f64> {
        match self.value.strip_prefix("$.") {
            Some(field) => line.get(field)?.as_f64(),
            None => self.value.parse().ok(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Template {
    resources: Mapping,
    globals_env: Mapping,
}

impl Template {
    /// `infra/template.yaml` of this repository.
    pub fn default_path() -> PathBuf {
        crate::repo_root().join("infra/template.yaml")
    }

    pub fn load_default() -> Result<Self, TemplateError> {
        Self::load(&Self::default_path())
    }

    pub fn load(path: &Path) -> Result<Self, TemplateError> {
        let text = std::fs::read_to_string(path).map_err(|source| TemplateError::Read { path: path.into(), source })?;
        Self::parse(&text).map_err(|source| TemplateError::Yaml { path: path.into(), source })
    }

    pub fn parse(text: &str) -> Result<Self, serde_norway::Error> {
        let root: Value = serde_norway::from_str(text)?;
        let resources = root.get("Resources").and_then(Value::as_mapping).cloned().unwrap_or_default();
        let globals_env = root
            .get("Globals")
            .and_then(|g| g.get("Function"))
            .and_then(|f| f.get("Environment"))
            .and_then(|e| e.get("Variables"))
            .and_then(Value::as_mapping)
            .cloned()
            .unwrap_or_default();
        Ok(Template { resources, globals_env })
    }

    fn resources_of_type<'a>(&'a self, ty: &'a str) -> impl Iterator<Item = (&'a str, &'a Value)> + 'a {
        self.resources
            .iter()
            .filter(move |(_, v)| v.get("Type").and_then(Value::as_str) == Some(ty))
            .map(|(k, v)| (k.as_str().unwrap_or_default(), v))
    }

    /// Every `AWS::DynamoDB::Table`, with what DynamoDB Local needs to create it.
    /// Billing, encryption, point-in-time recovery and deletion protection are cloud-only.
    pub fn tables(&self) -> Result<Vec<TableDef>, TemplateError> {
        self.resources_of_type("AWS::DynamoDB::Table").map(|(id, res)| table_def(id, res)).collect()
    }

    /// (environment variable, table logical id) for every variable set to `!Ref <Table>`,
    /// in `Globals` or on a function.
    pub fn table_variables(&self) -> Vec<(String, String)> {
        let tables: Vec<&str> = self.resources_of_type("AWS::DynamoDB::Table").map(|(id, _)| id).collect();
        let mut out = Vec::new();
        let function_envs = self
            .resources_of_type("AWS::Serverless::Function")
            .filter_map(|(_, f)| f.get("Properties")?.get("Environment")?.get("Variables")?.as_mapping());
        for env in std::iter::once(&self.globals_env).chain(function_envs) {
            for (k, v) in env {
                let (Some(var), Some(target)) = (k.as_str(), ref_target(v)) else { continue };
                if tables.contains(&target) && !out.iter().any(|(v, _): &(String, String)| v == var) {
                    out.push((var.to_string(), target.to_string()));
                }
            }
        }
        out
    }

    /// Every `HttpApi` event of every function.
    pub fn routes(&self) -> Vec<Route> {
        let mut out = Vec::new();
        for (id, f) in self.resources_of_type("AWS::Serverless::Function") {
            let Some(events) = f.get("Properties").and_then(|p| p.get("Events")).and_then(Value::as_mapping) else {
                continue;
            };
            for ev in events.values() {
                if ev.get("Type").and_then(Value::as_str) != Some("HttpApi") {
                    continue;
                }
                let p = ev.get("Properties");
                let get = |k: &str| p.and_then(|p| p.get(k)).and_then(Value::as_str).map(str::to_string);
                if let (Some(method), Some(path)) = (get("Method"), get("Path")) {
                    out.push(Route { function: id.to_string(), method: method.to_ascii_uppercase(), path });
                }
            }
        }
        out
    }

    /// Every `AWS::Logs::MetricFilter`.
    pub fn metric_filters(&self) -> Vec<MetricFilter> {
        self.resources_of_type("AWS::Logs::MetricFilter")
            .filter_map(|(id, f)| {
                let p = f.get("Properties")?;
                let transformation = p.get("MetricTransformations")?.as_sequence()?.first()?;
                Some(MetricFilter {
                    logical_id: id.to_string(),
                    log_group: p.get("LogGroupName").and_then(ref_target).map(str::to_string),
                    pattern: p.get("FilterPattern")?.as_str()?.to_string(),
                    metric: transformation.get("MetricName")?.as_str()?.to_string(),
                    value: transformation.get("MetricValue")?.as_str()?.to_string(),
                })
            })
            .collect()
    }

    /// Logical ids of every function with a `rust-cargolambda` build, and its `CodeUri`.
    pub fn rust_functions(&self) -> Vec<(String, String)> {
        self.resources_of_type("AWS::Serverless::Function")
            .filter(|(_, f)| {
                f.get("Metadata").and_then(|m| m.get("BuildMethod")).and_then(Value::as_str) == Some("rust-cargolambda")
            })
            .filter_map(|(id, f)| {
                let uri = f.get("Properties")?.get("CodeUri")?.as_str()?;
                Some((id.to_string(), uri.to_string()))
            })
            .collect()
    }
}

/// `!Ref X` or `{Ref: X}` → `X`.
fn ref_target(v: &Value) -> Option<&str> {
    match v {
        Value::Tagged(t) if t.tag == "Ref" => t.value.as_str(),
        Value::Mapping(m) if m.len() == 1 => m.get("Ref").and_then(Value::as_str),
        _ => None,
    }
}

fn table_def(id: &str, res: &Value) -> Result<TableDef, TemplateError> {
    let shape = |what: &str| TemplateError::Shape { resource: id.to_string(), what: what.to_string() };
    let props = res.get("Properties").ok_or_else(|| shape("no Properties"))?;
    let str_of = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
    let seq = |v: &Value, k: &str| v.get(k).and_then(Value::as_sequence).cloned().unwrap_or_default();
    let keys = |v: &Value| -> Result<Vec<KeyPart>, TemplateError> {
        seq(v, "KeySchema")
            .iter()
            .map(|k| {
                Ok(KeyPart {
                    name: str_of(k, "AttributeName").ok_or_else(|| shape("KeySchema entry without AttributeName"))?,
                    key_type: str_of(k, "KeyType").ok_or_else(|| shape("KeySchema entry without KeyType"))?,
                })
            })
            .collect()
    };
    let attributes = seq(props, "AttributeDefinitions")
        .iter()
        .map(|a| {
            Ok((
                str_of(a, "AttributeName").ok_or_else(|| shape("attribute without AttributeName"))?,
                str_of(a, "AttributeType").ok_or_else(|| shape("attribute without AttributeType"))?,
            ))
        })
        .collect::<Result<Vec<_>, TemplateError>>()?;
    let global_indexes = seq(props, "GlobalSecondaryIndexes")
        .iter()
        .map(|g| {
            let projection = g.get("Projection");
            Ok(IndexDef {
                name: str_of(g, "IndexName").ok_or_else(|| shape("index without IndexName"))?,
                key_schema: keys(g)?,
                projection_type: projection.and_then(|p| str_of(p, "ProjectionType")).unwrap_or_else(|| "ALL".into()),
                non_key_attributes: projection
                    .map(|p| seq(p, "NonKeyAttributes").iter().filter_map(|a| a.as_str().map(str::to_string)).collect())
                    .unwrap_or_default(),
            })
        })
        .collect::<Result<Vec<_>, TemplateError>>()?;
    let key_schema = keys(props)?;
    if key_schema.is_empty() {
        return Err(shape("no KeySchema"));
    }
    Ok(TableDef {
        logical_id: id.to_string(),
        attributes,
        key_schema,
        global_indexes,
        stream_view_type: props.get("StreamSpecification").and_then(|s| str_of(s, "StreamViewType")),
        ttl_attribute: props
            .get("TimeToLiveSpecification")
            .filter(|t| t.get("Enabled").and_then(Value::as_bool) == Some(true))
            .and_then(|t| str_of(t, "AttributeName")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_projects_template() {
        let t = Template::load_default().unwrap();
        let tables = t.tables().unwrap();
        let readings = tables.iter().find(|t| t.logical_id == "ReadingsTable").expect("ReadingsTable");
        assert_eq!(readings.key_schema, vec![KeyPart { name: "testId".into(), key_type: "HASH".into() }]);
        assert_eq!(readings.global_indexes[0].name, cgm_shared::store::attr::DEVICE_TIME_INDEX);
        assert_eq!(readings.stream_view_type.as_deref(), Some("NEW_IMAGE"));

        let vars = t.table_variables();
        for var in cgm_shared::config::Tables::VARS {
            assert!(vars.iter().any(|(v, _)| v == var), "{var} is not set from a table in the template");
        }
        assert!(t.routes().contains(&Route {
            function: "PushFunction".into(),
            method: "POST".into(),
            path: "/sinocare/cgm".into()
        }));
    }

    /// Every crate under `functions/` that builds a Lambda (has a `src/main.rs`) has a
    /// template function built from it, and every template function's `CodeUri` is such
    /// a crate: a new Lambda cannot be forgotten in the stack, nor a stale resource kept.
    #[test]
    fn every_lambda_crate_has_a_template_function_and_back() {
        // functions/ holds the deployed Lambdas and nothing else; libraries are in crates/.
        let root = crate::repo_root();
        let mut crates: Vec<String> = std::fs::read_dir(root.join("functions"))
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.path().is_dir())
            .map(|e| {
                assert!(
                    e.path().join("src/main.rs").is_file(),
                    "{:?} in functions/ is no Lambda (a main.rs)",
                    e.path()
                );
                format!("functions/{}", e.file_name().to_string_lossy())
            })
            .collect();
        let libraries: Vec<_> = std::fs::read_dir(root.join("crates")).unwrap().filter_map(|e| e.ok()).collect();
        assert!(!libraries.is_empty());
        for e in libraries {
            assert!(
                !e.path().join("src/main.rs").exists(),
                "{:?} in crates/ is a binary: Lambdas go in functions/",
                e.path()
            );
        }
        crates.sort();
        let mut built: Vec<String> = Template::load_default()
            .unwrap()
            .rust_functions()
            .into_iter()
            .map(|(id, uri)| {
                let uri = uri.trim_start_matches("../").trim_end_matches('/').to_string();
                assert!(root.join(&uri).join("Cargo.toml").is_file(), "{id}: CodeUri {uri} is not a crate");
                uri
            })
            .collect();
        built.sort();
        assert!(!crates.is_empty());
        assert_eq!(crates, built, "the crates under functions/ vs rust-cargolambda functions in the template");
    }

    #[test]
    fn understands_both_ref_forms_and_ttl() {
        let t = Template::parse(
            r#"
Globals: {Function: {Environment: {Variables: {A_TABLE: !Ref A, OTHER: x}}}}
Resources:
  A:
    Type: AWS::DynamoDB::Table
    Properties:
      AttributeDefinitions: [{AttributeName: id, AttributeType: S}]
      KeySchema: [{AttributeName: id, KeyType: HASH}]
      TimeToLiveSpecification: {AttributeName: expiresAt, Enabled: true}
  F:
    Type: AWS::Serverless::Function
    Properties:
      Environment: {Variables: {B_TABLE: {Ref: A}}}
"#,
        )
        .unwrap();
        assert_eq!(t.table_variables(), vec![("A_TABLE".into(), "A".into()), ("B_TABLE".into(), "A".into())]);
        assert_eq!(t.tables().unwrap()[0].ttl_attribute.as_deref(), Some("expiresAt"));
    }
}
