use std::fmt::Write as _;

/// Figure 5: sizes of the arm64 `bootstrap` files `sam build` left, and their zips.
pub fn size() -> anyhow::Result<String> {
    let root = cgm_local::repo_root();
    let out =
        std::process::Command::new(root.join("tools/check-build.sh")).arg(root.join(".aws-sam/build")).output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    anyhow::ensure!(out.status.success(), "tools/check-build.sh failed (run `make sam-build` first): {text}");
    let mut o = String::from(
        "### 5. Size of the arm64 artifacts (`sam build`; targets: bootstrap ≤ 8 MB, zip ≤ 4 MB)\n\n| function | bootstrap | zip |\n|---|---|---|\n",
    );
    for l in text.lines() {
        // check-build: <Fn> bootstrap <n> bytes, zip <m> bytes (arm64)
        let w: Vec<&str> = l.split_whitespace().collect();
        if w.len() >= 7 && w[2] == "bootstrap" {
            let mb = |s: &str| s.trim_end_matches(',').parse::<f64>().unwrap_or(0.0) / 1_048_576.0;
            writeln!(o, "| {} | {:.2} MB | {:.2} MB |", w[1], mb(w[3]), mb(w[6]))?;
        }
    }
    o.push('\n');
    Ok(o)
}
