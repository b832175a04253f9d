#!/usr/bin/env bash
# Loading speed: `fhir-server import --database-url` of DIR (default shared/synthea/; issue
# #13 asks for 100 generated patients: `synthea -p 100 -s 42`, 214,205 resources) into a
# fresh database, once per binary and round, interleaved (A B A B), so that binaries are
# compared in the same sitting. Prints resources/s.
# Usage: [DIR=…] [ROUNDS=2] scripts/bench/load.sh sqlite|postgres BIN…
set -euo pipefail
cd "$(dirname "$0")/../.."
BACKEND=$1; shift
DIR=${DIR:-../shared/synthea/}; ROUNDS=${ROUNDS:-2}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for round in $(seq 1 "$ROUNDS"); do
  for bin in "$@"; do
    if [ "$BACKEND" = sqlite ]; then rm -f "$work"/fhir.db*; url="sqlite://$work/fhir.db"; else
      psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS fhir_load_bench WITH (FORCE)" -c "CREATE DATABASE fhir_load_bench" postgres 2>/dev/null
      url="postgres://postgres@127.0.0.1:5432/fhir_load_bench"
    fi
    rm -f "$work"/state*
    echo "round $round $bin: $("$bin" import --database-url "$url" --state "$work/state" "$DIR" 2>/dev/null | tail -1)"
  done
done
