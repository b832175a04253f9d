#!/usr/bin/env bash
# Terminology operations over an uploaded 10,000-concept code system (three levels:
# 10 roots, 100 groups, 9,890 leaves; displays of three words), a value set of all of
# it and one of a branch (`is-a`): wrk -t1 -c8 for `$expand` with a text filter, a
# paged `$expand`, `$validate-code` in the value set, `$lookup`, and a search with
# `code:in` the value set. One or more builds, each on a fresh SQLite database, or on
# PostgreSQL with BACKEND=postgres.
# Usage: [SECS=5] [BACKEND=sqlite|postgres] scripts/bench/terminology.sh BIN...
# Needs: wrk, python3; PostgreSQL at 127.0.0.1:5432 (trust) for postgres.
set -euo pipefail
cd "$(dirname "$0")/../.."
SECS=${SECS:-5}; BACKEND=${BACKEND:-sqlite}; PORT=18250
work=$(mktemp -d)
trap 'kill $(cat "$work/pid" 2>/dev/null) 2>/dev/null || true; rm -rf "$work"' EXIT
B=http://127.0.0.1:$PORT/fhir
CS=http://example.org/bench/cs; VS=http://example.org/bench/vs; BRANCH=http://example.org/bench/branch
python3 - "$work" "$CS" "$VS" "$BRANCH" <<'EOF'
import json, random, sys
work, cs, vs, branch = sys.argv[1:5]
random.seed(7)
words = ["acute", "chronic", "left", "right", "upper", "lower", "fracture", "pain", "fever",
         "renal", "cardiac", "pulmonary", "hepatic", "infection", "lesion", "syndrome",
         "disorder", "injury", "neoplasm", "benign", "malignant", "congenital", "viral",
         "bacterial", "allergic", "severe", "mild", "recurrent", "primary", "secondary"]
def display():
    return " ".join(random.choice(words) for _ in range(3)).capitalize()
n, roots = 0, []
for r in range(10):
    root = {"code": f"r{r}", "display": display(), "concept": []}
    for g in range(10):
        group = {"code": f"g{r}{g}", "display": display(), "concept": []}
        for _ in range(99 if (r, g) != (9, 9) else 90):
            group["concept"].append({"code": f"c{n}", "display": display()})
            n += 1
        root["concept"].append(group)
    roots.append(root)
json.dump({"resourceType": "CodeSystem", "url": cs, "status": "active", "content": "complete",
           "concept": roots}, open(f"{work}/cs.json", "w"))
json.dump({"resourceType": "ValueSet", "url": vs, "status": "active",
           "compose": {"include": [{"system": cs}]}}, open(f"{work}/vs.json", "w"))
json.dump({"resourceType": "ValueSet", "url": branch, "status": "active",
           "compose": {"include": [{"system": cs, "filter": [{"property": "concept", "op": "is-a", "value": "r3"}]}]}},
          open(f"{work}/branch.json", "w"))
EOF
m() { # label name path
  wrk -t1 -c8 -d"${SECS}s" --timeout 10s --latency "$B/$3" |
    awk -v l="$1" -v n="$2" '/Requests\/sec/ {r=$2} / 50%/ {p50=$2} / 99%/ {p99=$2} END {printf "%-8s %-22s req/s %8s  p50 %9s  p99 %9s\n", l, n, r, p50, p99}'
}
post() { # type file
  curl -sf -o /dev/null -X POST "$B/$1" -H 'Content-Type: application/fhir+json' --data-binary @"$work/$2.json" ||
    { echo "upload of $2 failed"; cat "$work/log"; exit 1; }
}
n=0
for bin in "$@"; do
  n=$((n + 1))
  if [ "$BACKEND" = sqlite ]; then url="sqlite://$work/t$n.db"; else
    psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS terminology_bench" -c "CREATE DATABASE terminology_bench" postgres
    url="postgres://postgres@127.0.0.1:5432/terminology_bench"
  fi
  "$bin" serve --listen 127.0.0.1:$PORT --database-url "$url" --log-level warn >"$work/log" 2>&1 &
  echo $! >"$work/pid"
  for _ in $(seq 1 600); do curl -sf http://127.0.0.1:$PORT/ready >/dev/null && break; sleep 0.1; done
  post CodeSystem cs; post ValueSet vs; post ValueSet branch
  label="build$n"; echo "$label: $bin"
  m "$label" expand-filter "ValueSet/\$expand?url=$VS&filter=renal%20fev&count=20"
  m "$label" expand-page "ValueSet/\$expand?url=$VS&offset=5000&count=50"
  m "$label" expand-branch "ValueSet/\$expand?url=$BRANCH&count=20"
  m "$label" validate-code "ValueSet/\$validate-code?url=$VS&system=$CS&code=c5000"
  m "$label" lookup "CodeSystem/\$lookup?system=$CS&code=c5000"
  m "$label" search-in "Condition?code:in=$BRANCH&_count=10"
  kill "$(cat "$work/pid")"; wait "$(cat "$work/pid")" 2>/dev/null || true
done
