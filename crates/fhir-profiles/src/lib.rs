//! The FHIR R4 resources this bridge produces, each as the HL7 CGM implementation guide
//! (`hl7.fhir.uv.cgm` 1.0.0, canonical base [`CGM_BASE`]) profiles it: a sensor reading
//! (`cgm-sensor-reading-moles-per-volume`, or `-mass-per-volume` in mg/dL), a summary
//! (`cgm-summary` and its six members, [`summary`] computing its figures), the sensor
//! (`cgm-device`). The FHIR read API serves them and the submitter sends them to the EHR;
//! this library is what both share (a function never imports another), with the
//! percent-encoding of their queries and forms ([`url`]).
//!
//! Plain functions from the domain's types to FHIR JSON: no HTTP. Which rule of
//! `profiles.fsh` each field satisfies is said beside it; the tests run every resource
//! through a FHIR validator and those rules.

pub mod summary;
pub mod url;

use cgm_domain::ids::DeviceSn;
use cgm_domain::metrics::{MG_DL_PER_MMOL, round_to};
use cgm_domain::session::Session;
use cgm_domain::settings::FhirSettings;
use cgm_domain::store::reads::StoredReading;
use cgm_domain::time::SourceZone;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

pub const CGM_BASE: &str = "http://hl7.org/fhir/uv/cgm";
pub const LOINC: &str = "http://loinc.org";
pub const UCUM: &str = "http://unitsofmeasure.org";
pub const OBSERVATION_CATEGORY: &str = "http://terminology.hl7.org/CodeSystem/observation-category";
pub const DATA_ABSENT_REASON: &str = "http://terminology.hl7.org/CodeSystem/data-absent-reason";
/// The FHIR version every resource here is (R4).
pub const FHIR_VERSION: &str = "4.0.1";

/// A profile's canonical URL.
pub fn profile(id: &str) -> String {
    format!("{CGM_BASE}/StructureDefinition/{id}")
}

/// The unit a glucose value is given in, and with it the reading profile and its LOINC code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GlucoseUnit {
    MmolPerL,
    MgPerDl,
}

impl GlucoseUnit {
    pub fn of(settings: &FhirSettings) -> Self {
        if settings.mg_dl { GlucoseUnit::MgPerDl } else { GlucoseUnit::MmolPerL }
    }

    /// The unit whose reading profile fixes this LOINC code.
    pub fn of_reading_code(code: &str) -> Option<Self> {
        [GlucoseUnit::MmolPerL, GlucoseUnit::MgPerDl].into_iter().find(|u| u.reading_code() == code)
    }

    pub fn reading_profile(self) -> &'static str {
        match self {
            GlucoseUnit::MmolPerL => "cgm-sensor-reading-moles-per-volume",
            GlucoseUnit::MgPerDl => "cgm-sensor-reading-mass-per-volume",
        }
    }

    /// `code = $LNC#105272-9` / `#99504-3` (profiles.fsh, CGMSensorReading*).
    pub fn reading_code(self) -> &'static str {
        match self {
            GlucoseUnit::MmolPerL => "105272-9",
            GlucoseUnit::MgPerDl => "99504-3",
        }
    }

    /// `valueQuantity = 'mmol/L' "mmol/l"` / `'mg/dL' "mg/dl"` (RuleSets GlucoseMolesPerVolume,
    /// GlucoseMassPerVolume): the UCUM code, then the unit's text.
    pub fn ucum(self) -> (&'static str, &'static str) {
        match self {
            GlucoseUnit::MmolPerL => ("mmol/L", "mmol/l"),
            GlucoseUnit::MgPerDl => ("mg/dL", "mg/dl"),
        }
    }

    /// A stored mmol/L value in this unit: mmol/L to two decimals, mg/dL whole.
    pub fn value(self, mmol: f64) -> f64 {
        match self {
            GlucoseUnit::MmolPerL => round_to(mmol, 2),
            GlucoseUnit::MgPerDl => (mmol * MG_DL_PER_MMOL).round(),
        }
    }

    pub fn quantity(self, mmol: f64) -> Value {
        let (code, unit) = self.ucum();
        json!({"value": self.value(mmol), "unit": unit, "system": UCUM, "code": code})
    }
}

/// The longest FHIR logical id (`[A-Za-z0-9\-\.]{1,64}`).
const ID_MAX: usize = 64;

/// A logical id for one of Sinocare's ids (a `deviceSn`, a `testId`), which may hold any
/// text: kept as it is when it is already a FHIR id; otherwise `x-` and its UTF-8 in hex
/// while that fits, so it can be read back ([`text_of_fhir_id`]); otherwise `h-` and a
/// SHA-256 prefix (not reversible; the resource's identifier still carries the exact text).
pub fn fhir_id(text: &str) -> String {
    let plain = !text.is_empty()
        && text.len() <= ID_MAX
        && text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        && !text.starts_with("x-")
        && !text.starts_with("h-");
    if plain {
        return text.to_string();
    }
    if 2 + 2 * text.len() <= ID_MAX {
        return format!("x-{}", hex::encode(text));
    }
    format!("h-{}", &hex::encode(Sha256::digest(text.as_bytes()))[..ID_MAX - 2])
}

/// The text a [`fhir_id`] stands for, when it can be read back.
pub fn text_of_fhir_id(id: &str) -> Option<String> {
    if let Some(h) = id.strip_prefix("x-") {
        return hex::decode(h).ok().and_then(|b| String::from_utf8(b).ok());
    }
    if id.starts_with("h-") || id.is_empty() || id.len() > ID_MAX {
        return None;
    }
    id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.').then(|| id.to_string())
}

/// The systems of the identifiers this bridge mints, from the settings.
#[derive(Debug, Clone)]
pub struct Naming {
    pub test_id_system: String,
    pub device_sn_system: String,
    pub summary_system: String,
    pub patient_system: Option<String>,
    pub device_name: String,
}

impl Naming {
    pub fn of(settings: &FhirSettings) -> Self {
        Naming {
            test_id_system: format!("{}test-id", settings.identifier_prefix),
            device_sn_system: format!("{}device-sn", settings.identifier_prefix),
            summary_system: format!("{}summary", settings.identifier_prefix),
            patient_system: settings.patient_identifier_system.clone(),
            device_name: settings.device_name.clone(),
        }
    }

    /// The patient as a logical reference by the hospital's identifier
    /// (`Reference.identifier`): what a reader matches to its own patient.
    pub fn patient_by_identifier(&self, patient_id: &str) -> Option<Value> {
        let system = self.patient_system.as_deref()?;
        Some(json!({"type": "Patient", "identifier": {"system": system, "value": patient_id}}))
    }
}

/// A reading as a `cgm-sensor-reading-*` Observation, `None` when its instant cannot be
/// written (outside the calendar). A warm-up (invalid) reading has no value and a
/// `dataAbsentReason` instead, the only means the IG gives (invariant cgm-sensor-value-or-dar).
pub fn reading_observation(
    r: &StoredReading,
    unit: GlucoseUnit,
    naming: &Naming,
    zone: &SourceZone,
    subject: &Value,
    device: &Value,
) -> Option<Value> {
    let effective = zone.format_local_at(r.measured_at)?;
    let mut o = json!({
        "resourceType": "Observation",
        "id": fhir_id(r.test_id.as_str()),
        "meta": {"profile": [profile(unit.reading_profile())]},
        "identifier": [{"system": naming.test_id_system, "value": r.test_id.as_str()}],
        "status": "final",
        "category": [{"coding": [{"system": OBSERVATION_CATEGORY, "code": "laboratory"}]}],
        "code": {"coding": [{"system": LOINC, "code": unit.reading_code()}]},
        "subject": subject,
        "effectiveDateTime": effective,
        "device": device,
    });
    if r.valid && r.mmol.is_finite() {
        o["valueQuantity"] = unit.quantity(r.mmol);
    } else {
        let why = if r.valid {
            "the stored value is not a number"
        } else {
            "sensor warm-up: the device marked the reading not valid"
        };
        o["dataAbsentReason"] = json!({"coding": [{"system": DATA_ABSENT_REASON, "code": "unknown"}], "text": why});
    }
    Some(o)
}

/// What a `cgm-summary` reports, over whole local days `first` to `last`.
#[derive(Debug, Clone, PartialEq)]
pub struct SummaryFigures {
    pub first: chrono::NaiveDate,
    pub last: chrono::NaiveDate,
    pub mean_mmol: f64,
    pub gmi_percent: f64,
    pub cv_percent: f64,
    /// Very low, low, in range, high, very high, % of valid readings.
    pub times_in_ranges: [f64; 5],
    pub days_of_wear: usize,
    /// Valid readings as a share of those expected at the sensor's interval, %.
    pub active_percent: f64,
}

/// The IG's LOINC codes of the summary's five ranges, in the order of
/// [`SummaryFigures::times_in_ranges`] (`CGMSummaryTimesInRanges` slices timeInVeryLow …
/// timeInVeryHigh and their `*WithLoinc` codes).
pub const RANGE_CODES: [&str; 5] = ["104642-4", "104641-6", "97510-2", "104640-8", "104639-0"];
pub const SUMMARY_CODE: &str = "107931-8";

/// `valueQuantity = '%' "%"` (RuleSet QuantityPercent), with the two decimals the times in
/// ranges profile asks for.
fn percent(v: f64) -> Value {
    json!({"value": round_to(v, 2), "unit": "%", "system": UCUM, "code": "%"})
}

/// A CGM summary as the IG profiles it: the `cgm-summary` panel (107931-8) first, whose
/// `hasMember` references the six members that follow it (mean glucose in `unit`, times in
/// ranges, GMI, CV, days of wear, sensor active %). `id` is the panel's logical id; each
/// member's is `id` and a suffix. Each has an identifier under `<prefix>summary`.
pub fn summary_observations(
    f: &SummaryFigures,
    unit: GlucoseUnit,
    naming: &Naming,
    id: &str,
    subject: &Value,
    device: &Value,
) -> Vec<Value> {
    let period = json!({"start": f.first.format("%Y-%m-%d").to_string(), "end": f.last.format("%Y-%m-%d").to_string()});
    let base = |suffix: &str, profile_id: &str, code: &str| -> Value {
        let member_id = if suffix.is_empty() { id.to_string() } else { format!("{id}-{suffix}") };
        json!({
            "resourceType": "Observation",
            "id": member_id,
            "meta": {"profile": [profile(profile_id)]},
            "identifier": [{"system": naming.summary_system, "value": member_id}],
            "status": "final",
            "category": [{"coding": [{"system": OBSERVATION_CATEGORY, "code": "laboratory"}]}],
            "code": {"coding": [{"system": LOINC, "code": code}]},
            "subject": subject,
            "effectivePeriod": period,
            "device": device,
        })
    };
    let (mean_profile, mean_code) = match unit {
        GlucoseUnit::MmolPerL => ("cgm-summary-mean-glucose-moles-per-volume", "105273-7"),
        GlucoseUnit::MgPerDl => ("cgm-summary-mean-glucose-mass-per-volume", "97507-8"),
    };
    let mut mean = base("mean", mean_profile, mean_code);
    mean["valueQuantity"] = unit.quantity(f.mean_mmol);
    let mut tir = base("tir", "cgm-summary-times-in-ranges", "106793-3");
    tir["component"] = RANGE_CODES
        .iter()
        .zip(f.times_in_ranges)
        .map(|(code, v)| json!({"code": {"coding": [{"system": LOINC, "code": code}]}, "valueQuantity": percent(v)}))
        .collect();
    let mut gmi = base("gmi", "cgm-summary-gmi", "97506-0");
    gmi["valueQuantity"] = percent(f.gmi_percent);
    let mut cv = base("cv", "cgm-summary-coefficient-of-variation", "104638-2");
    cv["valueQuantity"] = percent(f.cv_percent);
    let mut wear = base("wear", "cgm-summary-days-of-wear", "104636-6");
    wear["valueQuantity"] = json!({"value": f.days_of_wear, "unit": "days", "system": UCUM, "code": "d"});
    let mut active = base("active", "cgm-summary-sensor-active-percentage", "104637-4");
    active["valueQuantity"] = percent(f.active_percent);
    let members = [mean, tir, gmi, cv, wear, active];
    let mut panel = base("", "cgm-summary", SUMMARY_CODE);
    panel["hasMember"] = members
        .iter()
        .map(|m| json!({"reference": format!("Observation/{}", m["id"].as_str().unwrap_or_default())}))
        .collect();
    let mut out = vec![panel];
    out.extend(members);
    out
}

/// The IG's `cgm-summary-pdf`: a `DiagnosticReport` (LOINC 107931-8, category `LAB`) over
/// the summary's days, the ambulatory glucose profile's page as its `presentedForm` PDF
/// (`pdf_base64`), its `result` the summary panel `panel_id`; issued at `issued`.
pub fn summary_pdf_report(
    f: &SummaryFigures,
    naming: &Naming,
    panel_id: &str,
    subject: &Value,
    pdf_base64: &str,
    issued: &str,
) -> Value {
    let id = format!("{panel_id}-pdf");
    json!({
        "resourceType": "DiagnosticReport",
        "id": id,
        "meta": {"profile": [profile("cgm-summary-pdf")]},
        "identifier": [{"system": naming.summary_system, "value": id}],
        "status": "final",
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0074", "code": "LAB"}]}],
        "code": {"coding": [{"system": LOINC, "code": SUMMARY_CODE}]},
        "subject": subject,
        "effectivePeriod": {"start": f.first.format("%Y-%m-%d").to_string(), "end": f.last.format("%Y-%m-%d").to_string()},
        "issued": issued,
        "result": [{"reference": format!("Observation/{panel_id}")}],
        "presentedForm": [{
            "contentType": "application/pdf",
            "data": pdf_base64,
            "title": format!("Ambulatory glucose profile {} to {}", f.first, f.last),
        }],
    })
}

/// A summary's logical id: stable for a device, period and unit, and short whatever the
/// serial (the members add at most 7 characters).
pub fn summary_id(sn: &DeviceSn, f: &SummaryFigures, unit: GlucoseUnit) -> String {
    let key = format!("{}|{}|{}|{}", sn.as_str(), f.first, f.last, unit.reading_code());
    format!("sum-{}", &hex::encode(Sha256::digest(key.as_bytes()))[..24])
}

/// A sensor as a `cgm-device`: its serial as `serialNumber` and as an identifier, the
/// configured user-friendly name, and (when known) whether its session is still running.
pub fn device(sn: &DeviceSn, session: Option<&Session>, naming: &Naming, patient: Option<&Value>) -> Value {
    let mut d = json!({
        "resourceType": "Device",
        "id": fhir_id(sn.as_str()),
        "meta": {"profile": [profile("cgm-device")]},
        "identifier": [{"system": naming.device_sn_system, "value": sn.as_str()}],
        "manufacturer": "Sinocare",
        "deviceName": [{"name": naming.device_name, "type": "user-friendly-name"}],
        "serialNumber": sn.as_str(),
    });
    if let Some(s) = session {
        d["status"] = json!(if s.ended_at.is_some() { "inactive" } else { "active" });
    }
    if let Some(p) = patient {
        d["patient"] = p.clone();
    }
    d
}

/// A reference to a device by its logical id.
pub fn device_reference(sn: &DeviceSn) -> Value {
    json!({"reference": format!("Device/{}", fhir_id(sn.as_str()))})
}
