#!/usr/bin/env bash
# A large code system read from its rows against read whole into memory: one build,
# one database holding a code system of N concepts (default 200,000: 20 roots, 400
# groups, leaves of three-word displays; loaded with `fhir-server terminology load`)
# and a value set of all of it, served twice — `--terminology-rows-from 100000000`
# (every code system read whole, as before rows existed) and the default (20,000: this
# one from its rows). For each: the server's RSS after start, wrk -t1 -c8 for a deep
# `$expand` page, `$expand` with a text filter, a page of an `is-a` branch (10,000
# codes), `ValueSet/$validate-code` and
# `$lookup`, and the RSS (current and peak) after them.
# Usage: [N=200000] [SECS=5] [BACKEND=sqlite|postgres] scripts/bench/terminology-large.sh BIN
# Needs: wrk, python3; PostgreSQL at 127.0.0.1:5432 (trust) for postgres.
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=$1; N=${N:-200000}; SECS=${SECS:-5}; BACKEND=${BACKEND:-sqlite}; PORT=18251
work=$(mktemp -d)
trap 'kill $(cat "$work/pid" 2>/dev/null) 2>/dev/null || true; rm -rf "$work"' EXIT
B=http://127.0.0.1:$PORT/fhir
CS=http://example.org/bench/large; VS=http://example.org/bench/large-vs
BRANCH=http://example.org/bench/large-branch
python3 - "$work" "$CS" "$VS" "$N" "$BRANCH" <<'EOF'
import json, random, sys
work, cs, vs, n, branch = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
random.seed(7)
words = ["acute", "chronic", "left", "right", "upper", "lower", "fracture", "pain", "fever",
         "renal", "cardiac", "pulmonary", "hepatic", "infection", "lesion", "syndrome",
         "disorder", "injury", "neoplasm", "benign", "malignant", "congenital", "viral",
         "bacterial", "allergic", "severe", "mild", "recurrent", "primary", "secondary"]
def display():
    return " ".join(random.choice(words) for _ in range(3)).capitalize()
leaves = n - 20 - 400
roots, c = [], 0
for r in range(20):
    root = {"code": f"r{r}", "display": display(), "concept": []}
    for g in range(20):
        group = {"code": f"g{r}-{g}", "display": display(), "concept": []}
        for _ in range(leaves // 400 + (1 if r * 20 + g < leaves % 400 else 0)):
            group["concept"].append({"code": f"c{c}", "display": display()})
            c += 1
        root["concept"].append(group)
    roots.append(root)
json.dump({"resourceType": "CodeSystem", "url": cs, "version": "1", "status": "active",
           "content": "complete", "concept": roots}, open(f"{work}/cs.json", "w"))
json.dump({"resourceType": "ValueSet", "url": vs, "status": "active",
           "compose": {"include": [{"system": cs}]}}, open(f"{work}/vs.json", "w"))
json.dump({"resourceType": "ValueSet", "url": branch, "status": "active",
           "compose": {"include": [{"system": cs, "filter": [{"property": "concept", "op": "is-a", "value": "r3"}]}]}},
          open(f"{work}/branch.json", "w"))
EOF
if [ "$BACKEND" = sqlite ]; then url="sqlite://$work/t.db"; else
  psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS terminology_large WITH (FORCE)" -c "CREATE DATABASE terminology_large" postgres
  url="postgres://postgres@127.0.0.1:5432/terminology_large"
fi
start=$(date +%s.%N)
"$BIN" terminology load --database-url "$url" "$work/cs.json" "$work/vs.json" "$work/branch.json" >"$work/load" 2>&1 ||
  { cat "$work/load"; exit 1; }
echo "loaded $N concepts ($(du -h "$work/cs.json" | cut -f1) of JSON) in $(echo "$(date +%s.%N) - $start" | bc) s"
m() { # label name path
  wrk -t1 -c8 -d"${SECS}s" --timeout 30s --latency "$B/$3" |
    awk -v l="$1" -v n="$2" '/Requests\/sec/ {r=$2} / 50%/ {p50=$2} / 99%/ {p99=$2} END {printf "%-7s %-14s req/s %8s  p50 %9s  p99 %9s\n", l, n, r, p50, p99}'
}
rss() { awk '/VmRSS|VmHWM/ {printf "%s %d MiB  ", $1, $2 / 1024}' "/proc/$(cat "$work/pid")/status"; echo; }
for mode in whole rows; do
  from=20000; [ "$mode" = whole ] && from=100000000
  "$BIN" serve --listen 127.0.0.1:$PORT --database-url "$url" --log-level warn \
    --terminology-rows-from "$from" >"$work/log" 2>&1 &
  echo $! >"$work/pid"
  for _ in $(seq 1 600); do curl -sf http://127.0.0.1:$PORT/ready >/dev/null && break; sleep 0.1; done
  echo "$mode (--terminology-rows-from $from): after start: $(rss)"
  first=$(curl -s -o /dev/null -w '%{time_total}' "$B/ValueSet/\$expand?url=$VS&offset=100000&count=50")
  echo "$mode: first \$expand ${first}s"
  m "$mode" expand-page "ValueSet/\$expand?url=$VS&offset=150000&count=50"
  m "$mode" expand-filter "ValueSet/\$expand?url=$VS&filter=renal%20fev&count=20"
  m "$mode" expand-branch "ValueSet/\$expand?url=$BRANCH&offset=5000&count=20"
  m "$mode" validate-code "ValueSet/\$validate-code?url=$VS&system=$CS&code=c150000"
  m "$mode" lookup "CodeSystem/\$lookup?system=$CS&code=c150000"
  echo "$mode: after the load: $(rss)"
  kill "$(cat "$work/pid")"; wait "$(cat "$work/pid")" 2>/dev/null || true
done
