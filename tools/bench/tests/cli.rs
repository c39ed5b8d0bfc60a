//! cgm-bench's command line, run as built: `--help` and bad arguments measure nothing and
//! leave BENCHMARKS.md as it is. (They used to run no section and overwrite its results
//! with a bare "Measured …" header.)
//!
//! Runs without DYNAMODB_ENDPOINT, so a run that went ahead into any section would fail.

use std::path::PathBuf;
use std::process::{Command, Output};

const CGM_BENCH: &str = env!("CARGO_BIN_EXE_cgm-bench");

fn benchmarks_md() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../BENCHMARKS.md")
}

fn run(args: &[&str]) -> Output {
    Command::new(CGM_BENCH).args(args).env_remove("DYNAMODB_ENDPOINT").output().expect("cgm-bench runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn show(o: &Output) -> String {
    format!("status {:?}\n--- stdout\n{}--- stderr\n{}", o.status.code(), text(&o.stdout), text(&o.stderr))
}

#[test]
fn help_and_bad_arguments_measure_nothing_and_leave_benchmarks_md_alone() {
    // Given BENCHMARKS.md as it is
    let before = std::fs::read(benchmarks_md()).expect("BENCHMARKS.md");

    // When cgm-bench is asked for help, it prints it and exits 0
    for flag in ["--help", "-h"] {
        let o = run(&[flag]);
        eprintln!("cgm-bench {flag}:\n{}", text(&o.stdout));
        assert_eq!(o.status.code(), Some(0), "{}", show(&o));
        assert!(o.stderr.is_empty(), "{}", show(&o));
        let out = text(&o.stdout);
        for m in ["BENCHMARKS.md", "DYNAMODB_ENDPOINT", "--no-write", "cold-start", "make bench"] {
            assert!(out.contains(m), "the help mentions {m}: {}", show(&o));
        }
    }

    // And a typo, an unknown option or an unknown section is a usage error naming it
    for (args, named) in [
        (&["--bogus"][..], "--bogus"),
        (&["--no-wirte"], "--no-wirte"),
        (&["cold_start", "--no-write"], "cold_start"),
        (&["e2e", "sizes"], "sizes"),
    ] {
        let o = run(args);
        eprintln!("cgm-bench {}:\n{}", args.join(" "), text(&o.stderr));
        assert_eq!(o.status.code(), Some(2), "{}", show(&o));
        assert!(o.stdout.is_empty(), "nothing measured: {}", show(&o));
        let err = text(&o.stderr);
        assert!(err.lines().next().unwrap_or_default().contains(&format!("'{named}'")), "{}", show(&o));
        assert!(err.contains("try '--help'"), "{}", show(&o));
    }

    // Then BENCHMARKS.md is unchanged
    let after = std::fs::read(benchmarks_md()).expect("BENCHMARKS.md");
    assert!(before == after, "BENCHMARKS.md was changed");
}
