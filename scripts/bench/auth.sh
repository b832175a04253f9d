#!/usr/bin/env bash
# The cost of authentication and audit on reads by id. Three variants (auth off; auth
# on: bearer token checked and scopes enforced; auth and audit on: one AuditEvent
# logged per read) run in turn, round after round, each time on a fresh server and
# SQLite database seeded with 1,000 Patients, so that a noisy machine affects them
# alike and no variant carries another's backlog. The server is pinned to CPU 0 and wrk
# (-t1 -c32, SECS seconds) to CPU 1: throughput then follows the server's CPU cost.
# Reported: reads/s and the server's CPU time (user + system) per read; then the rate
# at which the last audited run's events are projected into AuditEvent resources (work
# deferred to idle time or to the next read of AuditEvents).
# A fourth variant, auth+audit+tenant, reads through a tenant's URL (`--tenancy url`,
# `/fhir/acme/Patient/…`, a token with the tenant's claim), when the binary has tenants.
# BINS="old=path/to/fhir-server new=target/release/fhir-server" compares binaries, each
# variant of each in turn, round after round (before and after in the same run).
# NO_PROJECTION=1 leaves the projection rate out.
# (The server's request timeout is 600 s: projecting a 10 s run's events takes longer
# than the default 30 s.)
# Usage: scripts/bench/auth.sh [rounds] [seconds]. Needs: wrk, python3, curl, taskset.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=${1:-6}
SECS=${2:-10}
PORT=18091
BINS=${BINS:-new=target/release/fhir-server}
SECRET=bench-secret-bench-secret-bench-secret-00
[ -n "${NO_BUILD:-}" ] || cargo build --release -p fhir-server >/dev/null
here=$(pwd)/scripts/bench
work=$(mktemp -d)
trap 'kill "$(cat "$work/pid" 2>/dev/null)" 2>/dev/null || true; rm -rf "$work"' EXIT
echo '{"clients": []}' >"$work/clients.json"

# An access token of the server itself (HS256 with the configured secret).
token() { # [tenant]
python3 - "$SECRET" "${1:-}" <<'PY'
import base64, hmac, hashlib, json, sys, time
b = lambda d: base64.urlsafe_b64encode(json.dumps(d, separators=(",", ":")).encode()).rstrip(b"=")
claims = {"iss": "urn:fhir-server", "aud": "urn:fhir-server", "sub": "bench",
    "exp": int(time.time()) + 36000, "iat": int(time.time()), "jti": "bench", "scope": "system/*.cruds system/AuditEvent.rs"}
if sys.argv[2]:
    claims["tenant"] = sys.argv[2]
h, p = b({"alg": "HS256", "typ": "JWT"}), b(claims)
sig = base64.urlsafe_b64encode(hmac.new(sys.argv[1].encode(), h + b"." + p, hashlib.sha256).digest()).rstrip(b"=")
print((h + b"." + p + b"." + sig).decode())
PY
}
TOKEN=$(token)
AUTH="--auth-clients $work/clients.json --auth-token-secret $SECRET"
labels=("auth-off" "auth-on" "auth+audit" "auth+audit+tenant")
flags=("--audit off" "$AUTH --audit off" "$AUTH --audit on" "$AUTH --audit on --tenancy url")
tokens=("" "$TOKEN" "$TOKEN" "$(token acme)")
paths=("/fhir" "/fhir" "/fhir" "/fhir/acme")
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

start() { # variant index
  rm -rf "$work"/db*
  [ "$1" != 3 ] || "$BIN" tenants --database-url "sqlite://$work/db" add acme >/dev/null
  # shellcheck disable=SC2086
  taskset -c 0 "$BIN" serve --listen 127.0.0.1:$PORT --database-url "sqlite://$work/db" --log-level warn --request-timeout 600 ${flags[$1]} >"$work/log" 2>&1 &
  echo $! >"$work/pid"
  for _ in $(seq 1 100); do curl -sf http://127.0.0.1:$PORT/ready >/dev/null && break; sleep 0.1; done
  : >"$work/ids"
  for k in $(seq 1 1000); do
    curl -s -X POST "http://127.0.0.1:$PORT${paths[$1]}/Patient" -H "Authorization: Bearer ${tokens[$1]:-$TOKEN}" \
      -H 'Content-Type: application/fhir+json' -d '{"resourceType":"Patient","name":[{"family":"Seed'"$k"'"}]}' |
      sed -E 's/.*"id":"([^"]+)".*/\1/' >>"$work/ids"
    echo >>"$work/ids"
  done
  sed -i '/^$/d' "$work/ids"
  sleep 2.5 # the audit events of the seeding are projected while idle
}
stop() { kill "$(cat "$work/pid")"; wait "$(cat "$work/pid")" 2>/dev/null || true; }

: >"$work/results"
: >"$work/projection"
for _ in $(seq 1 "$ROUNDS"); do
  for named in $BINS; do
  name=${named%%=*}
  BIN=${named#*=}
  variants="0 1 2"
  "$BIN" tenants --help >/dev/null 2>&1 && variants="0 1 2 3"
  for i in $variants; do
    start "$i"
    pid=$(cat "$work/pid")
    t0=$(ticks "$pid")
    out=$(TOKEN="${tokens[$i]}" BASE_PATH="${paths[$i]}" IDS_FILE="$work/ids" taskset -c 1 wrk -t1 -c32 -d"${SECS}s" --latency -s "$here/read-auth.lua" http://127.0.0.1:$PORT/)
    sleep 0.1 # the audit writer logs its last batch within 20 ms
    t1=$(ticks "$pid")
    echo "$out" | awk -v l="$name:${labels[$i]}" -v t=$((t1 - t0)) \
      '/requests in/ {n=$1} /Requests\/sec/ {rps=$2} / 50%/ {p50=$2} / 99%/ {p99=$2} END {print l, rps, n, t, p50, p99}' >>"$work/results"
    if [ "$i" = 2 ] && [ "$named" = "${BINS##* }" ] && [ -z "${NO_PROJECTION:-}" ]; then
      n=$(tail -1 "$work/results" | awk '{print $3}')
      p0=$(date +%s.%N)
      curl -sf -m 600 "http://127.0.0.1:$PORT/fhir/AuditEvent?_summary=count" -H "Authorization: Bearer $TOKEN" >/dev/null
      echo "$n $(echo "$(date +%s.%N) - $p0" | bc)" >>"$work/projection"
    fi
    stop
  done
  done
done
python3 - "$work/results" "$work/projection" <<'PY'
import collections, statistics, sys
rps, cpu, p50, p99 = (collections.defaultdict(list) for _ in range(4))
for line in open(sys.argv[1]):
    label, r, n, ticks, a, b = line.split()
    rps[label].append(float(r)); cpu[label].append(int(ticks) * 10000 / int(n))
    p50[label].append(a); p99[label].append(b)
print("| binary:variant | reads/s (median, range) | throughput cost | CPU per read (median, range) | CPU cost | p50 / p99 (last run) |")
print("|---|---|---|---|---|---|")
for label in rps:
    off = label.split(":")[0] + ":auth-off"
    base_cpu, base_rps = statistics.median(cpu[off]), statistics.median(rps[off])
    c, r = statistics.median(cpu[label]), statistics.median(rps[label])
    print(f"| {label} | {r:,.0f} ({min(rps[label]):,.0f}–{max(rps[label]):,.0f}) | {100 * (1 - r / base_rps):.1f} % "
          f"| {c:.1f} µs ({min(cpu[label]):.1f}–{max(cpu[label]):.1f}) | {100 * (c / base_cpu - 1):+.1f} % "
          f"| {p50[label][-1]} / {p99[label][-1]} |")
rates = [int(n) / float(t) for n, t in (l.split() for l in open(sys.argv[2]))] or [0]
print(f"\nprojection into AuditEvent resources: median {statistics.median(rates):,.0f} events/s "
      f"({min(rates):,.0f}–{max(rates):,.0f}), on the server's one CPU")
PY
