//! `cgm-ehr`: the stand-in EHR on 127.0.0.1 for `make dev`, with a client key made for the
//! run. It prints the settings that point the local stack's FHIR submitter at it, and a line
//! for each bundle it is sent.

use anyhow::Context;
use clap::Parser;

/// A stand-in EHR (the HL7 CGM IG's Data Receiver) on 127.0.0.1:$EHR_PORT for `make dev`.
///
/// It makes an ES384 client key for the run, writes it to .dev/ehr-client-key.pem, and prints
/// how to start `make dev` with the FHIR submitter pointed at it. It keeps what it is sent in
/// memory and prints a line per bundle. Ctrl-C stops it.
#[derive(Debug, Parser)]
#[command(
    name = "cgm-ehr",
    verbatim_doc_comment,
    after_help = "Environment:\n  EHR_PORT  the port on 127.0.0.1 (default 3100)"
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
