#!/usr/bin/env bash
# Writes criterion's medians (from `cargo bench` output) into BENCHMARKS.md's micro block.
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
import datetime, os
when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "unknown CPU")
table = ("### 7. Micro-benchmarks (criterion; target for the push: under 10 µs)\n\n"
         f"Measured {when} on {os.cpu_count()} cores ({cpu}), {os.uname().machine}.\n\n"
         "| benchmark | median | 95% interval |\n|---|---|---|\n" + "\n".join(rows) + "\n\n")
open_, close, end = "<!-- bench:micro -->", "<!-- /bench:micro -->", "<!-- bench:end -->"
assert end in doc, "BENCHMARKS.md lacks its end marker"
if open_ in doc and close in doc:
    a, b = doc.index(open_), doc.index(close) + len(close)
    doc = doc[:a] + open_ + "\n" + table + close + doc[b:]
else:
    doc = doc.replace(end, open_ + "\n" + table + close + "\n\n" + end)
open(sys.argv[2], "w").write(doc)
PY
