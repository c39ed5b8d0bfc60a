//! `cgm-bench` (what `make bench` runs): measures the push path's overhead over a bare
//! DynamoDB write, end-to-end throughput of the local server, the release binaries' cold
//! start and memory against a Lambda Runtime API stand-in, the partner proxy's added
//! latency and paging cost, and the deployed artifacts' sizes; then rewrites the figures
//! in BENCHMARKS.md between its markers.
//!
//! Needs `DYNAMODB_ENDPOINT` (the Makefile runs it under `with-dynamodb-local`) and the
//! release binaries (`target/release/{push,read,report,cgm-dev}`).

mod sections;
mod stats;

use clap::{Parser, ValueEnum};
use std::fmt::Write as _;

const START: &str = "<!-- bench:start -->";
const END: &str = "<!-- bench:end -->";

/// Measures the figures of BENCHMARKS.md (what `make bench` runs), prints them, and writes
/// them into BENCHMARKS.md between its bench:start and bench:end markers.
///
/// Sections run in the order listed below, whichever order they are named in. Each one
/// measured replaces its own block of BENCHMARKS.md (between `<!-- bench:<name> -->` and
/// `<!-- /bench:<name> -->`); the others are left as they were. Add --no-write to only print.
#[derive(Debug, Parser)]
#[command(name = "cgm-bench", verbatim_doc_comment, after_help = NEEDS)]
struct Args {
    /// The sections to measure; all of them when none is named.
    #[arg(value_enum)]
    sections: Vec<Section>,
    /// Print the figures only; leave BENCHMARKS.md as it is.
    #[arg(long)]
    no_write: bool,
}

const NEEDS: &str = "\
Environment:
  DYNAMODB_ENDPOINT  the DynamoDB Local to measure against (required; `make bench` runs
                     cgm-bench under with-dynamodb-local, which sets it)

Also needs the release binaries target/release/{push,read,report,cgm-dev}
(`cargo build --release -p cgm-push -p cgm-read -p cgm-report -p cgm-local --bins`) and the
fonts (`tools/install.sh fonts`), and for `size` the arm64 build in
.aws-sam/build (`make sam-build`).";

/// One figure of BENCHMARKS.md, in the order they are measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, ValueEnum)]
enum Section {
    /// The push handler vs a bare conditional PutItem
    Overhead,
    /// The release cgm-dev under load over HTTP
    E2e,
    /// The release push binary's init and first invocation
    ColdStart,
    /// Peak RSS of one push process
    Memory,
    /// The partner proxy's added latency and paging cost
    Proxy,
    /// Sizes of the arm64 bootstraps and their zips
    Size,
    /// Summary, gaps and the AGP (JSON, SVG, PDF) over 7-90 days of one sensor, with and without
    /// daily rollups; the read and report functions' peak RSS
    Reads,
    /// Lag from an acknowledged push to its alert event at 100 pushes/s; consumer throughput
    Alerts,
    /// The Nightscout feed's entries, properties and status with a 15-day sensor stored
    Nightscout,
    /// The FHIR read API: a 1,000-reading search page, a summary, with a 15-day sensor stored
    Fhir,
}

impl Section {
    fn name(self) -> String {
        self.to_possible_value().map(|v| v.get_name().to_string()).unwrap_or_default()
    }
}

impl Args {
    /// The sections to run, in their fixed order.
    fn sections(&self) -> Vec<Section> {
        let mut s = if self.sections.is_empty() { Section::value_variants().to_vec() } else { self.sections.clone() };
        s.sort();
        s.dedup();
        s
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Before anything else: --help and a bad argument measure and write nothing.
    let args = Args::parse();
    let machine = machine();
    let mut blocks = Vec::new();
    for section in args.sections() {
        let figures = match section {
            Section::Overhead => sections::overhead(2_000).await?,
            Section::E2e => sections::end_to_end(20_000, 32).await?,
            Section::ColdStart => sections::cold_start(20).await?,
            Section::Memory => sections::memory(10_000).await?,
            Section::Proxy => sections::proxy(2_000).await?,
            Section::Size => sections::size()?,
            Section::Reads => sections::reads_at_scale(10).await?,
            Section::Alerts => sections::alerts(100, 60, 100).await?,
            Section::Nightscout => sections::nightscout(200).await?,
            Section::Fhir => sections::fhir(50).await?,
        };
        let measured = format!("Measured {} on {machine}.\n\n", chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"));
        let mut block = String::new();
        // The heading first, then when and where.
        match figures.split_once("\n\n") {
            Some((heading, rest)) => write!(block, "{heading}\n\n{measured}{rest}")?,
            None => write!(block, "{measured}{figures}")?,
        }
        print!("{block}");
        blocks.push((section.name(), block));
    }
    if args.no_write {
        return Ok(());
    }
    let path = cgm_local::repo_root().join("BENCHMARKS.md");
    let mut doc = std::fs::read_to_string(&path)?;
    for (name, block) in &blocks {
        doc = replace_block(&doc, name, block)?;
    }
    std::fs::write(&path, doc)?;
    eprintln!("cgm-bench: figures written to BENCHMARKS.md");
    Ok(())
}

/// `doc` with the block named `name` holding `content`; a block not there yet goes before the
/// end marker of the results.
fn replace_block(doc: &str, name: &str, content: &str) -> anyhow::Result<String> {
    let (open, close) = (format!("<!-- bench:{name} -->"), format!("<!-- /bench:{name} -->"));
    let fresh = format!("{open}\n{content}{close}");
    if let (Some(a), Some(b)) = (doc.find(&open), doc.find(&close)) {
        anyhow::ensure!(a < b, "BENCHMARKS.md: {close} comes before {open}");
        return Ok(format!("{}{fresh}{}", &doc[..a], &doc[b + close.len()..]));
    }
    let (Some(_), Some(end)) = (doc.find(START), doc.find(END)) else {
        anyhow::bail!("BENCHMARKS.md lacks the {START} / {END} markers");
    };
    Ok(format!("{}{fresh}\n\n{}", &doc[..end], &doc[end..]))
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    format!("{cores} cores ({cpu}), {}", std::env::consts::ARCH)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;
    use clap::error::ErrorKind;

    fn parse(args: &[&str]) -> Result<Args, clap::Error> {
        Args::try_parse_from(std::iter::once("cgm-bench").chain(args.iter().copied()))
    }

    #[test]
    fn no_section_named_is_all_of_them_written_or_not() {
        Args::command().debug_assert();
        let all = Section::value_variants().to_vec();
        let a = parse(&[]).unwrap();
        assert_eq!((a.sections(), a.no_write), (all.clone(), false));
        let a = parse(&["--no-write"]).unwrap();
        assert_eq!((a.sections(), a.no_write), (all, true), "--no-write alone measures everything");
    }

    #[test]
    fn a_section_replaces_its_own_block_and_a_new_one_goes_before_the_end() {
        let doc = format!("intro\n{START}\n<!-- bench:size -->\nold size\n<!-- /bench:size -->\n\n{END}\nafter\n");
        let doc = replace_block(&doc, "size", "new size\n").unwrap();
        assert!(
            doc.contains("<!-- bench:size -->\nnew size\n<!-- /bench:size -->") && !doc.contains("old size"),
            "{doc}"
        );
        let doc = replace_block(&doc, "reads", "reads\n").unwrap();
        let (size, reads, end) = (doc.find("new size").unwrap(), doc.find("reads\n").unwrap(), doc.find(END).unwrap());
        assert!(size < reads && reads < end && doc.ends_with("after\n"), "{doc}");
        assert!(replace_block("no markers", "reads", "x").is_err());
    }

    #[test]
    fn named_sections_run_once_each_in_the_fixed_order() {
        let a = parse(&["size", "--no-write", "e2e", "cold-start", "e2e"]).unwrap();
        assert_eq!((a.sections(), a.no_write), (vec![Section::E2e, Section::ColdStart, Section::Size], true));
        let a = parse(&["overhead", "memory", "proxy"]).unwrap();
        assert_eq!(a.sections(), [Section::Overhead, Section::Memory, Section::Proxy]);
    }

    #[test]
    fn help_and_bad_arguments_are_not_runs() {
        assert_eq!(parse(&["--help"]).unwrap_err().kind(), ErrorKind::DisplayHelp);
        assert_eq!(parse(&["e2e", "-h"]).unwrap_err().kind(), ErrorKind::DisplayHelp);
        for (bad, kind) in [
            (&["--bogus"][..], ErrorKind::UnknownArgument),
            (&["--no-wirte"], ErrorKind::UnknownArgument),
            (&["cold_start"], ErrorKind::InvalidValue),
            (&["e2e", "sizes"], ErrorKind::InvalidValue),
        ] {
            let e = parse(bad).unwrap_err();
            assert_eq!((e.kind(), e.exit_code()), (kind, 2), "{bad:?}");
        }
    }
}
