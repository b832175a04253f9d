#!/usr/bin/env bash
# What the hardening costs and saves, two builds side by side in one run (the machines
# drift, so "before" and "after" are measured interleaved):
#   - a Patient with N `given` names (FHIRPath unions in the search parameters: was
#     quadratic), POST time for N = 10,000 and 100,000;
#   - import of the Synthea bundles of shared/synthea into a fresh SQLite database
#     (strict JSON reading, idempotency keys, time-budget checks);
#   - reads by id with wrk -t1 -c32 (the SQLite progress handler, budget bookkeeping).
# Usage: scripts/bench/hardening.sh BEFORE_BINARY AFTER_BINARY [runs]
set -euo pipefail
cd "$(dirname "$0")/../.."
BEFORE=$1
AFTER=$2
RUNS=${3:-3}
DATA=${DATA:-../shared/synthea}
PORT=18097
here=$(pwd)/scripts/bench
work=$(mktemp -d)
trap 'kill $(cat "$work/pid" 2>/dev/null) 2>/dev/null || true; rm -rf "$work"' EXIT

start() { # binary
  rm -f "$work"/fhir.db*
  "$1" serve --listen 127.0.0.1:$PORT --database-url "sqlite://$work/fhir.db" --log-level warn >"$work/log" 2>&1 &
  echo $! >"$work/pid"
  for _ in $(seq 1 300); do curl -sf http://127.0.0.1:$PORT/ready >/dev/null && break; sleep 0.1; done
  # Wait for the validator (it loads in the background).
  curl -s -o /dev/null -X POST http://127.0.0.1:$PORT/fhir/Patient -H 'Content-Type: application/fhir+json' -d '{"resourceType":"Patient"}'
}
stop() { kill "$(cat "$work/pid")"; wait "$(cat "$work/pid")" 2>/dev/null || true; }

given() { # n
  python3 -c "import json,sys; n=int(sys.argv[1]); print(json.dumps({'resourceType':'Patient','name':[{'family':'Many','given':['g%d'%i for i in range(n)]}]}))" "$1" >"$work/given.json"
  curl -s -o /dev/null -w '%{http_code} %{time_total}' -X POST http://127.0.0.1:$PORT/fhir/Patient \
    -H 'Content-Type: application/fhir+json' --data-binary @"$work/given.json"
}

for r in $(seq 1 "$RUNS"); do
  for label in before after; do
    bin=$BEFORE; [ $label = after ] && bin=$AFTER
    start "$bin"
    echo "$label run $r given 10000: $(given 10000) s; given 100000: $(given 100000) s"
    seq 1 500 | while read -r i; do
      curl -s -X POST http://127.0.0.1:$PORT/fhir/Patient -H 'Content-Type: application/fhir+json' \
        -d '{"resourceType":"Patient","name":[{"family":"Seed'"$i"'"}]}' | sed -E 's/.*"id":"([^"]+)".*/\1/'
      echo
    done >"$work/ids.txt"
    IDS_FILE="$work/ids.txt" wrk -t1 -c32 -d10s --latency -s "$here/read.lua" http://127.0.0.1:$PORT/ \
      | awk -v l="$label" -v r="$r" '/Requests\/sec/ {rps=$2} / 99%/ {p99=$2} END {print l, "run", r, "reads/s", rps, "p99", p99}'
    stop
    rm -f "$work"/fhir.db* "$work/state"
    "$bin" import --database-url "sqlite://$work/fhir.db" --state "$work/state" "$DATA" 2>&1 | tail -n 1 | sed "s/^/$label run $r import: /"
  done
done
