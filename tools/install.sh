#!/usr/bin/env bash
# Installs, idempotently, the tools that `make dev` and `make test` need and that a fresh
# machine does not have. Everything lands in the git-ignored .tools/ folder, except the
# aarch64 Rust target, which rustup keeps per toolchain.
#
#   tools/install.sh dynamodb-local   DynamoDB Local (the official AWS engine, run by Java 17)
#   tools/install.sh sam              one Python venv with aws-sam-cli, cfn-lint, cargo-lambda, ziglang,
#                                     openapi-spec-validator, py-nightscout (a Nightscout client)
#   tools/install.sh qemu             qemu-user-static and Debian's arm64 C library, to run the
#                                     arm64 bootstraps on an x86_64 machine (Debian's apt, as root)
#   tools/install.sh fonts            Noto Sans CJK (Chinese and Latin, regular and bold) from Debian's
#                                     fonts-noto-cjk into .tools/fonts-layer/fonts: the report
#                                     function's fonts layer (apt-get, as root, if not installed)
#   tools/install.sh pdf-tools        poppler-utils (pdfinfo, pdftotext, pdftoppm): the tests'
#                                     PDF reader (Debian's apt, as root)
#   tools/install.sh fhir-validator   FHIR.js and fhirpath.js (npm, pinned by the lock file) into
#                                     tools/fhir-validate/node_modules: the tests' FHIR validator
#   tools/install.sh render           chromium, for tools/render-chart.sh and tools/render-agp.sh
#   tools/install.sh all              all of these but render, plus the aarch64 target
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
tools="$root/.tools"
mkdir -p "$tools"

# DynamoDB Local has no registry package of its own here; the amplify simulator ships
# AWS's DynamoDBLocal.jar and its native libraries unchanged under package/emulator/.
DDB_PACKAGE=amplify-dynamodb-simulator@2.9.30
ddb_dir="$tools/dynamodb-local"

dynamodb_local() {
  if [ -f "$ddb_dir/DynamoDBLocal.jar" ]; then return 0; fi
  command -v java >/dev/null || { echo "install.sh: java (17+) is needed to run DynamoDB Local" >&2; exit 1; }
  command -v npm >/dev/null || { echo "install.sh: npm is needed to fetch DynamoDB Local ($DDB_PACKAGE)" >&2; exit 1; }
  echo "install.sh: fetching DynamoDB Local ($DDB_PACKAGE) into .tools/dynamodb-local" >&2
  local tmp
  tmp=$(mktemp -d)
  (cd "$tmp" && npm pack --silent "$DDB_PACKAGE" >/dev/null && tar -xzf ./*.tgz)
  rm -rf "$ddb_dir.partial"
  mv "$tmp/package/emulator" "$ddb_dir.partial"
  mv "$ddb_dir.partial" "$ddb_dir"
  rm -rf "$tmp"
}

# Pinned so that a CI run next month lints with the rules this template (and docs/openapi.yaml)
# was checked with.
# py-nightscout is a real Nightscout client library, run unchanged by the Nightscout tests.
PY_PACKAGES=(aws-sam-cli==1.170.0 cfn-lint==1.58.0 cargo-lambda==1.9.2 ziglang==0.14.1
  openapi-spec-validator==0.9.0 py-nightscout==1.3.3)
venv="$tools/venv"

sam_tools() {
  local stamp="$venv/.installed"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "${PY_PACKAGES[*]}" ]; then return 0; fi
  echo "install.sh: installing ${PY_PACKAGES[*]} into .tools/venv" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "${PY_PACKAGES[@]}"
  echo "${PY_PACKAGES[*]}" >"$stamp"
}

aarch64_target() {
  if rustup target list --installed | grep -qx aarch64-unknown-linux-gnu; then return 0; fi
  rustup target add aarch64-unknown-linux-gnu
}

# The runtime canary test runs sam build's arm64 bootstraps, which are dynamically linked
# against glibc: qemu's user-mode emulator with Debian's arm64 libc as its sysroot.
qemu_arm64() {
  if [ "$(uname -m)" = aarch64 ]; then return 0; fi
  if [ -x /usr/bin/qemu-aarch64-static ] && [ -e /usr/aarch64-linux-gnu/lib/ld-linux-aarch64.so.1 ]; then return 0; fi
  command -v apt-get >/dev/null || { echo "install.sh: install qemu-user-static and libc6-arm64-cross (Debian packages) to run the arm64 bootstraps" >&2; exit 1; }
  local sudo=""
  [ "$(id -u)" = 0 ] || sudo=sudo
  echo "install.sh: installing qemu-user-static and libc6-arm64-cross with apt-get" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq qemu-user-static libc6-arm64-cross >/dev/null
}

# Debian packages, installed only when the command they provide is missing.
apt_install() {
  command -v apt-get >/dev/null || { echo "install.sh: install the Debian packages $* (or their equivalent)" >&2; exit 1; }
  local sudo=""
  [ "$(id -u)" = 0 ] || sudo=sudo
  echo "install.sh: installing $* with apt-get" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >/dev/null
}

# The layer's folder is what Lambda unpacks under /opt: /opt/fonts/*.ttc. The collections
# are copied whole; the PDF embeds only the glyphs a page uses (svg2pdf subsets them).
NOTO_CJK=/usr/share/fonts/opentype/noto
fonts_dir="$tools/fonts-layer/fonts"

fonts() {
  if [ -f "$fonts_dir/NotoSansCJK-Regular.ttc" ] && [ -f "$fonts_dir/NotoSansCJK-Bold.ttc" ]; then return 0; fi
  [ -f "$NOTO_CJK/NotoSansCJK-Regular.ttc" ] || apt_install fonts-noto-cjk
  mkdir -p "$fonts_dir"
  cp "$NOTO_CJK/NotoSansCJK-Regular.ttc" "$NOTO_CJK/NotoSansCJK-Bold.ttc" "$fonts_dir/"
}

pdf_tools() {
  command -v pdfinfo >/dev/null && command -v pdftoppm >/dev/null && command -v pdftotext >/dev/null && return 0
  apt_install poppler-utils
}

# npm ci from the committed lock file, again only when the lock file changed. No install
# scripts run: the two packages are plain JavaScript.
fhir_dir="$root/tools/fhir-validate"

fhir_validator() {
  local stamp="$fhir_dir/node_modules/.cgm-lock.sha256"
  local want
  want=$(sha256sum "$fhir_dir/package-lock.json" | cut -d' ' -f1)
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then return 0; fi
  echo "install.sh: installing the FHIR validator's packages (npm ci) into tools/fhir-validate/node_modules"
  (cd "$fhir_dir" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
  echo "$want" > "$stamp"
}

render_tools() {
  command -v chromium >/dev/null && return 0
  apt_install chromium
}

case "${1:-all}" in
  dynamodb-local) dynamodb_local ;;
  sam) sam_tools; aarch64_target ;;
  qemu) qemu_arm64 ;;
  fonts) fonts ;;
  pdf-tools) pdf_tools ;;
  fhir-validator) fhir_validator ;;
  render) pdf_tools; render_tools ;;
  all) dynamodb_local; sam_tools; aarch64_target; qemu_arm64; fonts; pdf_tools; fhir_validator ;;
  *) echo "usage: tools/install.sh [dynamodb-local|sam|qemu|fonts|pdf-tools|fhir-validator|render|all]" >&2; exit 2 ;;
esac
