#!/usr/bin/env bash
# The cost of authentication and audit on reads by id. Three servers on their own
# SQLite databases (auth off; auth on; auth and audit on: bearer token checked, scopes
# enforced, one AuditEvent logged per read) are loaded in turn, round after round, so
# that a noisy machine affects them alike. Each run: wrk -t1 -c32 for SECS seconds;
# reported: requests/s and the server's CPU time (user + system) per read. Before
# each run of the audited server, its log is projected into AuditEvent resources (a
# search of AuditEvents waits for that), so the run measures what auditing adds to a
# read; the projection is timed on its own.
# Usage: scripts/bench/auth.sh [rounds] [seconds]. Needs: wrk, python3, curl.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=${1:-8}
SECS=${2:-3}
BIN=target/release/fhir-server
SECRET=bench-secret-bench-secret-bench-secret-00
[ -n "${NO_BUILD:-}" ] || cargo build --release -p fhir-server >/dev/null
here=$(pwd)/scripts/bench
work=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; rm -rf "$work"' EXIT
echo '{"clients": []}' >"$work/clients.json"

# An access token of the server itself (HS256 with the configured secret).
TOKEN=$(python3 - "$SECRET" <<'PY'
import base64, hmac, hashlib, json, sys, time
b = lambda d: base64.urlsafe_b64encode(json.dumps(d, separators=(",", ":")).encode()).rstrip(b"=")
h, p = b({"alg": "HS256", "typ": "JWT"}), b({"iss": "urn:fhir-server", "aud": "urn:fhir-server", "sub": "bench",
    "exp": int(time.time()) + 36000, "iat": int(time.time()), "jti": "bench", "scope": "system/*.cruds system/AuditEvent.rs"})
sig = base64.urlsafe_b64encode(hmac.new(sys.argv[1].encode(), h + b"." + p, hashlib.sha256).digest()).rstrip(b"=")
print((h + b"." + p + b"." + sig).decode())
PY
)
AUTH="--auth-clients $work/clients.json --auth-token-secret $SECRET"
labels=("auth-off" "auth-on" "auth+audit")
flags=("--audit off" "$AUTH --audit off" "$AUTH --audit on")
tokens=("" "$TOKEN" "$TOKEN")
for i in 0 1 2; do
  port=$((18091 + i))
  # shellcheck disable=SC2086
  "$BIN" serve --listen 127.0.0.1:$port --database-url "sqlite://$work/db$i" --log-level warn ${flags[$i]} >"$work/log$i" 2>&1 &
  pids+=($!)
done
for i in 0 1 2; do
  port=$((18091 + i))
  for _ in $(seq 1 100); do curl -sf http://127.0.0.1:$port/ready >/dev/null && break; sleep 0.1; done
  : >"$work/ids$i"
  for k in $(seq 1 1000); do
    curl -s -X POST http://127.0.0.1:$port/fhir/Patient -H "Authorization: Bearer $TOKEN" \
      -H 'Content-Type: application/fhir+json' -d '{"resourceType":"Patient","name":[{"family":"Seed'"$k"'"}]}' |
      sed -E 's/.*"id":"([^"]+)".*/\1/' >>"$work/ids$i"
    echo >>"$work/ids$i"
  done
  sed -i '/^$/d' "$work/ids$i"
done
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
for _ in $(seq 1 "$ROUNDS"); do
  for i in 0 1 2; do
    if [ "$i" = 2 ]; then
      p0=$(date +%s.%N)
      curl -sf "http://127.0.0.1:$((18091 + i))/fhir/AuditEvent?_summary=count" -H "Authorization: Bearer $TOKEN" >/dev/null
      echo "projection $(echo "$(date +%s.%N) - $p0" | bc) ${audited:-0}" >>"$work/projection"
    fi
    t0=$(ticks "${pids[$i]}")
    out=$(TOKEN="${tokens[$i]}" IDS_FILE="$work/ids$i" wrk -t1 -c32 -d"${SECS}s" --latency -s "$here/read-auth.lua" http://127.0.0.1:$((18091 + i))/)
    sleep 0.3 # the audit writer logs its batch within 20 ms (projection waits for 1 s idle)
    t1=$(ticks "${pids[$i]}")
    [ "$i" = 2 ] && audited=$(echo "$out" | awk '/requests in/ {print $1}')
    echo "$out" | awk -v l="${labels[$i]}" -v t=$((t1 - t0)) \
      '/requests in/ {n=$1} /Requests\/sec/ {rps=$2} / 50%/ {p50=$2} / 99%/ {p99=$2} END {print l, rps, n, t, p50, p99}'
  done
done >"$work/results"
python3 - "$work/results" "$work/projection" <<'PY'
import collections, statistics, sys
rps, cpu, p50, p99 = (collections.defaultdict(list) for _ in range(4))
for line in open(sys.argv[1]):
    label, r, n, ticks, a, b = line.split()
    rps[label].append(float(r)); cpu[label].append(int(ticks) * 10000 / int(n))
    p50[label].append(a); p99[label].append(b)
base = statistics.median(cpu["auth-off"])
print("| variant | reads/s (median, range) | CPU per read (median) | cost vs auth off | p50 / p99 (last run) |")
print("|---|---|---|---|---|")
for label in rps:
    c = statistics.median(cpu[label])
    print(f"| {label} | {statistics.median(rps[label]):,.0f} ({min(rps[label]):,.0f}–{max(rps[label]):,.0f}) "
          f"| {c:.1f} µs | {100 * (c / base - 1):+.1f} % | {p50[label][-1]} / {p99[label][-1]} |")
rates = [int(n) / float(t) for _, t, n in (l.split() for l in open(sys.argv[2])) if int(n) > 0]
if rates:
    print(f"\nprojection of the logged reads into AuditEvent resources: median {statistics.median(rates):,.0f} events/s "
          f"({min(rates):,.0f}–{max(rates):,.0f}) on one core")
PY
