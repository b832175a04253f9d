#!/usr/bin/env bash
# Read-by-id throughput with authentication and audit off, then on (bearer token
# checked and scopes enforced on every request, one AuditEvent written per read), on
# the same SQLite database. wrk -t1 -c32. Usage: scripts/bench/auth.sh [runs] [seconds]
# Needs: wrk, python3, curl.
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS=${1:-3}
SECS=${2:-10}
PORT=18091
BIN=target/release/fhir-server
SECRET=bench-secret-bench-secret-bench-secret-00
[ -n "${NO_BUILD:-}" ] || cargo build --release -p fhir-server >/dev/null
here=$(pwd)/scripts/bench
work=$(mktemp -d)
trap 'kill $(cat "$work/pid" 2>/dev/null) 2>/dev/null || true; rm -rf "$work"' EXIT
echo '{"clients": []}' >"$work/clients.json"

start() {
  "$BIN" serve --listen 127.0.0.1:$PORT --database-url "sqlite://$work/fhir.db" --log-level warn "$@" >"$work/log" 2>&1 &
  echo $! >"$work/pid"
  for _ in $(seq 1 100); do curl -sf http://127.0.0.1:$PORT/ready >/dev/null && return; sleep 0.1; done
  echo "server did not start"; cat "$work/log"; exit 1
}
stop() { kill "$(cat "$work/pid")"; wait "$(cat "$work/pid")" 2>/dev/null || true; }

# An access token of the server itself (HS256 with the configured secret).
TOKEN=$(python3 - "$SECRET" <<'PY'
import base64, hmac, hashlib, json, sys, time
b = lambda d: base64.urlsafe_b64encode(json.dumps(d, separators=(",", ":")).encode()).rstrip(b"=")
h, p = b({"alg": "HS256", "typ": "JWT"}), b({"iss": "urn:fhir-server", "aud": "urn:fhir-server", "sub": "bench",
    "exp": int(time.time()) + 3600, "iat": int(time.time()), "jti": "bench", "scope": "system/*.rs"})
sig = base64.urlsafe_b64encode(hmac.new(sys.argv[1].encode(), h + b"." + p, hashlib.sha256).digest()).rstrip(b"=")
print((h + b"." + p + b"." + sig).decode())
PY
)

run() { # label token
  for r in $(seq 1 "$RUNS"); do
    TOKEN="$2" IDS_FILE="$work/ids.txt" wrk -t1 -c32 -d"${SECS}s" --latency -s "$here/read-auth.lua" http://127.0.0.1:$PORT/ \
      | awk -v label="$1" -v run="$r" '/Requests\/sec/ {rps=$2} / 50%/ {p50=$2} / 99%/ {p99=$2} END {print label, "run", run, "req/s", rps, "p50", p50, "p99", p99}'
  done
}

start --audit off
: >"$work/ids.txt"
for i in $(seq 1 1000); do
  curl -s -X POST http://127.0.0.1:$PORT/fhir/Patient -H 'Content-Type: application/fhir+json' \
    -d '{"resourceType":"Patient","name":[{"family":"Seed'"$i"'"}]}' | sed -E 's/.*"id":"([^"]+)".*/\1/' >>"$work/ids.txt"; echo >>"$work/ids.txt"
done
sed -i '/^$/d' "$work/ids.txt"
run "auth off, audit off" ""
stop
start --auth-clients "$work/clients.json" --auth-token-secret "$SECRET" --audit off
run "auth on,  audit off" "$TOKEN"
stop
start --auth-clients "$work/clients.json" --auth-token-secret "$SECRET" --audit on
run "auth on,  audit on " "$TOKEN"
stop
