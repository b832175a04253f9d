#!/usr/bin/env bash
# The web console on a big store: loads DATA (default shared/synthea/, about 23,000
# resources) COPIES times into a fresh database (new ids each copy), then times the
# requests the console makes for its screens, as the browser makes them:
#   - the page and its script, and the CapabilityStatement it reads once;
#   - the resource-type list: one `_count=0&_total=estimate` per type, four at a time
#     (the wall time until every count is shown);
#   - a type's first search page (`_count=20`), with a criterion and with a sort, and
#     the next page by its link;
#   - a resource with its history (the view and diff screens).
# Each figure is the median of ROUNDS runs, in milliseconds.
# Usage: [DATA=DIR] [ROUNDS=5] [BIN=path] [NO_BUILD=1] [DB_URL=url (skip loading)]
#        scripts/bench/console.sh [sqlite|postgres] [copies]
set -euo pipefail
cd "$(dirname "$0")/../.."
BACKEND=${1:-sqlite}; COPIES=${2:-5}; DATA=${DATA:-../shared/synthea/}
PORT=18097; ROUNDS=${ROUNDS:-5}; BIN=${BIN:-target/release/fhir-server}
[ -n "${NO_BUILD:-}" ] || cargo build --release -p fhir-server >/dev/null
work=$(mktemp -d)
trap 'kill $(cat "$work/pid" 2>/dev/null) 2>/dev/null || true; rm -rf "$work"' EXIT
url=${DB_URL:-}
if [ -z "$url" ]; then
  if [ "$BACKEND" = sqlite ]; then url="sqlite://$work/fhir.db"; else
    psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS fhir_console_bench" -c "CREATE DATABASE fhir_console_bench" postgres
    url="postgres://postgres@127.0.0.1:5432/fhir_console_bench"
  fi
fi
ROOT=http://127.0.0.1:$PORT; B=$ROOT/fhir
"$BIN" serve --listen 127.0.0.1:$PORT --database-url "$url" --log-level warn --validation off >"$work/log" 2>&1 &
echo $! >"$work/pid"
for _ in $(seq 1 300); do curl -sf "$ROOT/ready" >/dev/null && break; sleep 0.1; done
if [ -z "${DB_URL:-}" ]; then
  for c in $(seq 1 "$COPIES"); do "$BIN" import --url "$B" --state "$work/state-$c" "$DATA" | tail -1; done
fi

# Median of ROUNDS runs of a command, in ms.
median() {
  local i t0 all=()
  for i in $(seq 1 "$ROUNDS"); do
    t0=$EPOCHREALTIME; "$@" >/dev/null
    all+=("$(echo "($EPOCHREALTIME - $t0) * 1000" | bc)")
  done
  printf '%s\n' "${all[@]}" | sort -n | awk '{a[NR]=$1} END {printf "%.1f", a[int((NR+1)/2)]}'
}
get() { curl -sf -o /dev/null "$1"; }
# The type list's counts: estimates first, then an exact count where the estimate gave none.
counts() {
  python3 - "$B" "$work/cs.json" "${1:-exact}" <<'PY'
import json, sys, urllib.request
from concurrent.futures import ThreadPoolExecutor
base, cs = sys.argv[1], json.load(open(sys.argv[2]))
types = [r["type"] for r in cs["rest"][0]["resource"]]
get = lambda q: json.load(urllib.request.urlopen(base + "/" + q))
with ThreadPoolExecutor(4) as pool:
    many = [t for t, b in zip(types, pool.map(lambda t: get(t + "?_count=0&_total=estimate"), types)) if "total" not in b]
with ThreadPoolExecutor(2) as pool:
    many = many if sys.argv[3] == "exact" else []
    list(pool.map(lambda t: get(t + "?_summary=count"), many))
PY
}

curl -sf "$B/metadata" >"$work/cs.json"
types=$(jq '.rest[0].resource | length' "$work/cs.json")
obs=$(curl -s "$B/Observation?_summary=count" | jq .total)
all=$(curl -s "$B/Observation?_count=0&_total=estimate" | jq .total)
pid=$(curl -s "$B/Patient?_count=1&_elements=id" | jq -r '.entry[0].resource.id')
family=$(curl -s "$B/Patient/$pid" | jq -r '.name[0].family')
many_types=$(jq -r '.rest[0].resource[].type' "$work/cs.json" | while read -r t; do curl -sf "$B/$t?_count=0&_total=estimate" | grep -q '"total"' || echo "$t"; done)
next=$(curl -s "$B/Observation?_count=20" | jq -r '.link[] | select(.relation=="next") | .url')
echo "$BACKEND: $obs Observations (estimate $all), $types types; median of $ROUNDS, ms"
printf '%-44s %6s\n' "page + script" "$(median sh -c "curl -sf -o /dev/null $ROOT/ && curl -sf -o /dev/null $ROOT/console/console.js")"
printf '%-44s %6s\n' "CapabilityStatement" "$(median get "$B/metadata")"
printf '%-44s %6s\n' "type list: $types estimates only" "$(median counts estimates)"
printf '%-44s %6s\n' "type list: $types estimates, $(echo "$many_types" | wc -w) exact counts" "$(median counts)"
printf '%-44s %6s\n' "Observation first page" "$(median get "$B/Observation?_count=20")"
printf '%-44s %6s\n' "Observation next page" "$(median get "$next")"
printf '%-44s %6s\n' "Observation?subject=…&_sort=-date" "$(median get "$B/Observation?subject=Patient/$pid&_sort=-date&_count=20")"
printf '%-44s %6s\n' "Patient?name=$family" "$(median get "$B/Patient?name=$family&_count=20")"
printf '%-44s %6s\n' "Patient?_sort=family" "$(median get "$B/Patient?_sort=family&_count=20")"
printf '%-44s %6s\n' "Patient/{id} + _history" "$(median sh -c "curl -sf -o /dev/null $B/Patient/$pid && curl -sf -o /dev/null '$B/Patient/$pid/_history?_count=100'")"
