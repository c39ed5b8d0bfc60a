//! `with-dynamodb-local CMD [ARGS…]`: starts DynamoDB Local (in memory) on a free port on
//! 127.0.0.1, runs CMD with `DYNAMODB_ENDPOINT` pointing at it, stops it, and exits with
//! CMD's status. `make test` runs the test suite this way, so it can run beside `make dev`.
//!
//! The command line is parsed by hand, not with clap: its only option is `--help`, and
//! everything from the first other argument on is CMD's, passed through untouched (a
//! `--help` after CMD is CMD's), which a few lines say more plainly than clap's
//! trailing-argument settings.

use cgm_local::dynamodb_local::{DynamoDbLocal, Storage};
use std::ffi::OsString;
use std::process::{Command, ExitCode};

const USAGE: &str = "Usage: with-dynamodb-local [--] CMD [ARGS...]";

const HELP: &str = "\
Starts DynamoDB Local (in memory) on a free port on 127.0.0.1, runs CMD with
DYNAMODB_ENDPOINT pointing at it, stops it, and exits with CMD's status. `make test` runs
the test suite this way, so it can run beside `make dev`.

Usage: with-dynamodb-local [--] CMD [ARGS...]

Everything from CMD on is CMD's command line, passed as is: a --help after CMD is CMD's.
Put -- before a CMD whose name begins with '-'.

Options:
  -h, --help  Print help

Environment:
  DYNAMODB_LOCAL_DIR  where DynamoDB Local is installed (default .tools/dynamodb-local;
                      `tools/install.sh dynamodb-local` fetches it); `java` (17 or newer)
                      must be on PATH
  DYNAMODB_ENDPOINT   set for CMD: http://127.0.0.1:<port> of the DynamoDB Local started

Exit status: CMD's; 1 when DynamoDB Local does not start or CMD is killed by a signal,
2 for a usage error, 127 when CMD cannot be run.
";

/// What the command line asks for.
#[derive(Debug, PartialEq)]
enum Invocation {
    Help,
    Run { program: OsString, args: Vec<OsString> },
}

#[derive(Debug, PartialEq)]
enum Usage {
    NoCommand,
    UnknownOption(String),
}

/// `args` without the program name. Options are looked for only before CMD.
fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Invocation, Usage> {
    let mut args = args.into_iter();
    let first = args.next().ok_or(Usage::NoCommand)?;
    let program = match first.to_str() {
        Some("-h" | "--help") => return Ok(Invocation::Help),
        Some("--") => args.next().ok_or(Usage::NoCommand)?,
        Some(option) if option.starts_with('-') => return Err(Usage::UnknownOption(option.to_string())),
        _ => first,
    };
    Ok(Invocation::Run { program, args: args.collect() })
}

fn main() -> ExitCode {
    let (program, args) = match parse(std::env::args_os().skip(1)) {
        Ok(Invocation::Run { program, args }) => (program, args),
        Ok(Invocation::Help) => {
            print!("{HELP}");
            return ExitCode::SUCCESS;
        }
        Err(usage) => {
            match usage {
                Usage::NoCommand => eprintln!("error: no command given"),
                Usage::UnknownOption(o) => eprintln!("error: unexpected argument '{o}' found"),
            }
            eprintln!("\n{USAGE}\n\nFor more information, try '--help'.");
            return ExitCode::from(2);
        }
    };
    let ddb = match DynamoDbLocal::start(None, Storage::InMemory) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("with-dynamodb-local: {e}");
            return ExitCode::from(1);
        }
    };
    eprintln!("with-dynamodb-local: DynamoDB Local on {} (pid {})", ddb.endpoint(), ddb.pid());
    let status = Command::new(&program).args(args).env("DYNAMODB_ENDPOINT", ddb.endpoint()).status();
    drop(ddb);
    match status {
        Ok(s) => ExitCode::from(s.code().map(|c| c as u8).unwrap_or(1)),
        Err(e) => {
            eprintln!("with-dynamodb-local: cannot run {}: {e}", program.to_string_lossy());
            ExitCode::from(127)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_strs(args: &[&str]) -> Result<Invocation, Usage> {
        parse(args.iter().map(OsString::from))
    }

    fn run(program: &str, args: &[&str]) -> Result<Invocation, Usage> {
        Ok(Invocation::Run { program: program.into(), args: args.iter().map(OsString::from).collect() })
    }

    #[test]
    fn everything_from_the_first_non_option_on_is_the_command() {
        assert_eq!(
            parse_strs(&["cargo", "nextest", "run", "--workspace", "--locked", "--no-fail-fast"]),
            run("cargo", &["nextest", "run", "--workspace", "--locked", "--no-fail-fast"])
        );
        assert_eq!(parse_strs(&["cargo", "--help"]), run("cargo", &["--help"]), "CMD's own --help");
        assert_eq!(parse_strs(&["true"]), run("true", &[]));
        assert_eq!(parse_strs(&["--", "-odd", "--help"]), run("-odd", &["--help"]));
        assert_eq!(parse_strs(&["--", "--"]), run("--", &[]));
    }

    #[test]
    fn help_and_usage_errors() {
        assert_eq!(parse_strs(&["--help"]), Ok(Invocation::Help));
        assert_eq!(parse_strs(&["-h", "cargo"]), Ok(Invocation::Help));
        assert_eq!(parse_strs(&[]), Err(Usage::NoCommand));
        assert_eq!(parse_strs(&["--"]), Err(Usage::NoCommand));
        assert_eq!(parse_strs(&["--bogus", "cargo"]), Err(Usage::UnknownOption("--bogus".into())));
        assert_eq!(parse_strs(&["-x"]), Err(Usage::UnknownOption("-x".into())));
    }
}
