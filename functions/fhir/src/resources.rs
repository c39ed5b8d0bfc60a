//! The read API's own FHIR resources: the searchset `Bundle` its searches answer,
//! `OperationOutcome` for its errors, and its `CapabilityStatement`. The profiled resources
//! themselves are in `cgm-fhir-profiles`, which the submitter shares.

use cgm_fhir_profiles::{FHIR_VERSION, profile};
use serde_json::{Value, json};

pub const FHIR_JSON: &str = "application/fhir+json; charset=utf-8";

/// The FHIR issue type of an error (`OperationOutcome.issue.code`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IssueType {
    Invalid,
    NotSupported,
    NotFound,
    Forbidden,
    Processing,
    Transient,
    Timeout,
    Exception,
}

impl IssueType {
    fn code(self) -> &'static str {
        match self {
            IssueType::Invalid => "invalid",
            IssueType::NotSupported => "not-supported",
            IssueType::NotFound => "not-found",
            IssueType::Forbidden => "forbidden",
            IssueType::Processing => "processing",
            IssueType::Transient => "transient",
            IssueType::Timeout => "timeout",
            IssueType::Exception => "exception",
        }
    }
}

/// One error as an `OperationOutcome`.
pub fn operation_outcome(kind: IssueType, diagnostics: &str) -> Value {
    json!({
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": kind.code(), "diagnostics": diagnostics}],
    })
}

/// Why an entry is in a searchset: it matched, or a match refers to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SearchMode {
    Match,
    Include,
}

/// One searchset entry, serialized: a search page renders each once, for its size too.
pub fn search_entry(full_url: &str, resource: &Value, mode: SearchMode) -> String {
    let mode = match mode {
        SearchMode::Match => "match",
        SearchMode::Include => "include",
    };
    json!({"fullUrl": full_url, "resource": resource, "search": {"mode": mode}}).to_string()
}

/// A `searchset` Bundle of serialized [`search_entry`]s, with `self` and (while more follow)
/// `next` links.
pub fn searchset(self_url: &str, next_url: Option<&str>, entries: &[String]) -> String {
    let mut link = vec![json!({"relation": "self", "url": self_url})];
    if let Some(n) = next_url {
        link.push(json!({"relation": "next", "url": n}));
    }
    let head = json!({"resourceType": "Bundle", "type": "searchset", "link": link}).to_string();
    if entries.is_empty() {
        return head;
    }
    let mut out = String::with_capacity(head.len() + entries.iter().map(|e| e.len() + 1).sum::<usize>() + 16);
    out.push_str(&head[..head.len() - 1]);
    out.push_str(r#","entry":["#);
    for (i, e) in entries.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(e);
    }
    out.push_str("]}");
    out
}

/// Search parameters of `Observation` this server takes, with what each does.
pub const OBSERVATION_SEARCH: [(&str, &str, &str); 5] = [
    ("device", "reference", "The sensor: Device/<id> or <id>. Required."),
    ("date", "date", "effective time; ge, gt, le, lt or eq with a date or a dateTime with its offset; repeatable"),
    (
        "code",
        "token",
        "105272-9 (readings in mmol/L), 99504-3 (readings in mg/dL) or 107931-8 (a summary over whole local days, \
         with its members included), with or without http://loinc.org|",
    ),
    ("include-warm-up", "token", "true to add warm-up readings, which carry a dataAbsentReason instead of a value"),
    ("_count", "number", "readings per page, 1 to 1000 (default 100); the next page is the bundle's next link"),
];

/// Search parameters of `DiagnosticReport` this server takes.
pub const REPORT_SEARCH: [(&str, &str, &str); 3] = [
    ("device", "reference", "The sensor: Device/<id> or <id>. Required."),
    ("date", "date", "the summary's whole local days: ge<YYYY-MM-DD> and le<YYYY-MM-DD> (default the last 14)"),
    ("code", "token", "107931-8 (the CGM summary's PDF report), with or without http://loinc.org|"),
];

/// The server's `CapabilityStatement` (`GET [base]/metadata`).
pub fn capability_statement(base: &str, version: &str, date: &str) -> Value {
    let observation_profiles: Vec<String> = [
        "cgm-sensor-reading-moles-per-volume",
        "cgm-sensor-reading-mass-per-volume",
        "cgm-summary",
        "cgm-summary-mean-glucose-moles-per-volume",
        "cgm-summary-mean-glucose-mass-per-volume",
        "cgm-summary-times-in-ranges",
        "cgm-summary-gmi",
        "cgm-summary-coefficient-of-variation",
        "cgm-summary-days-of-wear",
        "cgm-summary-sensor-active-percentage",
    ]
    .iter()
    .map(|id| profile(id))
    .collect();
    let params = |list: &[(&str, &str, &str)]| -> Vec<Value> {
        list.iter().map(|(name, kind, doc)| json!({"name": name, "type": kind, "documentation": doc})).collect()
    };
    json!({
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": date,
        "publisher": "cgm-bridge",
        "kind": "instance",
        "software": {"name": "cgm-bridge", "version": version},
        "implementation": {"description": "Sinocare CGM data as HL7 FHIR (CGM IG 1.0.0)", "url": base},
        "fhirVersion": FHIR_VERSION,
        "format": ["json"],
        "rest": [{
            "mode": "server",
            "documentation": "Read only. Callers sign their requests with AWS SigV4 (API Gateway IAM authorization).",
            "resource": [
                {
                    "type": "Device",
                    "supportedProfile": [profile("cgm-device")],
                    "interaction": [{"code": "read"}],
                },
                {
                    "type": "Observation",
                    "supportedProfile": observation_profiles,
                    "interaction": [{"code": "search-type"}],
                    "searchParam": params(&OBSERVATION_SEARCH),
                },
                {
                    "type": "DiagnosticReport",
                    "supportedProfile": [profile("cgm-summary-pdf")],
                    "interaction": [{"code": "search-type"}],
                    "searchParam": params(&REPORT_SEARCH),
                },
            ],
        }],
    })
}
