#!/usr/bin/env bash
# Bulk $import throughput: loads shared/synthea/ (10 transaction Bundles, 23,212 resources)
# into a first server, exports it as NDJSON ($export), then imports those files into a fresh
# database with $import (validation on, the default) and, for comparison, loads the
# Bundles with `fhir-server import` into a fresh database. Reports resources/s, RUNS times,
# interleaved. Usage: scripts/bench/bulk-import.sh [sqlite|postgres] [runs]
# (SERVE_EXTRA: more `serve` flags; KEEP=DIR: keep the NDJSON files and kick-off there;
# HANDLING=lenient: kick off with `Prefer: handling=lenient`, so lines validation refuses load too)
set -euo pipefail
cd "$(dirname "$0")/../.."
BACKEND=${1:-sqlite}; RUNS=${2:-3}
PORT=18098
[ -n "${NO_BUILD:-}" ] || cargo build --release -p fhir-server >/dev/null
work=$(mktemp -d)
trap 'kill $(cat "$work/pid" 2>/dev/null) 2>/dev/null || true; [ -n "${KEEP:-}" ] && cp -r "$work/ndjson" "$work/kickoff.json" "$KEEP"/; rm -rf "$work"' EXIT
B=http://127.0.0.1:$PORT/fhir
fresh_db() {
  if [ "$BACKEND" = sqlite ]; then rm -f "$work"/fhir.db*; url="sqlite://$work/fhir.db"; else
    psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS fhir_import_bench WITH (FORCE)" -c "CREATE DATABASE fhir_import_bench" postgres
    url="postgres://postgres@127.0.0.1:5432/fhir_import_bench"
  fi
}
serve() {
  target/release/fhir-server serve --listen 127.0.0.1:$PORT --database-url "$url" \
    --export-dir "$work/exports" --import-dir "$work/ndjson" --log-level info ${SERVE_EXTRA:-} >>"$work/log" 2>&1 &
  echo $! >"$work/pid"
  for _ in $(seq 1 200); do curl -sf http://127.0.0.1:$PORT/ready >/dev/null && return; sleep 0.1; done
  echo "server did not start"; cat "$work/log"; exit 1
}
stop() { kill "$(cat "$work/pid")"; wait "$(cat "$work/pid")" 2>/dev/null || true; }
poll() {
  until [ "$(curl -s -o "$work/manifest.json" -w '%{http_code}' "$1")" = 200 ]; do sleep 0.05; done
}
# The NDJSON files: the Synthea set exported from a server that loaded its Bundles.
fresh_db; serve
target/release/fhir-server import --url "$B" --state "$work/state" ../shared/synthea/ | tail -1
status=$(curl -si "$B/\$export" -H 'Prefer: respond-async' | tr -d '\r' | awk -F': ' 'tolower($1)=="content-location" {print $2}')
poll "$status"
mkdir -p "$work/ndjson"
python3 - "$work" <<'PY'
import json, sys, urllib.request
work = sys.argv[1]
m = json.load(open(f"{work}/manifest.json"))
params = []
for i, f in enumerate(m["output"]):
    path = f"{work}/ndjson/{i}-{f['type']}.ndjson"
    open(path, "wb").write(urllib.request.urlopen(f["url"]).read())
    params.append({"name": "input", "part": [{"name": "type", "valueCode": f["type"]}, {"name": "url", "valueUri": "file://" + path}]})
json.dump({"resourceType": "Parameters", "parameter": params}, open(f"{work}/kickoff.json", "w"))
print("resources:", sum(f["count"] for f in m["output"]))
PY
stop
for run in $(seq 1 "$RUNS"); do
  fresh_db; serve
  # The validator loads in the background at start-up: measure the load, not that.
  curl -s -o /dev/null -X POST "$B/Patient/\$validate" -H 'Content-Type: application/fhir+json' -d '{"resourceType":"Patient"}'
  start=$(date +%s.%N)
  status=$(curl -si "$B/\$import" -H "Prefer: respond-async${HANDLING:+, handling=$HANDLING}" -H 'Content-Type: application/fhir+json' \
    --data-binary @"$work/kickoff.json" | tr -d '\r' | awk -F': ' 'tolower($1)=="content-location" {print $2}')
  poll "$status"
  end=$(date +%s.%N)
  total=$(python3 -c "import json; m=json.load(open('$work/manifest.json')); print(sum(o['count'] for o in m['output']), sum(e['count'] for e in m['error']))")
  set -- $total
  echo "run $run \$import: $1 loaded, $2 refused in $(echo "$end - $start" | bc) s: $(echo "($1 + $2) / ($end - $start)" | bc) lines/s"
  stop
  fresh_db
  rm -f "$work/cli-state"*
  target/release/fhir-server import --database-url "$url" --state "$work/cli-state" ../shared/synthea/ 2>/dev/null \
    | sed "s/^/run $run fhir-server import of the Bundles: /"
done
