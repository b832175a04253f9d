#!/usr/bin/env bash
# Subscriptions under a write load: N active rest-hook subscriptions on Observation, each
# on its own code (urn:bench|c0 … c{N-1}), and wrk creating Observations whose codes
# cycle through them (every write matches one subscription). Reports create throughput
# with subscriptions off, on with none, and on with N; and, for the N run, the latency
# from commit to delivery (the receiver's arrival time minus the version's
# meta.lastUpdated), p50 and p99, and how many notifications arrived. The receiver and
# wrk share the machine, so each run also reports the server's own CPU per create (the
# machine's busy time less theirs): the cost a server whose partners are elsewhere pays;
# and, of it, the CPU of the server's subscription threads (read per thread from /proc:
# far less noisy than throughput on a shared 2-core machine; on PostgreSQL the
# database's side of their statements is not in it).
# MODE (environment) chooses the subscriptions' criteria: `match` (default, as above:
# every write notifies one), `miss` (codes urn:bench|s0… that no write carries: the cost
# of matching alone) or `unanchored` (`Observation?date=ge2100…`: no code or reference
# to index them by, so every write is matched in memory against all N; none match).
# KEEPALIVE=1 makes the receiver keep connections open (HTTP/1.1). RECEIVER=asyncio or
# threading use the Python receivers earlier measurements used (see below).
# The servers with none and with N active run side by side, each on its own database,
# and their loads alternate ROUNDS times (none, subs, subs, none, …): the figures are
# each load's and the medians.
# Usage: [BIN=path/to/fhir-server] [ROUNDS=3] [MODE=match|miss|unanchored] [KEEPALIVE=1] [RECEIVER=rust|asyncio|threading] [PGSTAT=1] scripts/bench/subscriptions.sh [sqlite|postgres] [N] [seconds]
set -euo pipefail
cd "$(dirname "$0")/../.."
BACKEND=${1:-sqlite}; N=${2:-1000}; SECS=${3:-10}
PORT=18101; HOOK=18102; PORT2=18103; ROUNDS=${ROUNDS:-3}
[ -n "${NO_BUILD:-}" ] || cargo build --release -p fhir-server --bin fhir-server --example hook_receiver >/dev/null
work=$(mktemp -d)
trap 'kill $(cat "$work"/pid.* "$work/hook.pid" 2>/dev/null) 2>/dev/null || true; rm -rf "$work"' EXIT
fresh_db() { # NAME: sets url
  if [ "$BACKEND" = sqlite ]; then rm -f "$work/$1".db*; url="sqlite://$work/$1.db"; else
    psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS fhir_sub_bench_$1 WITH (FORCE)" -c "CREATE DATABASE fhir_sub_bench_$1" postgres
    url="postgres://postgres@127.0.0.1:5432/fhir_sub_bench_$1"
  fi
}
serve() { # NAME PORT [flags]: a server on a fresh database of its own
  local name=$1 port=$2; shift 2
  fresh_db "$name"
  "${BIN:-target/release/fhir-server}" serve --listen 127.0.0.1:$port --database-url "$url" \
    --export-dir "$work/exports" --log-level warn --subscription-allow-private-endpoints "$@" >>"$work/log" 2>&1 &
  echo $! >"$work/pid.$name"
  for _ in $(seq 1 200); do curl -sf http://127.0.0.1:$port/ready >/dev/null && return; sleep 0.1; done
  echo "server did not start"; cat "$work/log"; exit 1
}
stop() { kill "$(cat "$work/pid.$1")"; wait "$(cat "$work/pid.$1")" 2>/dev/null || true; rm "$work/pid.$1"; }
cat >"$work/hook.py" <<'PY'
import sys, time, json
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
out = open(sys.argv[2], "a", buffering=1)
class Hook(BaseHTTPRequestHandler):
    # KEEPALIVE=1: HTTP/1.1, connections kept open (as most partners' servers do);
    # otherwise HTTP/1.0, a connection per notification.
    protocol_version = "HTTP/1.1" if sys.argv[3] == "1" else "HTTP/1.0"
    def do_PUT(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        now = time.time() * 1000
        at = json.loads(body)["meta"]["lastUpdated"]
        sent = datetime.fromisoformat(at.replace("Z", "+00:00")).timestamp() * 1000
        out.write(f"{now - sent:.1f}\n")
        self.send_response(200); self.send_header("Content-Length", "0"); self.end_headers()
    def log_message(self, *a): pass
ThreadingHTTPServer.request_queue_size = 256
ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Hook).serve_forever()
PY
# RECEIVER=threading: the receiver above (http.server, a thread per connection, about
# 0.15 ms of CPU per notification); RECEIVER=asyncio: one on asyncio's raw protocol
# that takes about a third of that; the partner, which in real life runs elsewhere.
cat >"$work/hook_async.py" <<'PY'
import asyncio, re, sys, time
from datetime import datetime
out = open(sys.argv[2], "a", buffering=1)
keep = sys.argv[3] == "1"
LAST = re.compile(rb'"lastUpdated"\s*:\s*"([^"]+)"')
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n" if keep else \
     b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
class Hook(asyncio.Protocol):
    def connection_made(self, t):
        self.t, self.buf = t, b""
    def data_received(self, data):
        self.buf += data
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            m = re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", self.buf[:end])
            length = int(m.group(1)) if m else 0
            if len(self.buf) < end + 4 + length:
                return
            body, self.buf = self.buf[end + 4:end + 4 + length], self.buf[end + 4 + length:]
            if body:
                at = LAST.search(body)
                if at:
                    sent = datetime.fromisoformat(at.group(1).decode().replace("Z", "+00:00")).timestamp() * 1000
                    out.write(f"{time.time() * 1000 - sent:.1f}\n")
            self.t.write(OK)
            if not keep:
                self.t.close()
                return
async def main():
    server = await asyncio.get_running_loop().create_server(Hook, "127.0.0.1", int(sys.argv[1]), backlog=256)
    await server.serve_forever()
asyncio.run(main())
PY
# RECEIVER=rust (the default): crates/fhir-server/examples/hook_receiver.rs, a few
# microseconds of CPU per notification, so that the throughput figures count as little
# of the partner's work as can be on a shared machine (RECEIVER_BIN names a build of it).
case "${RECEIVER:-rust}" in
  rust) "${RECEIVER_BIN:-target/release/examples/hook_receiver}" $HOOK "$work/latency" "${KEEPALIVE:-0}" & ;;
  threading) python3 "$work/hook.py" $HOOK "$work/latency" "${KEEPALIVE:-0}" & ;;
  asyncio) python3 "$work/hook_async.py" $HOOK "$work/latency" "${KEEPALIVE:-0}" & ;;
  *) echo "RECEIVER is rust, asyncio or threading" >&2; exit 2 ;;
esac
echo $! >"$work/hook.pid"
cat >"$work/obs.lua" <<EOF2
counter = 0
request = function()
  counter = counter + 1
  local body = string.format('{"resourceType":"Observation","status":"final","code":{"coding":[{"system":"urn:bench","code":"c%d"}]}}', counter % $N)
  return wrk.format("POST", "/fhir/Observation", {["Content-Type"]="application/fhir+json"}, body)
end
EOF2
# CPU seconds the machine spent (all processes) and one process spent.
TCK=$(getconf CLK_TCK)
busy() { awk -v t="$TCK" '/^cpu / {print ($2+$3+$4+$7+$8)/t}' /proc/stat; }
pcpu() { awk -v t="$TCK" '{print ($14+$15)/t}' "/proc/$1/stat"; }
# CPU seconds of server NAME's subscription threads (dispatcher, deliverer, senders).
subcpu() {
  local sum=0 t
  for t in /proc/"$(cat "$work/pid.$1")"/task/*; do
    case "$(cat "$t/comm" 2>/dev/null)" in subscription*) sum=$(awk -v s="$sum" -v t="$TCK" '{print s + ($14+$15)/t}' "$t/stat") ;; esac
  done
  echo "$sum"
}
# Loads server NAME on PORT; prints "creates/s server-CPU-ms-per-create subscription-
# threads-CPU-ms-per-create": the machine's busy CPU during the load less the
# receiver's and wrk's, i.e. the servers and their database; and the part of it NAME's
# subscription threads took.
load() {
  local b0 h0 b1 h1 s0 s1 out
  b0=$(busy); h0=$(pcpu "$(cat "$work/hook.pid")"); s0=$(subcpu "$1")
  out=$(python3 -c 'import resource, subprocess, sys
p = subprocess.run(sys.argv[1:], capture_output=True, text=True)
rate = next(l.split()[1] for l in p.stdout.splitlines() if l.startswith("Requests/sec"))
r = resource.getrusage(resource.RUSAGE_CHILDREN)
print(rate, r.ru_utime + r.ru_stime)' wrk -t1 -c4 -d"${SECS}s" -s "$work/obs.lua" "http://127.0.0.1:$2")
  b1=$(busy); h1=$(pcpu "$(cat "$work/hook.pid")"); s1=$(subcpu "$1")
  echo "$out" | awk -v b0="$b0" -v b1="$b1" -v h0="$h0" -v h1="$h1" -v s0="$s0" -v s1="$s1" -v s="$SECS" \
    '{printf "%s %.3f %.3f", $1, ((b1 - b0) - (h1 - h0) - $2) * 1000 / ($1 * s), (s1 - s0) * 1000 / ($1 * s)}'
}
# PGSTAT=1 (PostgreSQL, with pg_stat_statements in shared_preload_libraries): after
# the loads of server NAME, the statements that took its database's time, per create.
pgstat() { # reset NAME | CREATES NAME
  [ "$BACKEND" = postgres ] && [ -n "${PGSTAT:-}" ] || return 0
  local q="CREATE EXTENSION IF NOT EXISTS pg_stat_statements; SELECT pg_stat_statements_reset()"
  [ "$1" = reset ] || q="SELECT round((total_exec_time * 1000 / $1)::numeric, 1) AS us_per_create, round((total_plan_time * 1000 / $1)::numeric, 1) AS plan_us, calls, rows, left(regexp_replace(query, '\s+', ' ', 'g'), 110) AS query FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = 'fhir_sub_bench_$2') ORDER BY total_exec_time + total_plan_time DESC LIMIT ${PGSTAT_ROWS:-14}"
  psql -h 127.0.0.1 -U postgres -q -c "$q" "fhir_sub_bench_$2" | grep -v pg_stat_statements_reset
}
serve off $PORT --subscriptions off
pgstat reset off >/dev/null
read -r rate cpu _ <<<"$(load off $PORT)"
pgstat "$(echo "$rate * $SECS" | bc)" off
echo "$BACKEND subscriptions off: $rate creates/s, $cpu ms server CPU per create"; stop off
# Two servers side by side, each on its own database: "none" with subscriptions on and
# none active, "subs" with N active. Their loads alternate (none, subs, subs, none, …),
# so that the machine's drift over minutes (up to 40 % on these machines) falls on both.
serve none $PORT; serve subs $PORT2
criteria() {
  case "${MODE:-match}" in
    match) echo "Observation?code=urn:bench|c$1" ;;
    miss) echo "Observation?code=urn:bench|s$1" ;;
    unanchored) echo "Observation?date=ge$((2100 + $1))" ;;
    *) echo "MODE is match, miss or unanchored" >&2; exit 2 ;;
  esac
}
for i in $(seq 0 $((N - 1))); do
  printf '{"resourceType":"Subscription","status":"requested","reason":"bench","criteria":"%s","channel":{"type":"rest-hook","endpoint":"http://127.0.0.1:%d/hook","payload":"application/fhir+json"}}' "$(criteria "$i")" "$HOOK" \
    | curl -sf -o /dev/null "http://127.0.0.1:$PORT2/fhir/Subscription" -H 'Content-Type: application/fhir+json' --data-binary @-
done
sleep 2; : >"$work/latency"
count() { curl -s "http://127.0.0.1:$PORT2/fhir/Observation?_summary=count&code=urn:bench|" | python3 -c 'import json,sys; print(json.load(sys.stdin)["total"])'; }
# Waits until no notification has arrived for a second (at most two minutes).
drained() {
  for _ in $(seq 1 120); do
    a=$(wc -l <"$work/latency"); sleep 1; b=$(wc -l <"$work/latency")
    [ "$a" = "$b" ] && return
  done
}
c0=$(count)
pgstat reset subs >/dev/null
: >"$work/rounds"
for r in $(seq 1 "$ROUNDS"); do
  order="none subs"; [ $((r % 2)) = 0 ] && order="subs none"
  for name in $order; do
    port=$PORT; [ "$name" = subs ] && port=$PORT2
    read -r rate cpu sub <<<"$(load $name $port)"
    echo "$name $rate $cpu $sub" >>"$work/rounds"
    [ "$name" = subs ] && drained || sleep 2
  done
done
matched=$(( $(count) - c0 ))
pgstat "$(awk '$1 == "subs" {n += $2} END {print n * '"$SECS"'}' "$work/rounds")" subs
awk -v b="$BACKEND" -v n="$N" -v m="${MODE:-match}" '
  {r[$1] = r[$1] " " $2; c[$1] = c[$1] " " $3; s[$1] = s[$1] " " $4}
  $1 == "none" {printf "%s subscriptions on, none active: %s creates/s, %s ms server CPU per create\n", b, $2, $3}
  $1 == "subs" {printf "%s subscriptions on, %s active (%s): %s creates/s, %s ms server CPU per create (%s ms in subscription threads)\n", b, n, m, $2, $3, $4}
  function median(list,   a, k, i, j, t) {
    k = split(list, a, " ")
    for (i = 1; i <= k; i++) for (j = i + 1; j <= k; j++) if (a[j] + 0 < a[i] + 0) {t = a[i]; a[i] = a[j]; a[j] = t}
    return k % 2 ? a[(k + 1) / 2] : (a[k / 2] + a[k / 2 + 1]) / 2
  }
  END {
    rn = median(r["none"]); rs = median(r["subs"]); cn = median(c["none"]); cs = median(c["subs"])
    printf "medians: none active %.0f creates/s, %.3f ms CPU per create; %s active %.0f creates/s, %.3f ms (%.3f ms in subscription threads): throughput %+.1f %%, server CPU per create %+.1f %%\n", rn, cn, n, rs, cs, median(s["subs"]), (rs / rn - 1) * 100, (cs / cn - 1) * 100
  }' "$work/rounds"
echo "$(wc -l <"$work/latency") notifications for $matched matching creates"
sort -n "$work/latency" | awk '{a[NR]=$1} END {if (NR) printf "commit to delivery: p50 %.0f ms, p99 %.0f ms, max %.0f ms\n", a[int(NR*0.5)], a[int(NR*0.99)], a[NR]}'
stop none; stop subs
