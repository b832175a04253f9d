#!/usr/bin/env bash
# The static /health ceiling, read-by-id and create throughput of the REST API with wrk (-t1 -c32), on SQLite and
# PostgreSQL. Usage: [BIN=path] [NO_BUILD=1] [EXTRA="--serve-flags"] scripts/bench/rest.sh [runs] [seconds]
# Needs: wrk (apt-get install wrk), PostgreSQL at 127.0.0.1:5432 (trust auth).
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS=${1:-3}
SECS=${2:-10}
PORT=18090
BIN=${BIN:-target/release/fhir-server}
[ -n "${NO_BUILD:-}" ] || cargo build --release -p fhir-server >/dev/null
here=$(pwd)/scripts/bench
work=$(mktemp -d)
trap 'kill $(cat "$work/pid" 2>/dev/null) 2>/dev/null || true; rm -rf "$work"' EXIT

start() {
  # shellcheck disable=SC2086 # EXTRA holds several arguments
  "$BIN" serve --listen 127.0.0.1:$PORT --database-url "$1" --log-level warn ${EXTRA:-} >"$work/log" 2>&1 &
  echo $! >"$work/pid"
  for _ in $(seq 1 100); do curl -sf http://127.0.0.1:$PORT/ready >/dev/null && return; sleep 0.1; done
  echo "server did not start"; cat "$work/log"; exit 1
}
stop() { kill "$(cat "$work/pid")"; wait "$(cat "$work/pid")" 2>/dev/null || true; }

seed() {
  : >"$work/ids.txt"
  for i in $(seq 1 1000); do
    curl -s -X POST http://127.0.0.1:$PORT/fhir/Patient -H 'Content-Type: application/fhir+json' \
      -d '{"resourceType":"Patient","name":[{"family":"Seed'"$i"'"}]}' | sed -E 's/.*"id":"([^"]+)".*/\1/' >>"$work/ids.txt"; echo >>"$work/ids.txt"
  done
}

run() { # label script
  for r in $(seq 1 "$RUNS"); do
    IDS_FILE="$work/ids.txt" wrk -t1 -c32 -d"${SECS}s" --latency -s "$here/$2" http://127.0.0.1:$PORT/ \
      | awk -v label="$1" -v run="$r" '/Requests\/sec/ {rps=$2} / 50%/ {p50=$2} / 99%/ {p99=$2} END {print label, "run", run, "req/s", rps, "p50", p50, "p99", p99}'
  done
}

for backend in ${BACKENDS:-sqlite postgres}; do
  if [ $backend = sqlite ]; then url="sqlite://$work/fhir.db"; else
    psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS fhir_bench" -c "CREATE DATABASE fhir_bench" postgres
    url="postgres://postgres@127.0.0.1:5432/fhir_bench"
  fi
  start "$url"
  seed
  [ $backend = sqlite ] && run "health" health.lua
  run "$backend read" read.lua
  run "$backend create" create.lua
  stop
done
