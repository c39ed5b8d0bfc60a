#!/usr/bin/env bash
# After `sam build`: every function of the template has an arm64 Linux `bootstrap`; prints
# each one's size and the size of the zip SAM would upload.
set -euo pipefail
build=${1:-.aws-sam/build}
status=0
for fn in $(python3 - "$build/template.yaml" <<'PY'
import re, sys
# Function logical ids from the built template (plain YAML scan; no PyYAML needed).
text = open(sys.argv[1]).read()
for m in re.finditer(r'^  (\w+):\n    Type: AWS::Serverless::Function', text, re.M):
    print(m.group(1))
PY
); do
  f="$build/$fn/bootstrap"
  if [ ! -f "$f" ]; then echo "check-build: $fn has no bootstrap at $f"; status=1; continue; fi
  if ! python3 -c 'import sys; h=open(sys.argv[1],"rb").read(20); sys.exit(0 if h[:4]==b"\x7fELF" and int.from_bytes(h[18:20],"little")==183 else 1)' "$f"; then
    echo "check-build: $f is not an arm64 (aarch64) ELF executable"; status=1; continue
  fi
  zip_size=$(python3 -c 'import io,sys,zipfile; b=io.BytesIO(); z=zipfile.ZipFile(b,"w",zipfile.ZIP_DEFLATED); z.write(sys.argv[1],"bootstrap"); z.close(); print(len(b.getvalue()))' "$f")
  echo "check-build: $fn bootstrap $(stat -c %s "$f") bytes, zip $zip_size bytes (arm64)"
done
exit $status
