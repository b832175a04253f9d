#!/usr/bin/env bash
# First-page latency of the searches of docs/benchmarks.md "Search plans", on a database
# loaded with COPIES copies of DATA (default: shared/synthea ten times, 232k resources),
# for one or more server builds on copies of the same data, one after the other.
# With DB_URL, no data is loaded: each build serves that database as it is (searches
# only read). With DB_URLS (several, space-separated), the one build given serves each
# database in turn: an index change, measured on copies of one database. ROUNDS=N
# measures the builds (or databases) N times over, interleaved (A B A B …).
# Usage: [DATA=DIR] [COPIES=10] [SECS=3] [DB_URL=URL | DB_URLS="URL…"] [ROUNDS=1]
#        scripts/bench/search-plans.sh sqlite|postgres BIN...
# Needs: wrk; PostgreSQL at 127.0.0.1:5432 (trust) for postgres.
set -euo pipefail
cd "$(dirname "$0")/../.."
BACKEND=$1; shift
DATA=${DATA:-../shared/synthea/}; COPIES=${COPIES:-10}; SECS=${SECS:-3}; PORT=18230
work=$(mktemp -d)
trap 'kill $(cat "$work/pid" 2>/dev/null) 2>/dev/null || true; rm -rf "$work"' EXIT
psql_() { psql -h 127.0.0.1 -U postgres -qc "$1" postgres 2>/dev/null; }
url_of() { # name
  if [ "$BACKEND" = sqlite ]; then echo "sqlite://$work/$1.db"; else echo "postgres://postgres@127.0.0.1:5432/$1"; fi
}
serve() { # bin url
  "$1" serve --listen 127.0.0.1:$PORT --database-url "$2" --log-level warn --validation off >"$work/log" 2>&1 &
  echo $! >"$work/pid"
  for _ in $(seq 1 6000); do curl -sf http://127.0.0.1:$PORT/ready >/dev/null && return; sleep 0.1; done
  echo "server did not start"; cat "$work/log"; exit 1
}
stop() { kill "$(cat "$work/pid")"; wait "$(cat "$work/pid")" 2>/dev/null || true; }
# Load once with the first build, then copy the database for each build.
# Each run: a build and the database it serves (empty: a copy of the loaded one).
runs=()
if [ -n "${DB_URLS:-}" ]; then for u in $DB_URLS; do runs+=("$1 $u"); done
else for bin in "$@"; do runs+=("$bin ${DB_URL:-}"); done; fi
if [ -z "${DB_URL:-}${DB_URLS:-}" ]; then
  [ "$BACKEND" = postgres ] && psql_ "DROP DATABASE IF EXISTS plans_base" && psql_ "CREATE DATABASE plans_base"
  serve "$1" "$(url_of plans_base)"
  for c in $(seq 1 "$COPIES"); do target/release/fhir-server import --url http://127.0.0.1:$PORT/fhir --state "$work/state-$c" "$DATA" | tail -1; done
  stop
  [ "$BACKEND" = postgres ] && psql -h 127.0.0.1 -U postgres -qc "VACUUM ANALYZE" plans_base
fi
m() { # label name query
  wrk -t1 -c8 -d"${SECS}s" --timeout 10s --latency "http://127.0.0.1:$PORT/fhir/$3" |
    awk -v l="$1" -v n="$2" '/Requests\/sec/ {r=$2} / 50%/ {p50=$2} / 99%/ {p99=$2} END {printf "%-10s %-22s req/s %8s  p50 %9s  p99 %9s\n", l, n, r, p50, p99}'
}
for round in $(seq 1 "${ROUNDS:-1}"); do
n=0
for run in "${runs[@]}"; do
  read -r bin url <<<"$run"
  n=$((n + 1)); label="build$n"; [ -n "${DB_URLS:-}" ] && label="db$n"
  if [ -n "$url" ]; then serve "$bin" "$url"
  else
    if [ "$BACKEND" = sqlite ]; then
      rm -f "$work"/plans_copy.db*; for f in "$work"/plans_base.db*; do cp "$f" "${f/plans_base/plans_copy}"; done
    else psql_ "DROP DATABASE IF EXISTS plans_copy"; psql_ "CREATE DATABASE plans_copy TEMPLATE plans_base"; fi
    serve "$bin" "$(url_of plans_copy)"
  fi
  B=http://127.0.0.1:$PORT/fhir
  pid=$(curl -s "$B/Patient?_count=1&_elements=id" | sed -E 's/.*"resource":\{"resourceType":"Patient","id":"([^"]+)".*/\1/')
  family=$(curl -s "$B/Patient/$pid" | sed -E 's/.*"family":"([^"]+)".*/\1/')
  echo "$label: $bin"
  m "$label" token "Observation?code=http://loinc.org%7C8867-4&_count=50"
  m "$label" token-accurate "Observation?code=http://loinc.org%7C8867-4&_count=50&_total=accurate"
  m "$label" token-none "Observation?code=http://loinc.org%7C8867-4&_count=50&_total=none"
  m "$label" ref+date "Observation?subject=Patient/$pid&date=ge2015-01-01&_count=50"
  m "$label" chained "Observation?subject:Patient.name=$family&_count=50"
  m "$label" chained+date "Observation?subject:Patient.name=$family&date=ge2015-01-01&_count=50"
  m "$label" has "Patient?_has:Observation:subject:code=http://loinc.org%7C8867-4&_count=50"
  m "$label" revinclude "Patient?_id=$pid&_revinclude=Encounter:subject"
  m "$label" sort-date "Observation?code=http://loinc.org%7C8867-4&_sort=-date&_count=50"
  m "$label" sort-family "Patient?_sort=family,given&_count=50"
  m "$label" sort-status "Observation?code=http://loinc.org%7C8867-4&_sort=status,-date&_count=50"
  m "$label" rare "Observation?code=http://loinc.org%7C99999-9&_count=50"
  m "$label" rare-code "Observation?code=http://loinc.org%7C2339-0&_count=50"
  m "$label" has-rare "Patient?_has:Observation:subject:code=http://loinc.org%7C2339-0&_count=50"
  m "$label" type-listing "Observation?_count=50"
  m "$label" status-final "Observation?status=final&_count=50"
  m "$label" code-any-system "Observation?code=8867-4&_count=50"
  m "$label" sort-lastUpdated "Observation?_sort=-_lastUpdated&_count=50"
  m "$label" token+lastUpdated "Observation?code=http://loinc.org%7C8867-4&_sort=-_lastUpdated&_count=50"
  # Criteria the generic query answers (no index walk serves them).
  m "$label" obs-date "Observation?date=ge2015-01-01&_count=50"
  m "$label" obs-date-day "Observation?date=2015-06-01&_count=50"
  m "$label" enc-date "Encounter?date=ge2010-01-01&_count=50"
  m "$label" pat-birth "Patient?birthdate=ge1950-01-01&_count=50"
  m "$label" obs-value "Observation?value-quantity=gt100&_count=50"
  m "$label" cond-onset "Condition?onset-date=ge2000-01-01&_count=50"
  m "$label" pat-name "Patient?name=a&_count=50"
  stop
done
done
[ "$BACKEND" = postgres ] && [ -z "${DB_URL:-}${DB_URLS:-}" ] && { psql_ "DROP DATABASE IF EXISTS plans_copy"; psql_ "DROP DATABASE IF EXISTS plans_base"; }
true
