//! `cgm-replay`: lists the quarantine and re-processes it through the current parser. A dry
//! run unless `--apply`. Configuration comes from the same environment as the functions
//! (`QUARANTINE_TABLE`, `READINGS_TABLE`, `CONFLICTS_TABLE`, `SOURCE_TIMEZONE`, and
//! `DYNAMODB_ENDPOINT` for DynamoDB Local; AWS credentials and region as usual otherwise).

use anyhow::Context;
use cgm_shared::Config;
use cgm_shared::aws::{self, CallLimits};
use cgm_shared::store::push::dynamodb::DynamoStore;
use clap::Parser;
use std::process::ExitCode;

/// Lists quarantined push bodies (hash, arrival, length, reason; never the body unless
/// asked) and what the current parser makes of them. With --apply, stores those that now
/// parse, as the push route would, and removes them from quarantine.
#[derive(Debug, Parser)]
#[command(name = "cgm-replay", version)]
struct Args {
    /// Store the bodies that now parse and remove them from quarantine.
    #[arg(long)]
    apply: bool,
    /// Only the item(s) whose bodySha256 starts with this.
    #[arg(long)]
    only: Option<String>,
    /// Also print each body (it holds personal data: use with care).
    #[arg(long)]
    show_body: bool,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    match run(args).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("cgm-replay: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// `Ok(false)` when some item could not be applied.
async fn run(args: Args) -> anyhow::Result<bool> {
    let cfg = Config::from_env().context("configuration")?;
    let sdk = aws::sdk_config(&cfg).await;
    let client = aws::dynamodb(&sdk, cfg.dynamodb_endpoint.as_deref(), CallLimits::PARTNER);
    let store = DynamoStore::new(client, cfg.tables.clone());
    eprintln!(
        "cgm-replay: quarantine table {}{}",
        cfg.tables.quarantine,
        if args.apply { " (--apply: changes will be made)" } else { " (dry run)" }
    );
    let lines = cgm_replay::replay(&store, &cfg.source_timezone, args.apply, args.only.as_deref()).await?;
    for line in &lines {
        println!("{}", cgm_replay::describe(line));
        if args.show_body {
            println!("    body: {}", String::from_utf8_lossy(&line.item.body).escape_debug());
        }
    }
    println!("{}", cgm_replay::summary(&lines, args.apply));
    Ok(!lines.iter().any(|l| matches!(l.action, Some(cgm_replay::Action::Failed(_)))))
}
