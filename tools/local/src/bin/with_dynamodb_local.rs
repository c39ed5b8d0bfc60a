//! `with-dynamodb-local CMD [ARGS…]`: starts DynamoDB Local (in memory) on a free port on
//! 127.0.0.1, runs CMD with `DYNAMODB_ENDPOINT` pointing at it, stops it, and exits with
//! CMD's status. `make test` runs the test suite this way, so it can run beside `make dev`.

use cgm_local::dynamodb_local::{DynamoDbLocal, Storage};
use std::process::{Command, ExitCode};

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let Some(program) = args.next() else {
        eprintln!("usage: with-dynamodb-local CMD [ARGS...]");
        return ExitCode::from(2);
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
            eprintln!("with-dynamodb-local: cannot run {program}: {e}");
            ExitCode::from(127)
        }
    }
}
