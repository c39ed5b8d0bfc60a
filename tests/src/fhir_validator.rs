//! The FHIR validator the tests run on every resource the FHIR function produces:
//! `tools/fhir-validate/validate.js` (FHIR.js for the base R4 structure, fhirpath.js for the
//! HL7 CGM IG's profile rules and invariants, cited by their line of `profiles.fsh`), under
//! Node. `tools/install.sh fhir-validator` installs its packages (`make test` does).

use serde_json::Value;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// The IG's FHIR Shorthand, from the shared reference material beside the repository.
pub fn profiles_fsh() -> PathBuf {
    let p = cgm_local::repo_root().join("../shared/reference/hl7-fhir-cgm-ig/profiles.fsh");
    assert!(p.is_file(), "{} is missing: the CGM IG's profiles.fsh is read from ../shared/reference", p.display());
    p
}

/// What the validator said of each resource.
#[derive(Debug)]
pub struct Report {
    /// Exit status 0: every resource valid.
    pub ok: bool,
    /// One entry per resource (and per entry of a Bundle): `ref`, `profiles`, `errors`,
    /// `warnings`, `checks` (the profile rules evaluated, each a `profiles.fsh:<line>` citation).
    pub resources: Vec<Value>,
}

impl Report {
    /// Every error, each with the resource it is about.
    pub fn errors(&self) -> Vec<String> {
        self.resources
            .iter()
            .flat_map(|r| {
                let at = r["ref"].as_str().unwrap_or("?").to_string();
                let errors = r["errors"].as_array().cloned().unwrap_or_default();
                errors.into_iter().map(move |e| format!("{at}: {}", e.as_str().unwrap_or_default()))
            })
            .collect()
    }
}

/// Runs the validator on `resources` (any FHIR resources, Bundles included).
pub fn validate(resources: &[Value]) -> Report {
    let dir = cgm_local::repo_root().join("tools/fhir-validate");
    assert!(
        dir.join("node_modules/fhir/package.json").is_file()
            && dir.join("node_modules/fhirpath/package.json").is_file(),
        "the FHIR validator's packages are missing from {}: run tools/install.sh fhir-validator (make test does)",
        dir.join("node_modules").display()
    );
    let mut child = Command::new("node")
        .arg(dir.join("validate.js"))
        .arg("--profiles")
        .arg(profiles_fsh())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("the FHIR validator runs under Node (node on PATH): {e}"));
    let input = serde_json::to_vec(resources).expect("resources as JSON");
    child.stdin.take().expect("stdin").write_all(&input).expect("writing to the validator");
    let out = child.wait_with_output().expect("the validator's output");
    let code = out.status.code();
    assert!(
        matches!(code, Some(0 | 1)),
        "the FHIR validator could not run ({code:?}): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("the validator's JSON report");
    Report { ok: code == Some(0), resources: v["resources"].as_array().cloned().unwrap_or_default() }
}
