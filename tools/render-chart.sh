#!/usr/bin/env bash
# Pushes a day of synthetic iCan readings to a running `make dev` and renders that day's
# chart (GET /devices/{device_sn}/chart.svg) to a PNG with headless Chromium, so the chart
# can be looked at without a browser session.
#
#   tools/render-chart.sh                  # against http://127.0.0.1:${PORT:-3000}
#   START=1 tools/render-chart.sh          # no `make dev` running: start a private one
#                                          # (DynamoDB Local on a free port), stop it after
#   PAGE=agp DAYS=14 tools/render-chart.sh # the ambulatory glucose profile of DAYS days
#                                          # (agp.svg; tools/render-agp.sh does this)
#
# Settings (environment): BASE (server URL), PUSH_KEY (when `make dev` has one), DEVICE
# (default DEMO-CHART), DATE (local day, default 2024-05-01; the first of DAYS, default 1),
# PAGE (chart or agp), OUT (default .dev/chart.png or .dev/agp.png), CHROMIUM (default
# chromium). The day is read in the server's SOURCE_TIMEZONE (+08:00 by
# default); re-running pushes the same testIds, which are stored once.
#
# The synthetic day: a reading every 3 minutes; the first five are the sensor's warm-up
# (status 1, drawn as hollow markers); 14:00-15:00 is missing (a gap in the line); a low
# night around 03:00 and three meals; device alerts at 3.9 and 10.0 mmol/L. Each further day
# is the same with its meals a little later and larger, so the profile has spread.
set -euo pipefail
cd "$(dirname "$0")/.."

PORT=${PORT:-3000}
BASE=${BASE:-http://127.0.0.1:$PORT}
DEVICE=${DEVICE:-DEMO-CHART}
DATE=${DATE:-2024-05-01}
DAYS=${DAYS:-1}
PAGE=${PAGE:-chart}
case "$PAGE" in
  chart) OUT=${OUT:-.dev/chart.png}; SIZE=1200,700 ;;
  agp) OUT=${OUT:-.dev/agp.png}; SIZE=794,1123 ;;
  *) echo "render-chart: PAGE is chart or agp" >&2; exit 1 ;;
esac
CHROMIUM=${CHROMIUM:-chromium}
KEY_QUERY=${PUSH_KEY:+?key=$PUSH_KEY}

command -v curl >/dev/null || { echo "render-chart: curl is needed" >&2; exit 1; }
command -v python3 >/dev/null || { echo "render-chart: python3 is needed" >&2; exit 1; }
command -v "$CHROMIUM" >/dev/null || {
  echo "render-chart: $CHROMIUM not found (apt-get install -y chromium, or set CHROMIUM)" >&2
  exit 1
}

work=$(mktemp -d)
server_pid=""
cleanup() {
  # The private stack runs in its own process group (setsid): stop all of it, Java included.
  if [ -n "$server_pid" ]; then kill -- "-$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

up() { curl -s -o /dev/null --max-time 2 "$BASE/devices/$DEVICE/summary"; }

if ! up; then
  if [ "${START:-0}" != 1 ]; then
    echo "render-chart: nothing answers at $BASE; run \`make dev\` first, or START=1 $0" >&2
    exit 1
  fi
  # A private stack: DynamoDB Local on a free port (so a `make dev` elsewhere on this
  # machine keeps its 8000), the local server on PORT.
  cargo build -q -p cgm-local --bin with-dynamodb-local --bin cgm-dev
  PORT=$PORT setsid target/debug/with-dynamodb-local target/debug/cgm-dev >"$work/server.log" 2>&1 &
  server_pid=$!
  for _ in $(seq 1 120); do up && break; sleep 0.5; done
  up || { echo "render-chart: the local server did not start:" >&2; cat "$work/server.log" >&2; exit 1; }
fi

# One JSON body per reading, and a curl config that sends them 8 at a time.
python3 - "$work" "$DEVICE" "$DATE" "$BASE/sinocare/cgm$KEY_QUERY" "$DAYS" <<'PY'
import json, math, os, sys
from datetime import datetime, timedelta
work, device, day, url, days = sys.argv[1:6]
start = datetime.strptime(day, "%Y-%m-%d")

def glucose(h, d):
    # A night low around 03:00, meals at 07:30, 12:30 and 18:30 (later and larger on later
    # days), a little sensor noise.
    v = 6.2 - (2.4 - 0.2 * (d % 3)) * math.exp(-((h - 3.0) / 1.2) ** 2)
    for meal, peak in ((7.5, 5.0), (12.5, 6.5), (18.5, 8.8)):
        m = meal + 0.25 * (d % 5)
        if h > m:
            t = h - m
            v += peak * (1 + 0.08 * (d % 4)) * (t / 1.1) * math.exp(1 - t / 1.1)
    return round(v + 0.15 * math.sin(h * 7.3 + d), 1)

cfg = []
for i in range(480 * int(days)):
    at = start + timedelta(minutes=3 * i)
    d = i // 480
    h = at.hour + at.minute / 60
    if 14 <= h < 15 and d == 0:
        continue  # lost in transit
    serial = i + 1
    body = {
        "reservedCode": "01",
        "data": {
            "testId": f"{device}-{day}-{serial:04d}",
            "deviceSn": device,
            "serialNo": serial,
            "testTime": at.strftime("%Y-%m-%d %H:%M:%S"),
            "testResult": f"{glucose(h, d):.1f}",
            "status": "1" if serial <= 5 else "0",
            "cgmStatus": "2",
            "cgmDay": 3,
            "increMinute": 3,
            "low": 3.9,
            "high": 10.0,
        },
    }
    path = os.path.join(work, f"{serial:05d}.json")
    with open(path, "w") as f:
        json.dump(body, f)
    # `next` resets every option, so each transfer carries its own.
    cfg.append(
        f'url = "{url}"\ndata-binary = "@{path}"\nheader = "content-type: application/json"\n'
        'output = "/dev/null"\nsilent\nshow-error\nwrite-out = "%{http_code}\\n"\n'
    )
with open(os.path.join(work, "curl.cfg"), "w") as f:
    f.write("next\n".join(cfg))
PY

codes=$(curl --no-progress-meter --parallel --parallel-max 8 -K "$work/curl.cfg" || true)
sent=$(grep -c . <<<"$codes")
ok=$(grep -c '^200$' <<<"$codes" || true)
echo "render-chart: pushed $sent readings of $DEVICE for $DAYS day(s) from $DATE ($ok answered 200)"
[ "$ok" = "$sent" ] || { echo "render-chart: some pushes failed (is PUSH_KEY right?)" >&2; exit 1; }

if [ "$PAGE" = agp ]; then
  last=$(python3 -c "import datetime,sys; print(datetime.date.fromisoformat(sys.argv[1]) + datetime.timedelta(days=int(sys.argv[2]) - 1))" "$DATE" "$DAYS")
  url="$BASE/devices/$DEVICE/agp.svg?from=$DATE&to=$last"
else
  url="$BASE/devices/$DEVICE/chart.svg?date=$DATE"
fi
curl -sS --fail -o "$work/page.svg" "$url"
mkdir -p "$(dirname "$OUT")"
out_abs="$(cd "$(dirname "$OUT")" && pwd)/$(basename "$OUT")"
"$CHROMIUM" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync \
  --user-data-dir="$work/profile" --hide-scrollbars \
  --screenshot="$out_abs" --window-size="$SIZE" "$url" >"$work/chromium.log" 2>&1 || {
  echo "render-chart: chromium failed:" >&2; cat "$work/chromium.log" >&2; exit 1
}
[ -s "$out_abs" ] || { echo "render-chart: chromium wrote no screenshot" >&2; cat "$work/chromium.log" >&2; exit 1; }
echo "render-chart: $url"
echo "render-chart: wrote $OUT"
if [ "$PAGE" = agp ]; then
  # The same page as the report function's PDF, drawn by poppler (tools/install.sh pdf-tools).
  command -v pdftoppm >/dev/null || { echo "render-chart: pdftoppm not found (tools/install.sh pdf-tools)" >&2; exit 1; }
  pdf_out="${OUT%.png}.pdf"
  curl -sS --fail -o "$pdf_out" "${url/agp.svg/agp.pdf}"
  pdftoppm -png -r 96 -singlefile "$pdf_out" "${OUT%.png}-pdf"
  echo "render-chart: wrote $pdf_out and ${OUT%.png}-pdf.png"
fi
