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
# KEEPALIVE=1 makes the receiver keep connections open (HTTP/1.1). RECEIVER=threading
# uses the http.server receiver earlier measurements used (see below).
# Usage: [BIN=path/to/fhir-server] [MODE=match|miss|unanchored] [KEEPALIVE=1] [RECEIVER=asyncio|threading] scripts/bench/subscriptions.sh [sqlite|postgres] [N] [seconds]
set -euo pipefail
cd "$(dirname "$0")/../.."
BACKEND=${1:-sqlite}; N=${2:-1000}; SECS=${3:-10}
PORT=18101; HOOK=18102
[ -n "${NO_BUILD:-}" ] || cargo build --release -p fhir-server >/dev/null
work=$(mktemp -d)
trap 'kill $(cat "$work/pid" "$work/hook.pid" 2>/dev/null) 2>/dev/null || true; rm -rf "$work"' EXIT
B=http://127.0.0.1:$PORT/fhir
fresh_db() {
  if [ "$BACKEND" = sqlite ]; then rm -f "$work"/fhir.db*; url="sqlite://$work/fhir.db"; else
    psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS fhir_sub_bench WITH (FORCE)" -c "CREATE DATABASE fhir_sub_bench" postgres
    url="postgres://postgres@127.0.0.1:5432/fhir_sub_bench"
  fi
}
serve() {
  "${BIN:-target/release/fhir-server}" serve --listen 127.0.0.1:$PORT --database-url "$url" \
    --export-dir "$work/exports" --log-level warn --subscription-allow-private-endpoints "$@" >>"$work/log" 2>&1 &
  echo $! >"$work/pid"
  for _ in $(seq 1 200); do curl -sf http://127.0.0.1:$PORT/ready >/dev/null && return; sleep 0.1; done
  echo "server did not start"; cat "$work/log"; exit 1
}
stop() { kill "$(cat "$work/pid")"; wait "$(cat "$work/pid")" 2>/dev/null || true; }
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
# 0.15 ms of CPU per notification); otherwise (the default) a receiver on asyncio's raw
# protocol that takes a fraction of that, so that less of the two cores' time goes to
# the partner, which in real life runs elsewhere.
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
hook=hook_async.py; [ "${RECEIVER:-asyncio}" = threading ] && hook=hook.py
python3 "$work/$hook" $HOOK "$work/latency" "${KEEPALIVE:-0}" & echo $! >"$work/hook.pid"
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
# CPU seconds of the server's subscription threads (dispatcher, deliverer, senders).
subcpu() {
  local sum=0 t
  for t in /proc/"$(cat "$work/pid")"/task/*; do
    case "$(cat "$t/comm" 2>/dev/null)" in subscription*) sum=$(awk -v s="$sum" -v t="$TCK" '{print s + ($14+$15)/t}' "$t/stat") ;; esac
  done
  echo "$sum"
}
# Runs the load; prints "creates/s server-CPU-ms-per-create subscription-threads-CPU-ms-
# per-create": the machine's busy CPU during the load less the receiver's and wrk's,
# i.e. the server and its database; and the part of it the subscription threads took.
load() {
  local b0 h0 b1 h1 s0 s1 out
  b0=$(busy); h0=$(pcpu "$(cat "$work/hook.pid")"); s0=$(subcpu)
  out=$(python3 -c 'import resource, subprocess, sys
p = subprocess.run(sys.argv[1:], capture_output=True, text=True)
rate = next(l.split()[1] for l in p.stdout.splitlines() if l.startswith("Requests/sec"))
r = resource.getrusage(resource.RUSAGE_CHILDREN)
print(rate, r.ru_utime + r.ru_stime)' wrk -t1 -c4 -d"${SECS}s" -s "$work/obs.lua" "http://127.0.0.1:$PORT")
  b1=$(busy); h1=$(pcpu "$(cat "$work/hook.pid")"); s1=$(subcpu)
  echo "$out" | awk -v b0="$b0" -v b1="$b1" -v h0="$h0" -v h1="$h1" -v s0="$s0" -v s1="$s1" -v s="$SECS" \
    '{printf "%s %.3f %.3f", $1, ((b1 - b0) - (h1 - h0) - $2) * 1000 / ($1 * s), (s1 - s0) * 1000 / ($1 * s)}'
}
fresh_db; serve --subscriptions off
read -r rate cpu _ <<<"$(load)"
echo "$BACKEND subscriptions off: $rate creates/s, $cpu ms server CPU per create"; stop
fresh_db; serve
read -r rate cpu sub <<<"$(load)"
echo "$BACKEND subscriptions on, none active: $rate creates/s, $cpu ms server CPU per create ($sub ms in subscription threads)"
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
    | curl -sf -o /dev/null "$B/Subscription" -H 'Content-Type: application/fhir+json' --data-binary @-
done
sleep 2; : >"$work/latency"
count() { curl -s "$B/Observation?_summary=count&code=urn:bench|" | python3 -c 'import json,sys; print(json.load(sys.stdin)["total"])'; }
c0=$(count)
read -r rate cpu sub <<<"$(load)"
before=$(( $(count) - c0 ))
for _ in $(seq 1 120); do
  a=$(wc -l <"$work/latency"); sleep 1; b=$(wc -l <"$work/latency")
  [ "$a" = "$b" ] && break
done
echo "$BACKEND subscriptions on, $N active (${MODE:-match}): $rate creates/s, $cpu ms server CPU per create ($sub ms in subscription threads); $(wc -l <"$work/latency") notifications for $before matching creates"
sort -n "$work/latency" | awk '{a[NR]=$1} END {if (NR) printf "commit to delivery: p50 %.0f ms, p99 %.0f ms, max %.0f ms\n", a[int(NR*0.5)], a[int(NR*0.99)], a[NR]}'
stop
