#!/usr/bin/env bash
# Search latency as the store grows: load Observations with wrk for LOAD_SECS, then measure
# a token search and a reference+date search (wrk -t1 -c8, 10 s), repeated ROUNDS times.
# Usage: scripts/bench/search.sh [sqlite|postgres] [rounds] [load-secs]
set -euo pipefail
cd "$(dirname "$0")/../.."
BACKEND=${1:-sqlite}; ROUNDS=${2:-3}; LOAD=${3:-20}
PORT=18097
[ -n "${NO_BUILD:-}" ] || cargo build --release -p fhir-server >/dev/null
here=$(pwd)/scripts/bench
work=$(mktemp -d)
trap 'kill $(cat "$work/pid" 2>/dev/null) 2>/dev/null || true; rm -rf "$work"' EXIT
if [ "$BACKEND" = sqlite ]; then url="sqlite://$work/fhir.db"; else
  psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS fhir_search_bench" -c "CREATE DATABASE fhir_search_bench" postgres
  url="postgres://postgres@127.0.0.1:5432/fhir_search_bench"
fi
target/release/fhir-server serve --listen 127.0.0.1:$PORT --database-url "$url" --log-level warn >"$work/log" 2>&1 &
echo $! >"$work/pid"
for _ in $(seq 1 100); do curl -sf http://127.0.0.1:$PORT/ready >/dev/null && break; sleep 0.1; done
for round in $(seq 1 "$ROUNDS"); do
  load=$(wrk -t2 -c16 -d"${LOAD}s" -s "$here/load.lua" http://127.0.0.1:$PORT/ | awk '/Requests\/sec/ {print $2}')
  total=$(curl -s "http://127.0.0.1:$PORT/fhir/Observation?_summary=count" | sed -E 's/.*"total":([0-9]+).*/\1/')
  for s in token refdate; do
    wrk -t1 -c8 -d10s --latency -s "$here/$s.lua" http://127.0.0.1:$PORT/ |
      awk -v b="$BACKEND" -v n="$total" -v s="$s" -v l="$load" '/Requests\/sec/ {rps=$2} / 50%/ {p50=$2} / 99%/ {p99=$2} END {print b, "observations", n, "load/s", l, s, "req/s", rps, "p50", p50, "p99", p99}'
  done
done
