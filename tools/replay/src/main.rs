//! `cgm-replay`: lists the quarantine and re-processes it through the current parser (a dry
//! run unless `--apply`); `cgm-replay rollups` builds daily rollups for readings stored
//! before the stream consumer wrote them (`ROLLUPS_TABLE` too); `cgm-replay stream` redoes
//! the stream records the consumer gave up on, from the failure queue's message;
//! `cgm-replay poison` lists the records it gave up on for good (written aside to the
//! quarantine table) and redoes them with `--apply`. Configuration comes from the same
//! environment as the functions (`QUARANTINE_TABLE`, `READINGS_TABLE`, `CONFLICTS_TABLE`,
//! `SOURCE_TIMEZONE`, and `DYNAMODB_ENDPOINT` for DynamoDB Local; AWS credentials and region
//! as usual otherwise).

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
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Build the daily rollups of readings stored before the stream consumer wrote them:
    /// resumable, with progress on stderr, safe to run while pushes arrive.
    Rollups {
        /// Continue after the page a previous run printed as "resume".
        #[arg(long)]
        resume: Option<String>,
    },
    /// Redo the readings-stream records the consumer gave up on: give the failure queue's
    /// message body (a file, or - for stdin). Within the stream's 24 hours; idempotent.
    Stream {
        /// The message body (with its DDBStreamBatchInfo), a file or - for stdin.
        message: String,
    },
    /// List the readings-stream records the consumer gave up on for good (testId, deviceSn,
    /// sequence number, reason, when). With --apply, once the cause is fixed, read each
    /// reading again and run it through the consumer's steps; those done are removed.
    Poison {
        /// Redo them, and remove those that went through.
        #[arg(long)]
        apply: bool,
        /// Only the record(s) of this testId (or whose key starts with this).
        #[arg(long)]
        only: Option<String>,
    },
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
    if let Some(Command::Stream { message }) = &args.command {
        let body = if message == "-" {
            std::io::read_to_string(std::io::stdin()).context("reading the message from stdin")?
        } else {
            std::fs::read_to_string(message).with_context(|| format!("reading {message}"))?
        };
        let info = cgm_replay::stream::BatchInfo::parse(&body)?;
        let mut streams = aws_sdk_dynamodbstreams::config::Builder::from(&sdk);
        if let Some(e) = &cfg.dynamodb_endpoint {
            streams = streams.endpoint_url(e);
        }
        let streams = aws_sdk_dynamodbstreams::Client::from_conf(streams.build());
        let done = match cfg.dynamodb_endpoint {
            // Locally there is no EventBridge: the events print.
            Some(_) => {
                let service = cgm_events::with_sink(&cfg, &sdk, cgm_events::sink::MemorySink::printing());
                cgm_replay::stream::redo(&streams, &service, &info).await?
            }
            None => {
                let service = cgm_events::from_config(&cfg).await.context("the events configuration")?;
                cgm_replay::stream::redo(&streams, &service, &info).await?
            }
        };
        println!("cgm-replay stream: {} records redone, {} failed again", done.records, done.failed.len());
        return Ok(done.failed.is_empty());
    }
    if let Some(Command::Poison { apply, only }) = &args.command {
        eprintln!(
            "cgm-replay poison: quarantine table {}{}",
            cfg.tables.quarantine,
            if *apply { " (--apply: records are redone)" } else { " (dry run)" }
        );
        let lines = match cfg.dynamodb_endpoint {
            // Locally there is no EventBridge: the events print.
            Some(_) => {
                let service = cgm_events::with_sink(&cfg, &sdk, cgm_events::sink::MemorySink::printing());
                cgm_replay::poison::run(&client, &cfg.tables.readings, &service, *apply, only.as_deref()).await?
            }
            None => {
                let service = cgm_events::from_config(&cfg).await.context("the events configuration")?;
                cgm_replay::poison::run(&client, &cfg.tables.readings, &service, *apply, only.as_deref()).await?
            }
        };
        for line in &lines {
            println!("{}", cgm_replay::poison::describe(line));
        }
        println!("{}", cgm_replay::poison::summary(&lines, *apply));
        return Ok(cgm_replay::poison::all_done(&lines));
    }
    if let Some(Command::Rollups { resume }) = args.command {
        let reads = cgm_shared::store::reads::dynamodb::DynamoReadStore::new(
            client.clone(),
            cfg.tables.readings.clone(),
            cfg.tables.follow_tokens.clone(),
        );
        let rollups =
            cgm_shared::store::rollups::dynamodb::DynamoRollupStore::new(client.clone(), cfg.tables.rollups.clone());
        let done = cgm_replay::rollups::backfill(
            &client,
            &cfg.tables.readings,
            &reads,
            &rollups,
            &cfg.source_timezone,
            resume,
            |p| {
                eprintln!(
                    "cgm-replay rollups: {} pages, {} readings, {} days ({} written){}",
                    p.pages,
                    p.items,
                    p.days,
                    p.written,
                    p.resume.as_ref().map(|r| format!("; resume with --resume {r}")).unwrap_or_default()
                )
            },
        )
        .await?;
        println!(
            "cgm-replay rollups: done: {} days of {} readings, {} rollups written",
            done.days, done.items, done.written
        );
        return Ok(true);
    }
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
