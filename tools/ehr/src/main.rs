//! `cgm-ehr`: the stand-in EHR on 127.0.0.1 for `make dev`, with a client key made for the
//! run. It prints the settings that point the local stack's FHIR submitter at it, and a line
//! for each bundle it is sent.

use anyhow::Context;
use clap::Parser;
use serde_json::json;

/// A stand-in EHR (the HL7 CGM IG's Data Receiver) on 127.0.0.1:$EHR_PORT for `make dev`.
///
/// It makes an ES384 client key for the run, writes it to .dev/ehr-client-key.pem, and prints
/// how to start `make dev` with the FHIR submitter pointed at it. It keeps what it is sent in
/// memory and prints a line per bundle. Ctrl-C stops it.
#[derive(Debug, Parser)]
#[command(
    name = "cgm-ehr",
    verbatim_doc_comment,
    after_help = "Environment:\n  EHR_PORT  the port on 127.0.0.1 (default 3100)\n  \
                  EHR_STANDING_ORDER_PATIENT  a patientId: the EHR holds the IG's example standing order for \
                  that patient\n  (a summary and its PDF every two weeks), for make dev with \
                  FHIR_READ_STANDING_ORDERS=true"
)]
struct Args {}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    Args::parse();
    let port: u16 = match std::env::var("EHR_PORT") {
        Ok(p) => p.parse().context("EHR_PORT must be a port number")?,
        Err(_) => 3100,
    };
    let listener = std::net::TcpListener::bind(("127.0.0.1", port))
        .with_context(|| format!("port {port} on 127.0.0.1 is taken: set EHR_PORT"))?;
    let ehr = cgm_ehr::FakeEhr::start_on(cgm_ehr::TestKey::es384(), listener).await;
    ehr.behave(|b| b.print = true);
    // The IG's example standing order (examples.fsh, cgmDataSubmissionStandingOrderExample)
    // for one patient, found by the identifier `make dev` names patients with.
    if let Ok(patient) = std::env::var("EHR_STANDING_ORDER_PATIENT") {
        let system = std::env::var("FHIR_PATIENT_IDENTIFIER_SYSTEM")
            .unwrap_or_else(|_| "urn:cgm-bridge:local:patient-id".to_string());
        ehr.add_patient(&system, &patient, "pat-1");
        let profile = |p: &str| json!({"url": "submissionDataProfile", "valueCanonical": format!("http://hl7.org/fhir/uv/cgm/StructureDefinition/{p}")});
        ehr.add_order(json!({
            "resourceType": "ServiceRequest", "id": "standing-order-1", "status": "active", "intent": "order",
            "code": {"coding": [{"system": "http://hl7.org/fhir/uv/cgm/CodeSystem/cgm", "code": "cgm-data-submission-standing-order"}]},
            "subject": {"reference": "Patient/pat-1"},
            "extension": [{
                "url": "http://hl7.org/fhir/uv/cgm/StructureDefinition/data-submission-schedule",
                "extension": [
                    {"url": "submissionPeriod", "valueQuantity": {"value": 2, "unit": "week", "system": "http://unitsofmeasure.org", "code": "wk"}},
                    profile("cgm-summary"),
                    profile("cgm-summary-pdf"),
                ],
            }],
        }));
        eprintln!(
            "cgm-ehr: patient {system}|<the patientId given> is Patient/pat-1, with the IG's example standing order"
        );
    }
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.dev");
    std::fs::create_dir_all(&dir).context("creating .dev/")?;
    let key = dir.join("ehr-client-key.pem");
    std::fs::write(&key, ehr.private_pem()).context("writing the client key")?;
    let key = key.canonicalize()?;
    eprintln!("cgm-ehr: a stand-in EHR on {} (SMART Backend Services, $submit-cgm-bundle)", ehr.base());
    eprintln!("cgm-ehr: the client's key for this run is in {}", key.display());
    eprintln!("\nIn another terminal, start the stack with its FHIR submitter pointed here:\n");
    eprintln!(
        "  FHIR_EHR_BASE_URL={} FHIR_CLIENT_ID={} FHIR_CLIENT_KEY_ID={} FHIR_CLIENT_SIGNING_ALG=ES384 \\\n  \
         FHIR_CLIENT_PRIVATE_KEY=\"$(cat {})\" make dev\n",
        ehr.base(),
        cgm_ehr::CLIENT_ID,
        cgm_ehr::KEY_ID,
        key.display()
    );
    eprintln!("Stop: Ctrl-C");
    tokio::signal::ctrl_c().await.context("waiting for Ctrl-C")?;
    Ok(())
}
