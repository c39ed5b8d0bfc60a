//! The command lines of `cgm-dev` and `with-dynamodb-local`, run as built: `--help` prints
//! help and starts nothing, a bad argument is a usage error that starts nothing, and
//! `with-dynamodb-local CMD …` still hands CMD its arguments untouched.
//!
//! "Starts nothing" is made visible: each run gets a DynamoDB Local install folder that does
//! not exist and, for cgm-dev, a PORT this test holds, so a run that went ahead would fail
//! with exit status 1 and say so on stderr.

use std::net::TcpListener;
use std::process::{Command, Output};

const CGM_DEV: &str = env!("CARGO_BIN_EXE_cgm-dev");
const WITH_DYNAMODB_LOCAL: &str = env!("CARGO_BIN_EXE_with-dynamodb-local");

fn run(bin: &str, args: &[&str], port: u16) -> Output {
    Command::new(bin)
        .args(args)
        .env("PORT", port.to_string())
        .env("DYNAMODB_LOCAL_DIR", "/nonexistent/cgm-bridge-cli-test")
        .env_remove("DYNAMODB_ENDPOINT")
        .output()
        .expect("the binary runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn show(o: &Output) -> String {
    format!("status {:?}\n--- stdout\n{}--- stderr\n{}", o.status.code(), text(&o.stdout), text(&o.stderr))
}

fn assert_help(o: &Output, mentions: &[&str]) {
    assert_eq!(o.status.code(), Some(0), "{}", show(o));
    assert!(o.stderr.is_empty(), "nothing but help: {}", show(o));
    let out = text(&o.stdout);
    for m in mentions {
        assert!(out.contains(m), "the help mentions {m}: {}", show(o));
    }
}

fn assert_usage_error(o: &Output, arg: &str) {
    assert_eq!(o.status.code(), Some(2), "{}", show(o));
    assert!(o.stdout.is_empty(), "{}", show(o));
    let err = text(&o.stderr);
    let first = err.lines().next().unwrap_or_default();
    assert!(first.contains(&format!("'{arg}'")), "the first line names {arg}: {}", show(o));
    assert!(err.contains("try '--help'"), "a hint to --help: {}", show(o));
    assert!(!err.contains("DynamoDB Local"), "nothing started: {}", show(o));
}

#[test]
fn cgm_dev_help_prints_what_it_does_and_reads_and_starts_nothing() {
    // Given the port cgm-dev would serve on, held here
    let held = TcpListener::bind(("127.0.0.1", 0)).unwrap();
    let port = held.local_addr().unwrap().port();
    for flag in ["--help", "-h"] {
        let o = run(CGM_DEV, &[flag], port);
        eprintln!("cgm-dev {flag}:\n{}", text(&o.stdout));
        assert_help(&o, &["make dev", "PORT", "DYNAMODB_ENDPOINT", "PUSH_KEY"]);
    }
}

#[test]
fn cgm_dev_refuses_any_argument() {
    let held = TcpListener::bind(("127.0.0.1", 0)).unwrap();
    let port = held.local_addr().unwrap().port();
    for arg in ["--bogus", "serve", "--port=3001"] {
        let o = run(CGM_DEV, &[arg], port);
        eprintln!("cgm-dev {arg}:\n{}", text(&o.stderr));
        assert_usage_error(&o, arg.split('=').next().unwrap());
    }
}

#[test]
fn with_dynamodb_local_help_prints_usage_and_starts_nothing() {
    for flag in ["--help", "-h"] {
        let o = run(WITH_DYNAMODB_LOCAL, &[flag, "true"], 0);
        eprintln!("with-dynamodb-local {flag}:\n{}", text(&o.stdout));
        assert_help(&o, &["CMD", "DYNAMODB_ENDPOINT", "DYNAMODB_LOCAL_DIR", "make test"]);
    }
}

#[test]
fn with_dynamodb_local_refuses_an_unknown_option_or_no_command() {
    let o = run(WITH_DYNAMODB_LOCAL, &["--bogus", "true"], 0);
    eprintln!("with-dynamodb-local --bogus true:\n{}", text(&o.stderr));
    assert_usage_error(&o, "--bogus");

    let o = run(WITH_DYNAMODB_LOCAL, &[], 0);
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    assert!(text(&o.stderr).contains("no command"), "{}", show(&o));
}

/// Needs DynamoDB Local installed (`tools/install.sh dynamodb-local`, which `make test`
/// runs; or DYNAMODB_LOCAL_DIR naming an install).
#[test]
fn with_dynamodb_local_runs_the_command_with_its_own_help_flag_as_before() {
    // Given a command that checks the endpoint it was handed and its arguments
    let script = r#"case "$DYNAMODB_ENDPOINT" in http://127.0.0.1:*) ;; *) exit 1;; esac
        test "$1 $2" = "--help --bogus" || exit 1
        exit 7"#;

    // When it runs under with-dynamodb-local, a --help after it
    let o = Command::new(WITH_DYNAMODB_LOCAL)
        .args(["sh", "-c", script, "sh", "--help", "--bogus"])
        .env_remove("DYNAMODB_ENDPOINT")
        .output()
        .expect("the binary runs");

    // Then the command got its arguments and the endpoint, and its status is passed on
    eprintln!("with-dynamodb-local sh -c …:\n{}", text(&o.stderr));
    assert_eq!(o.status.code(), Some(7), "{}", show(&o));
    assert!(text(&o.stderr).contains("DynamoDB Local on http://127.0.0.1:"), "{}", show(&o));
}
