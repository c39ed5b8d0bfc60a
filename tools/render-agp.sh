#!/usr/bin/env bash
# Pushes 14 days of synthetic iCan readings to a running `make dev` (or, with START=1, a
# private one) and renders the ambulatory glucose profile of those days
# (GET /devices/{device_sn}/agp.svg) to a PNG with headless Chromium, so a person can look
# at the page: `.dev/agp.png` by default; and the same page as the report function's PDF
# (`agp.pdf`), saved as `.dev/agp.pdf` and drawn by poppler's pdftoppm to `.dev/agp-pdf.png`. The same settings as tools/render-chart.sh, whose
# synthetic days and push it uses (DAYS, default 14; DATE, the first day).
set -euo pipefail
cd "$(dirname "$0")/.."
PAGE=agp DAYS=${DAYS:-14} exec tools/render-chart.sh
