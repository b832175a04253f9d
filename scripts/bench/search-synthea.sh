#!/usr/bin/env bash
# Search latency over Synthea data: loads DATA (default shared/synthea/, about 23,000
# resources) COPIES times into a fresh database (each copy gets new ids), then measures
# the searches of issue #13 with wrk (-t1 -c8, SECS s each): p50/p99. With EVERY=N the
# searches are measured after every N copies too, to see how latency grows with the
# store (50 copies, EVERY=10: 232k, 464k, … 1.16M resources).
# Usage: [DATA=DIR] [EVERY=N] [SECS=5] [BIN=path] [NO_BUILD=1] [SERVE_ARGS="--validation off"]
#        scripts/bench/search-synthea.sh [sqlite|postgres] [copies]
set -euo pipefail
cd "$(dirname "$0")/../.."
BACKEND=${1:-sqlite}; COPIES=${2:-5}; DATA=${DATA:-../shared/synthea/}
PORT=18096; SECS=${SECS:-5}; BIN=${BIN:-target/release/fhir-server}
[ -n "${NO_BUILD:-}" ] || cargo build --release -p fhir-server >/dev/null
work=$(mktemp -d)
trap 'kill $(cat "$work/pid" 2>/dev/null) 2>/dev/null || true; rm -rf "$work"' EXIT
if [ "$BACKEND" = sqlite ]; then url="sqlite://$work/fhir.db"; else
  psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS fhir_synthea_bench" -c "CREATE DATABASE fhir_synthea_bench" postgres
  url="postgres://postgres@127.0.0.1:5432/fhir_synthea_bench"
fi
B=http://127.0.0.1:$PORT/fhir
"$BIN" serve --listen 127.0.0.1:$PORT --database-url "$url" --log-level warn ${SERVE_ARGS:-} >"$work/log" 2>&1 &
echo $! >"$work/pid"
for _ in $(seq 1 100); do curl -sf http://127.0.0.1:$PORT/ready >/dev/null && break; sleep 0.1; done
measure() {
  wrk -t1 -c8 -d"${SECS}s" --timeout 10s --latency "$B/$2" | awk -v n="$1" '/Requests\/sec/ {rps=$2} / 50%/ {p50=$2} / 99%/ {p99=$2} END {printf "%-12s req/s %8s  p50 %8s  p99 %8s\n", n, rps, p50, p99}'
}
measure_all() {
  local total all pid family
  total=$(curl -s "$B/Observation?_summary=count" | sed -E 's/.*"total":([0-9]+).*/\1/')
  all=0; for t in Patient Observation Encounter Condition Procedure MedicationRequest Immunization Claim ExplanationOfBenefit DiagnosticReport DocumentReference; do
    n=$(curl -s "$B/$t?_summary=count" | sed -E 's/.*"total":([0-9]+).*/\1/'); all=$((all + n)); done
  echo "$BACKEND: $total Observations, $all resources of the 11 main types"
  pid=$(curl -s "$B/Patient?_count=1&_elements=id" | sed -E 's/.*"resource":\{"resourceType":"Patient","id":"([^"]+)".*/\1/')
  family=$(curl -s "$B/Patient/$pid" | sed -E 's/.*"family":"([^"]+)".*/\1/')
  measure token "Observation?code=http://loinc.org%7C8867-4&_count=50"
  measure token-accurate "Observation?code=http://loinc.org%7C8867-4&_count=50&_total=accurate"
  measure token-nototal "Observation?code=http://loinc.org%7C8867-4&_count=50&_total=none"
  measure ref+date "Observation?subject=Patient/$pid&date=ge2015-01-01&_count=50"
  measure chained "Observation?subject:Patient.name=$family&_count=50"
  measure has "Patient?_has:Observation:subject:code=http://loinc.org%7C8867-4&_count=50"
  measure revinclude "Patient?_id=$pid&_revinclude=Encounter:subject"
  measure sort-date "Observation?code=http://loinc.org%7C8867-4&_sort=-date&_count=50"
  measure sort-names "Patient?_sort=family,given&_count=50"
  measure rare-code "Observation?code=http://loinc.org%7C2339-0&_count=50"
}
start=$(date +%s.%N)
for c in $(seq 1 "$COPIES"); do
  "$BIN" import --url "$B" --state "$work/state-$c" "$DATA" | tail -1
  if [ -n "${EVERY:-}" ] && [ "$c" != "$COPIES" ] && [ $((c % EVERY)) = 0 ]; then measure_all; fi
done
end=$(date +%s.%N)
echo "$BACKEND: loaded in $(echo "$end - $start" | bc) s"
measure_all
