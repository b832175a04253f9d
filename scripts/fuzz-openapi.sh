#!/usr/bin/env bash
# Fuzzes the running HTTP API from its own OpenAPI document (/fhir/openapi.json) with
# Schemathesis, checking that no request is answered with a server error (5xx).
# Usage: scripts/fuzz-openapi.sh [seconds] [tag-regex]
#   (default 300 s over Patient, Observation, the system-level paths and the types with
#   operations; BIN=path to use a built binary, else a release build is made).
# Needs: pip install schemathesis (tried with 4.32.5).
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-300}
TAGS=${2:-'^(Patient|Observation|System|CodeSystem|ValueSet|ConceptMap|Subscription|Composition|Group|Bundle|Binary)$'}
PORT=18095
BIN=${BIN:-target/release/fhir-server}
[ -n "${BIN_BUILT:-}" ] || [ -x "$BIN" ] || cargo build --release -p fhir-server >/dev/null
work=$(mktemp -d)
trap 'kill $(cat "$work/pid" 2>/dev/null) 2>/dev/null || true; rm -rf "$work"' EXIT
"$BIN" serve --listen 127.0.0.1:$PORT --database-url "sqlite://$work/fhir.db" --log-level error >"$work/log" 2>&1 &
echo $! >"$work/pid"
for _ in $(seq 1 100); do curl -sf http://127.0.0.1:$PORT/ready >/dev/null && break; sleep 0.1; done
st run "http://127.0.0.1:$PORT/fhir/openapi.json" --checks not_a_server_error \
  --include-tag-regex "$TAGS" --max-time "$SECS" -w 2 --suppress-health-check all
