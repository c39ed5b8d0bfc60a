#!/usr/bin/env bash
# Adds criterion's medians (from `cargo bench` output) to BENCHMARKS.md, inside the figures
# that `cgm-bench` just wrote.
set -euo pipefail
summary=$1 doc=$2
python3 - "$summary" "$doc" <<'PY'
import re, sys
summary, doc = open(sys.argv[1]).read(), open(sys.argv[2]).read()
rows, name = [], None
for line in summary.splitlines():
    if line.startswith("Benchmarking") or not line.strip():
        continue
    m = re.search(r"time:\s+\[(\S+ \S+) (\S+ \S+) (\S+ \S+)\]", line)
    if not line.startswith(" ") and "time:" in line:
        name = line.split("time:")[0].strip()
    elif not line.startswith(" ") and not line.startswith("Found"):
        name = line.strip()
    if m and name:
        rows.append(f"| {name} | {m.group(2)} | {m.group(1)} – {m.group(3)} |")
        name = None
table = "### 7. Micro-benchmarks (criterion; target for the push: under 10 µs)\n\n| benchmark | median | 95% interval |\n|---|---|---|\n" + "\n".join(rows) + "\n\n"
end = "<!-- bench:end -->"
assert end in doc, "BENCHMARKS.md lacks its end marker"
open(sys.argv[2], "w").write(doc.replace(end, table + end))
PY
