#!/usr/bin/env bash
# The server's own CPU per create: each build given in turn (ROUNDS times, interleaved)
# serves a fresh SQLite file with subscriptions off; wrk -t1 -c4 creates Observations
# coded urn:bench|c0…c999 (a code system the packages lack, so validation asks for
# stored terminology) for 2 s of warm-up and 8 s measured, while `perf stat -e
# task-clock` counts the server process's CPU time. Steadier than throughput on a
# shared machine: the load generator's CPU is not in it.
# Usage: [ROUNDS=3] scripts/bench/create-cpu.sh BIN [BIN...]
set -euo pipefail
cd "$(dirname "$0")/../.."
PORT=18121
work=$(mktemp -d)
trap 'kill $(cat "$work/pid" 2>/dev/null) 2>/dev/null || true; rm -rf "$work"' EXIT
cat >"$work/obs.lua" <<'L'
counter = 0
request = function()
  counter = counter + 1
  local body = string.format('{"resourceType":"Observation","status":"final","code":{"coding":[{"system":"urn:bench","code":"c%d"}]}}', counter % 1000)
  return wrk.format("POST", "/fhir/Observation", {["Content-Type"]="application/fhir+json"}, body)
end
L
for round in $(seq 1 "${ROUNDS:-3}"); do
  for bin in "$@"; do
    rm -f "$work"/f.db*
    "$bin" serve --listen 127.0.0.1:$PORT --database-url "sqlite://$work/f.db" --export-dir "$work/e" \
      --log-level warn --subscriptions off >"$work/log" 2>&1 &
    echo $! >"$work/pid"
    for _ in $(seq 1 100); do curl -sf http://127.0.0.1:$PORT/ready >/dev/null && break; sleep 0.1; done
    wrk -t1 -c4 -d2s -s "$work/obs.lua" http://127.0.0.1:$PORT >/dev/null
    perf stat -e task-clock -p "$(cat "$work/pid")" -o "$work/stat" -- sleep 8 &
    out=$(wrk -t1 -c4 -d8s -s "$work/obs.lua" http://127.0.0.1:$PORT)
    wait $!
    n=$(echo "$out" | awk '/requests in/ {print $1}')
    ms=$(awk '/task-clock/ {gsub(",", "", $1); print $1}' "$work/stat")
    rate=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
    awk -v r="$round" -v b="$bin" -v rate="$rate" -v ms="$ms" -v n="$n" \
      'BEGIN {printf "round %s %s: %s creates/s, %.0f us server CPU per create\n", r, b, rate, ms * 1000 / n}'
    kill "$(cat "$work/pid")"; wait "$(cat "$work/pid")" 2>/dev/null || true
  done
done
