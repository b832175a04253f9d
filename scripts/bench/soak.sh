#!/usr/bin/env bash
# Soak test: mixed reads, searches and creates (mixed.lua) from 16 connections for
# MINUTES minutes against one server; every minute it prints the server's RSS, open
# files, the SQLite WAL size (or the PostgreSQL database size), requests/s and p99 of
# that minute, so that growth shows as a trend. Errors (non-2xx) are counted too.
# Usage: scripts/bench/soak.sh [sqlite|postgres] [minutes]   (default: sqlite 30)
# Needs: wrk (apt-get install wrk); PostgreSQL at 127.0.0.1:5432 for postgres.
set -euo pipefail
cd "$(dirname "$0")/../.."
BACKEND=${1:-sqlite}
MINUTES=${2:-30}
PORT=18095
BIN=target/release/fhir-server
[ -n "${NO_BUILD:-}" ] || cargo build --release -p fhir-server >/dev/null
here=$(pwd)/scripts/bench
work=$(mktemp -d)
trap 'kill $(cat "$work/pid" 2>/dev/null) 2>/dev/null || true; rm -rf "$work"' EXIT

if [ "$BACKEND" = sqlite ]; then url="sqlite://$work/fhir.db"; else
  psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS fhir_soak" -c "CREATE DATABASE fhir_soak" postgres
  url="postgres://postgres@127.0.0.1:5432/fhir_soak"
fi
"$BIN" serve --listen 127.0.0.1:$PORT --database-url "$url" --log-level warn >"$work/log" 2>&1 &
pid=$!
echo $pid >"$work/pid"
for _ in $(seq 1 100); do curl -sf http://127.0.0.1:$PORT/ready >/dev/null && break; sleep 0.1; done

: >"$work/ids.txt"
for i in $(seq 1 1000); do
  curl -s -X POST http://127.0.0.1:$PORT/fhir/Patient -H 'Content-Type: application/fhir+json' \
    -d '{"resourceType":"Patient","birthDate":"19'$((i % 90 + 10))'-01-01","name":[{"family":"Seed'"$i"'"}]}' \
    | sed -E 's/.*"id":"([^"]+)".*/\1/' >>"$work/ids.txt"
  echo >>"$work/ids.txt"
done

size() {
  if [ "$BACKEND" = sqlite ]; then
    echo "wal_kb $(( $(stat -c %s "$work/fhir.db-wal" 2>/dev/null || echo 0) / 1024 )) db_kb $(( $(stat -c %s "$work/fhir.db") / 1024 ))"
  else
    echo "db_kb $(psql -h 127.0.0.1 -U postgres -tAc "SELECT pg_database_size('fhir_soak') / 1024" postgres)"
  fi
}

echo "soak $BACKEND: $MINUTES min, wrk -t2 -c16, mixed.lua"
for m in $(seq 1 "$MINUTES"); do
  out=$(IDS_FILE="$work/ids.txt" wrk -t2 -c16 -d60s --latency -s "$here/mixed.lua" http://127.0.0.1:$PORT/)
  rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  p99=$(echo "$out" | awk '/ 99%/ {print $2}')
  errs=$(echo "$out" | awk '/Non-2xx/ {print $NF}')
  rss=$(awk '/VmRSS/ {print $2}' /proc/$pid/status)
  fds=$(ls /proc/$pid/fd | wc -l)
  echo "minute $m rss_kb $rss fds $fds $(size) req/s $rps p99 $p99 non2xx ${errs:-0}"
done
