//! `cgm-dev` (what `make dev` runs): the whole stack on this machine. DynamoDB Local on
//! 127.0.0.1:8000 (unless `DYNAMODB_ENDPOINT` names one already running), tables from
//! `infra/template.yaml`, and every route of the template on 127.0.0.1:${PORT:-3000},
//! served by the same handler code the Lambdas run. Ctrl-C stops everything it started.

use anyhow::{Context, bail};
use cgm_local::dynamodb_local::{DynamoDbLocal, Storage, is_dynamodb_local};
use cgm_local::server::{self, Router};
use cgm_local::tables;
use cgm_local::template::Template;
use cgm_shared::Config;
use clap::Parser;
use std::collections::HashMap;
use std::net::TcpListener as StdListener;
use std::path::PathBuf;
use std::sync::Arc;

const DYNAMODB_PORT: u16 = 8000;

/// Runs the whole cgm-bridge stack on this machine (what `make dev` runs).
///
/// DynamoDB Local on 127.0.0.1:8000, in memory (unless DYNAMODB_ENDPOINT names one already
/// running), the tables of infra/template.yaml, and every route of the template on
/// 127.0.0.1:$PORT, served by the same handler code the Lambdas run. Ctrl-C stops
/// everything it started. It takes no arguments.
#[derive(Debug, Parser)]
#[command(name = "cgm-dev", verbatim_doc_comment, after_help = ENVIRONMENT)]
struct Args {}

const ENVIRONMENT: &str = "\
Environment:
  PORT                  the local server's port on 127.0.0.1 (default 3000)
  DYNAMODB_ENDPOINT     a DynamoDB (Local) already running, to use instead of starting one
  DYNAMODB_LOCAL_DIR    where DynamoDB Local is installed (default .tools/dynamodb-local;
                        `tools/install.sh dynamodb-local` fetches it, `make dev` does)
  PUSH_KEY              the push route's key(s), comma-separated; unset leaves it open
  NIGHTSCOUT_JWT_KEY    the Nightscout feed's JWT key; unset, one is made for each run
  FHIR_PATIENT_IDENTIFIER_SYSTEM  the patient identifier system of the FHIR routes; unset,
                        urn:cgm-bridge:local:patient-id (in AWS, unset means no FHIR routes)
  FHIR_EHR_BASE_URL     an EHR for the FHIR submitter, run every 60 s (`cgm-ehr` starts a
                        stand-in and prints the settings); unset, no submitter
  AWS_LAMBDA_LOG_LEVEL  log level or filter (or RUST_LOG; default info)
  AWS_LAMBDA_LOG_FORMAT JSON (default) or Text

The functions' other settings are read as in Lambda (README, \"Configuration\"), except the
table names, which come from the template.";

#[tokio::main]
async fn main() -> std::process::ExitCode {
    // Before anything else: --help and a bad argument start nothing.
    Args::parse();
    match dev().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cgm-dev: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn dev() -> anyhow::Result<()> {
    cgm_shared::telemetry::init();
    let port: u16 = match std::env::var("PORT") {
        Ok(p) => p.parse().context("PORT must be a port number")?,
        Err(_) => 3000,
    };
    let state_dir = cgm_local::repo_root().join(".dev");
    std::fs::create_dir_all(&state_dir).context("creating .dev/")?;
    let pid_file = state_dir.join("dynamodb-local.pid");

    // Check our own port first, so a second `make dev` stops before touching the first
    // one's DynamoDB Local.
    let listener = StdListener::bind(("127.0.0.1", port)).map_err(|_| {
        anyhow::anyhow!(
            "port {port} on 127.0.0.1 is held by another process (another `make dev`?): stop it or set PORT"
        )
    })?;
    listener.set_nonblocking(true)?;

    let (endpoint, ddb) = match std::env::var("DYNAMODB_ENDPOINT").ok().filter(|e| !e.is_empty()) {
        Some(e) => {
            eprintln!("cgm-dev: using DynamoDB at {e} (DYNAMODB_ENDPOINT); starting none");
            (e, None)
        }
        None => {
            stop_stale(&pid_file);
            let ddb = DynamoDbLocal::start(Some(DYNAMODB_PORT), Storage::InMemory)?;
            std::fs::write(&pid_file, ddb.pid().to_string()).context("writing the PID file")?;
            eprintln!("cgm-dev: DynamoDB Local on {} (pid {}, in memory)", ddb.endpoint(), ddb.pid());
            (ddb.endpoint(), Some(ddb))
        }
    };

    let result = run(listener, port, &endpoint).await;
    if let Some(mut d) = ddb {
        d.stop();
        let _ = std::fs::remove_file(&pid_file);
        eprintln!("cgm-dev: DynamoDB Local stopped");
    }
    result
}

/// A DynamoDB Local left behind by an earlier run that was killed: stop it, but only if
/// the PID file's process really is one.
fn stop_stale(pid_file: &PathBuf) {
    let Ok(text) = std::fs::read_to_string(pid_file) else { return };
    if let Ok(pid) = text.trim().parse::<u32>()
        && is_dynamodb_local(pid)
    {
        eprintln!("cgm-dev: stopping a stale DynamoDB Local from an earlier run (pid {pid})");
        let _ = std::process::Command::new("kill").arg(pid.to_string()).status();
        for _ in 0..100 {
            if !is_dynamodb_local(pid) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
    let _ = std::fs::remove_file(pid_file);
}

async fn run(listener: StdListener, port: u16, endpoint: &str) -> anyhow::Result<()> {
    let template = Template::load_default()?;
    let sdk = cgm_shared::aws::sdk_config(&local_config(endpoint, &HashMap::new())?).await;
    let client = cgm_shared::aws::dynamodb(&sdk, Some(endpoint), cgm_shared::aws::CallLimits::PUSH);
    let table_vars = tables::create_from_template(&client, &template, "").await?;
    let cfg = local_config(endpoint, &table_vars)?;

    let handlers = cgm_local::handlers(&cfg).await?;
    let router = Arc::new(Router::new(template.routes(), &handlers)?);

    let base = format!("http://127.0.0.1:{port}");
    eprintln!("cgm-dev: serving on {base}");
    for r in router.routes() {
        eprintln!("  {:<6} {base}{}", r.method, r.path);
    }
    let key_hint = match &cfg.push_key {
        cgm_shared::config::SecretSetting::Unset => String::new(),
        _ => "?key=$PUSH_KEY".to_string(),
    };
    eprintln!("\nPush URL: {base}/sinocare/cgm{key_hint}");
    eprintln!(
        "Try:  curl -s -X POST '{base}/sinocare/cgm{key_hint}' -H 'content-type: application/json' --data-binary @crates/domain/tests/data/seed-example.json"
    );
    eprintln!("Stop: Ctrl-C\n");

    // The readings stream's consumer, as the events Lambda runs it in the stack.
    let consumer = cgm_local::stream_consumer(&cfg).await?;
    let checks = cgm_local::stream::StreamConsumer::run_checks(consumer.service(), CHECK_EVERY);
    eprintln!(
        "cgm-dev: the readings stream's consumer (daily rollups, sensor sessions, alerts) runs on DynamoDB Local's \
         stream, the sensor check every {} s; events print as `event <detail-type> <detail>`",
        CHECK_EVERY.as_secs()
    );

    // The FHIR submitter on its schedule, when an EHR is configured (`cgm-ehr` is a stand-in).
    let submitter = match &cfg.fhir_submit.ehr_base_url {
        Some(ehr) => {
            let mut submit_cfg = cfg.clone();
            if submit_cfg.agp_font_dir.is_none() {
                submit_cfg.agp_font_dir = Some(cgm_local::font_dir().display().to_string());
            }
            let s = cgm_fhir_submit::from_config(&submit_cfg).await?;
            eprintln!("cgm-dev: the FHIR submitter sends to {ehr} every {} s", SUBMIT_EVERY.as_secs());
            Some(s)
        }
        None => None,
    };
    let submits = async {
        let Some(s) = &submitter else { return std::future::pending::<()>().await };
        let mut every = tokio::time::interval(SUBMIT_EVERY);
        loop {
            every.tick().await;
            let until = std::time::Instant::now() + SUBMIT_EVERY;
            if let Err(e) = s.run(cgm_domain::time::Timestamp::now(), until).await {
                eprintln!("cgm-dev: the submission run failed: {e}");
            }
        }
    };

    let listener = tokio::net::TcpListener::from_std(listener)?;
    tokio::select! {
        _ = server::serve(listener, router) => bail!("server stopped"),
        _ = submits => bail!("the submitter stopped"),
        r = consumer.run() => { r?; bail!("the stream consumer stopped") }
        _ = checks => bail!("the sensor check stopped"),
        _ = shutdown_signal() => { eprintln!("\ncgm-dev: stopping"); Ok(()) }
    }
}

/// How often the local stand-in of the stack's schedule runs the sensor check.
const CHECK_EVERY: std::time::Duration = std::time::Duration::from_secs(30);
/// How often the local FHIR submitter runs (the stack's `FhirSubmitSchedule` is minutes).
const SUBMIT_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

/// The FHIR routes' patient identifier system under `make dev`, unless one is set.
const LOCAL_PATIENT_IDENTIFIER_SYSTEM: &str = "urn:cgm-bridge:local:patient-id";

/// The environment, with the local table names and endpoint laid over it.
/// Without a Nightscout JWT key of its own, the local stack signs with one made for this run,
/// so `/api/v2/authorization/request` and API v3 work under `make dev` too (JWTs issued end
/// with the run).
fn local_config(endpoint: &str, tables: &HashMap<String, String>) -> anyhow::Result<Config> {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let run_jwt_key = match (env("NIGHTSCOUT_JWT_KEY"), env("NIGHTSCOUT_JWT_KEY_PARAM")) {
        (None, None) => Some(cgm_domain::random::random_hex::<32>().context("a JWT key for this run")?),
        _ => None,
    };
    Config::from_lookup(|k| match k {
        "DYNAMODB_ENDPOINT" => Some(endpoint.to_string()),
        "NIGHTSCOUT_JWT_KEY" if run_jwt_key.is_some() => run_jwt_key.clone(),
        "FHIR_PATIENT_IDENTIFIER_SYSTEM" => Some(env(k).unwrap_or_else(|| LOCAL_PATIENT_IDENTIFIER_SYSTEM.to_string())),
        _ => tables.get(k).cloned().or_else(|| std::env::var(k).ok()),
    })
    .context("configuration")
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing a SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;
    use clap::error::ErrorKind;

    #[test]
    fn the_command_line_takes_no_arguments() {
        Args::command().debug_assert();
        assert!(Args::try_parse_from(["cgm-dev"]).is_ok());
        for bad in ["serve", "--port", "-p"] {
            let e = Args::try_parse_from(["cgm-dev", bad]).unwrap_err();
            assert_eq!((e.kind(), e.exit_code()), (ErrorKind::UnknownArgument, 2), "{bad}");
        }
        assert_eq!(Args::try_parse_from(["cgm-dev", "--help"]).unwrap_err().kind(), ErrorKind::DisplayHelp);
    }
}
