//! Logging as Lambda expects it: one JSON object per line by default (or plain text when
//! `AWS_LAMBDA_LOG_FORMAT=Text`), level from `AWS_LAMBDA_LOG_LEVEL` or `RUST_LOG`.
//!
//! Personal data is never handed to a log macro here (see [`cgm_domain::sensitive`]). Other
//! crates are not so careful: the Lambda runtime logs every raw invocation event at TRACE
//! (push keys, follower tokens, SigV4 headers, whole bodies with the patient fields), and
//! the AWS SDK and its HTTP stack print whole request and response bodies at DEBUG and
//! TRACE. So whatever level the operator asks for, a fixed cap applies on top of it: no
//! target outside the project's own (`cgm_*`) is ever logged below INFO. The canary tests
//! hold both rules, through the handlers and through the real release binaries.

use tracing::Level;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::{Layer, filter};

/// The project's own targets: crate names (module paths) and the edge's log line.
const OWN_TARGET_PREFIX: &str = "cgm_";

/// The cap: the project's own targets at any level, every other target at INFO or above.
/// A filter of its own, applied in addition to the operator's directives, so no directive
/// (`lambda_runtime=trace`, `trace`) can lift it.
fn within_cap(meta: &tracing::Metadata<'_>) -> bool {
    *meta.level() <= Level::INFO || meta.target().starts_with(OWN_TARGET_PREFIX)
}

/// Log lines kept in memory, for tests that read what a request logged: hand
/// `move || buffer.clone()` to [`subscriber`] as its writer.
#[derive(Clone, Default)]
pub struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl Captured {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(|p| p.into_inner())).into_owned()
    }
}

impl std::io::Write for Captured {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

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
    let cap = filter::filter_fn(within_cap);
    let base = tracing_subscriber::fmt::layer().with_writer(writer).with_target(true);
    let format = if json {
        base.json().flatten_event(true).with_current_span(false).with_span_list(false).boxed()
    } else {
        base.boxed()
    };
    tracing_subscriber::registry().with(format.with_filter(cap).with_filter(wanted))
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

    #[test]
    fn no_directive_lifts_the_cap_on_other_crates() {
        for directive in
            ["trace", "TRACE", "lambda_runtime=trace", "info,lambda_runtime::layers=trace,aws_smithy_runtime=debug"]
        {
            let buf = Captured::default();
            let w = buf.clone();
            tracing::subscriber::with_default(subscriber(true, Some(directive), move || w.clone()), || {
                tracing::trace!(target: "lambda_runtime::layers::api_response", "raw event SECRET-1");
                tracing::debug!(target: "aws_smithy_runtime::client", "body SECRET-2");
                tracing::info!(target: "lambda_runtime", "started");
                tracing::trace!(target: "cgm_edge", "own trace");
            });
            let text = buf.text();
            assert!(!text.contains("SECRET"), "{directive}: {text}");
            assert!(text.contains("started"), "{directive}: INFO of other crates stays");
            if directive.eq_ignore_ascii_case("trace") {
                assert!(text.contains("own trace"), "{directive}: the project's own TRACE is allowed");
            }
        }
    }
}
