#!/usr/bin/env bash
# Where the server's memory goes: RSS (and its anonymous / file-backed parts) of a
# SQLite server at idle, after importing the Synthea bundles of shared/synthea, after a
# minute of mixed load (mixed.lua, 16 connections), and after a restart and another
# minute. Usage: scripts/bench/memory.sh [db-cache-mb…]   (default: 64)
# Needs: wrk (apt-get install wrk).
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=target/release/fhir-server
[ -n "${NO_BUILD:-}" ] || cargo build --release -p fhir-server >/dev/null
here=$(pwd)/scripts/bench
DATA=${DATA:-../shared/synthea}
PORT=18096
work=$(mktemp -d)
trap 'kill $(cat "$work/pid" 2>/dev/null) 2>/dev/null || true; rm -rf "$work"' EXIT

start() { # cache-mb
  "$BIN" serve --listen 127.0.0.1:$PORT --database-url "sqlite://$work/fhir.db" --db-cache-mb "$1" \
    --log-level warn >"$work/log" 2>&1 &
  echo $! >"$work/pid"
  for _ in $(seq 1 300); do curl -sf http://127.0.0.1:$PORT/ready >/dev/null && break; sleep 0.1; done
  sleep 3 # the validator loads in the background
}
stop() { kill "$(cat "$work/pid")"; wait "$(cat "$work/pid")" 2>/dev/null || true; }
rss() { # label
  local pid; pid=$(cat "$work/pid")
  awk -v l="$1" '/VmRSS/ {r=$2} /RssAnon/ {a=$2} /RssFile/ {f=$2} END {printf "  %-28s rss %4d MiB (anon %d, file %d)\n", l, r/1024, a/1024, f/1024}' /proc/$pid/status
}
load() {
  IDS_FILE="$work/ids.txt" wrk -t2 -c16 -d60s -s "$here/mixed.lua" http://127.0.0.1:$PORT/ | awk '/Requests\/sec/ {print "  mixed load: " $2 " req/s"}'
}

for cache in "${@:-64}"; do
  rm -f "$work"/fhir.db*
  echo "--db-cache-mb $cache"
  start "$cache"
  rss "idle"
  "$BIN" import --url http://127.0.0.1:$PORT/fhir --state "$work/state" "$DATA" | tail -n 1
  rss "after import"
  curl -s "http://127.0.0.1:$PORT/fhir/Patient?_count=1000&_elements=id" | grep -o '"id":"[^"]*"' | cut -d'"' -f4 >"$work/ids.txt"
  load
  rss "after 1 min of mixed load"
  stop
  start "$cache"
  load
  rss "restart + 1 min of load"
  stop
done
