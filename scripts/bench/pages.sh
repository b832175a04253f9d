#!/usr/bin/env bash
# The cost of writing a page of results: search, history and $everything pages of 20
# to 100 resources, and one patient's whole $everything, over the 10 Synthea bundles of
# shared/synthea (11,689 Observations, loaded once by POSTing the transaction bundles;
# PostgreSQL then VACUUM ANALYZE), served in turn by each build given (the same
# database; a fresh copy of the file per run on SQLite), wrk -t1 -c8 for 6 s per
# request after 2 s of warm-up. Prints throughput, p50 and p99 per build and request.
# Usage: scripts/bench/pages.sh [sqlite|postgres] [rounds] BIN [BIN...]
set -euo pipefail
cd "$(dirname "$0")/../.."
BACKEND=${1:-sqlite}; ROUNDS=${2:-2}; shift 2
[ $# -gt 0 ] || { echo "give one or more fhir-server binaries"; exit 2; }
DATA=${SYNTHEA:-../shared/synthea}
ls "$DATA"/*.json >/dev/null || { echo "no Synthea bundles in $DATA"; exit 1; }
PORT=18133
work=$(mktemp -d)
trap 'kill $(cat "$work/pid" 2>/dev/null) 2>/dev/null || true; rm -rf "$work"' EXIT
if [ "$BACKEND" = sqlite ]; then url="sqlite://$work/loaded.db"; else
  psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS fhir_pages_bench WITH (FORCE)" -c "CREATE DATABASE fhir_pages_bench" postgres
  url="postgres://postgres@127.0.0.1:5432/fhir_pages_bench"
fi
serve() {
  "$1" serve --listen 127.0.0.1:$PORT --database-url "$2" --export-dir "$work/exports" \
    --log-level warn --subscriptions off >>"$work/log" 2>&1 &
  echo $! >"$work/pid"
  for _ in $(seq 1 200); do curl -sf http://127.0.0.1:$PORT/ready >/dev/null && return; sleep 0.1; done
  echo "server did not start"; cat "$work/log"; exit 1
}
stop() { kill "$(cat "$work/pid")"; wait "$(cat "$work/pid")" 2>/dev/null || true; }
serve "$1" "$url"
for f in "$DATA"/*.json; do
  curl -sf -o /dev/null -X POST "http://127.0.0.1:$PORT/fhir" -H 'Content-Type: application/fhir+json' --data-binary @"$f"
done
stop
[ "$BACKEND" = sqlite ] || psql -h 127.0.0.1 -U postgres -qc "VACUUM ANALYZE" fhir_pages_bench
patient=$(serve "$1" "$url"; curl -s "http://127.0.0.1:$PORT/fhir/Patient?_count=1&_elements=id" |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["entry"][0]["resource"]["id"])'; stop)
REQUESTS=(
  "Observation?code=http://loinc.org|8302-2&_count=20"
  "Observation?code=http://loinc.org|8302-2&_count=100"
  "Observation?_count=50&_include=Observation:patient"
  "Observation/_history?_count=50"
  "Patient/\$everything?_count=50"
  "Patient/$patient/\$everything"
)
for round in $(seq 1 "$ROUNDS"); do
  for bin in "$@"; do
    if [ "$BACKEND" = sqlite ]; then cp "$work/loaded.db" "$work/run.db"; serve "$bin" "sqlite://$work/run.db"
    else serve "$bin" "$url"; fi
    for q in "${REQUESTS[@]}"; do
      wrk -t1 -c8 -d2s "http://127.0.0.1:$PORT/fhir/$q" >/dev/null
      wrk -t1 -c8 -d6s --latency "http://127.0.0.1:$PORT/fhir/$q" |
        awk -v b="$bin" -v q="$q" -v r="$round" '/Requests\/sec/ {rps=$2} / 50%/ {p50=$2} / 99%/ {p99=$2}
          END {printf "round %s %s %s: %s/s p50 %s p99 %s\n", r, b, q, rps, p50, p99}'
    done
    stop; rm -f "$work"/run.db*
  done
done
