#!/usr/bin/env bash
# Bulk Data export throughput and memory: loads shared/synthea/ COPIES times (about 23,000
# resources per copy, new ids each time) into a fresh database, restarts the server, runs a
# system-level $export and reports resources/s (kick-off to manifest) and the server's RSS
# before the export and at its highest during it (sampled every 50 ms). Run with two
# COPIES values to see that memory does not follow export size.
# Usage: scripts/bench/export.sh [sqlite|postgres] [copies]
set -euo pipefail
cd "$(dirname "$0")/../.."
BACKEND=${1:-sqlite}; COPIES=${2:-5}
PORT=18097
[ -n "${NO_BUILD:-}" ] || cargo build --release -p fhir-server >/dev/null
work=$(mktemp -d)
trap 'kill $(cat "$work/pid" 2>/dev/null) 2>/dev/null || true; rm -rf "$work"' EXIT
if [ "$BACKEND" = sqlite ]; then url="sqlite://$work/fhir.db"; else
  psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS fhir_export_bench" -c "CREATE DATABASE fhir_export_bench" postgres
  url="postgres://postgres@127.0.0.1:5432/fhir_export_bench"
fi
B=http://127.0.0.1:$PORT/fhir
serve() {
  target/release/fhir-server serve --listen 127.0.0.1:$PORT --database-url "$url" \
    --export-dir "$work/exports" --log-level info >>"$work/log" 2>&1 &
  echo $! >"$work/pid"
  for _ in $(seq 1 200); do curl -sf http://127.0.0.1:$PORT/ready >/dev/null && return; sleep 0.1; done
  echo "server did not start"; cat "$work/log"; exit 1
}
serve
for c in $(seq 1 "$COPIES"); do
  target/release/fhir-server import --url "$B" --state "$work/state-$c" ../shared/synthea/ | tail -1
done
kill "$(cat "$work/pid")"; wait "$(cat "$work/pid")" 2>/dev/null || true
serve
pid=$(cat "$work/pid")
rss() { awk '/VmRSS/ {print $2}' /proc/$pid/status; }
export_once() {
  local before peak now start end status total secs bytes
  rm -rf "$work/exports"/*
  before=$(rss); peak=$before
  start=$(date +%s.%N)
  status=$(curl -si "$B/\$export" -H 'Prefer: respond-async' -H 'Accept: application/fhir+json' \
    | tr -d '\r' | awk -F': ' 'tolower($1)=="content-location" {print $2}')
  until [ "$(curl -s -o "$work/manifest.json" -w '%{http_code}' "$status")" = 200 ]; do
    now=$(rss); [ "$now" -gt "$peak" ] && peak=$now; sleep 0.02
  done
  end=$(date +%s.%N)
  total=$(grep -o '"count":[0-9]*' "$work/manifest.json" | cut -d: -f2 | paste -sd+ | bc)
  secs=$(echo "$end - $start" | bc)
  bytes=$(du -sb "$work/exports" | cut -f1)
  echo "$BACKEND $1: exported $total resources ($((bytes / 1000000)) MB NDJSON) in $secs s: $(echo "$total / $secs" | bc) resources/s;" \
    "server RSS $((before / 1024)) MiB before, at most $((peak / 1024)) MiB during the export"
}
export_once "first export after start-up"
export_once "second export"
grep "export job finished" "$work/log" | tail -2
