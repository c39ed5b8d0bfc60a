//! Logging as Lambda expects it: one JSON object per line by default (or plain text when
//! `AWS_LAMBDA_LOG_FORMAT=Text`), level from `AWS_LAMBDA_LOG_LEVEL` or `RUST_LOG`.
//!
//! Personal data is never handed to a log macro here (see [`crate::sensitive`]). The AWS
//! SDK and its HTTP stack, however, print whole request and response bodies at TRACE, and
//! a DynamoDB body holds the patient fields: their TRACE events are dropped whatever level
//! is asked for. The canary tests hold both rules.

use tracing::Level;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::{Layer, filter};

/// Targets that log payloads at TRACE.
const PAYLOAD_LOGGING_TARGETS: [&str; 6] = ["aws_smithy", "aws_sdk", "aws_sigv4", "aws_runtime", "hyper", "h2"];

/// Installs the process-wide subscriber. Call once, first thing in `main`.
pub fn init() {
    let json = !std::env::var("AWS_LAMBDA_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("text"));
    let level = std::env::var("AWS_LAMBDA_LOG_LEVEL").ok().or_else(|| std::env::var("RUST_LOG").ok());
    let _ = tracing::subscriber::set_global_default(subscriber(json, level.as_deref(), std::io::stdout));
}

/// A subscriber that writes to `writer`; tests use it to capture every line of a request.
pub fn subscriber<W>(json: bool, level: Option<&str>, writer: W) -> impl tracing::Subscriber + Send + Sync
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let wanted = targets(level.unwrap_or("info"));
    let no_payloads = filter::filter_fn(|meta| {
        !(*meta.level() == Level::TRACE && PAYLOAD_LOGGING_TARGETS.iter().any(|t| meta.target().starts_with(t)))
    });
    let base = tracing_subscriber::fmt::layer().with_writer(writer).with_target(true);
    let format = if json {
        base.json().flatten_event(true).with_current_span(false).with_span_list(false).boxed()
    } else {
        base.boxed()
    };
    tracing_subscriber::registry().with(format.with_filter(no_payloads).with_filter(wanted))
}

/// `info`, `DEBUG` (Lambda's names are upper case, and it has `FATAL`) or a directive list
/// such as `warn,cgm_push=debug`. Anything unreadable means `info`.
fn targets(level: &str) -> Targets {
    let level = level.trim().to_ascii_lowercase().replace("fatal", "error");
    level.parse().unwrap_or_else(|_| Targets::new().with_default(LevelFilter::INFO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_read_like_lambda_and_rust_log() {
        let t = targets("DEBUG");
        assert!(t.would_enable("cgm_push", &Level::DEBUG) && !t.would_enable("cgm_push", &Level::TRACE));
        let t = targets("warn,cgm_push=debug");
        assert!(t.would_enable("cgm_push", &Level::DEBUG) && !t.would_enable("aws_config", &Level::INFO));
        assert!(targets("FATAL").would_enable("x", &Level::ERROR) && !targets("FATAL").would_enable("x", &Level::WARN));
        assert!(targets("nonsense=!").would_enable("x", &Level::INFO));
    }
}
