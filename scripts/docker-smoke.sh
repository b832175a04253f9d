#!/usr/bin/env bash
# Smoke test of the container image and of docker-compose.yml, on a machine with a Docker
# daemon (CI has none, so this is run by hand before a release):
#   1. builds the image; runs it (SQLite in its volume) and waits for the health check
#      to report "healthy"; checks it runs as the unprivileged user 10001;
#   2. writes a Patient, restarts the container and reads it back (data in the volume);
#   3. checks the image refuses to listen beyond loopback without authentication;
#   4. starts docker-compose.yml (PostgreSQL + the server), waits for both to be healthy,
#      writes and searches through it, scrapes /metrics on its own port, and tears it down
#      with its volumes.
# Usage: scripts/docker-smoke.sh   (DOCKER=path-to-docker, COMPOSE="docker compose")
set -euo pipefail
cd "$(dirname "$0")/.."
DOCKER=${DOCKER:-docker}
if [ -z "${COMPOSE:-}" ]; then
  if $DOCKER compose version >/dev/null 2>&1; then COMPOSE="$DOCKER compose"; else COMPOSE=docker-compose; fi
fi
IMAGE=fhir-server:smoke; NAME=fhir-smoke-$$; PORT=${PORT:-18480}
pass() { echo "PASS  $*"; }
fail() { echo "FAIL  $*"; exit 1; }
cleanup() { $DOCKER rm -f "$NAME" >/dev/null 2>&1 || true; $DOCKER volume rm -f "$NAME" >/dev/null 2>&1 || true; }
trap cleanup EXIT

DOCKER_BUILDKIT=1 $DOCKER build -q -t "$IMAGE" . >/dev/null || fail "docker build"
pass "image built: $($DOCKER image inspect "$IMAGE" --format '{{.Size}}' | awk '{printf "%.0f MB", $1/1e6}')"

$DOCKER run -d --name "$NAME" -v "$NAME:/var/lib/fhir" -p "127.0.0.1:$PORT:8080" \
  -e FHIR_INSECURE_NO_AUTH=true "$IMAGE" >/dev/null
healthy() {
  for _ in $(seq 1 90); do
    [ "$($DOCKER inspect "$1" --format '{{.State.Health.Status}}')" = healthy ] && return 0
    sleep 1
  done
  return 1
}
healthy "$NAME" || fail "health check never reported healthy: $($DOCKER logs "$NAME" 2>&1 | tail -3)"
pass "health check: healthy"
[ "$($DOCKER exec "$NAME" id -u)" = 10001 ] || fail "runs as $($DOCKER exec "$NAME" id)"
pass "runs as uid 10001"

B=http://127.0.0.1:$PORT/fhir
location=$(curl -sf -D - -o /dev/null -X POST -H 'Content-Type: application/fhir+json' \
  -d '{"resourceType":"Patient","name":[{"family":"Smoke"}]}' "$B/Patient" | tr -d '\r' | sed -n 's/^[Ll]ocation: //p')
id=$(echo "$location" | sed -E 's#.*/Patient/([^/]+)/_history.*#\1#')
[ -n "$id" ] || fail "create answered no Location"
$DOCKER restart "$NAME" >/dev/null
healthy "$NAME" || fail "not healthy after a restart"
[ "$(curl -sf "$B/Patient/$id" | jq -r '.name[0].family')" = Smoke ] || fail "Patient/$id lost across a restart"
pass "Patient/$id kept across a restart (volume)"

if out=$($DOCKER run --rm "$IMAGE" 2>&1); then fail "started without authentication"; fi
echo "$out" | grep -q "without authentication" || fail "no reason given: $out"
pass "refuses to listen beyond loopback without authentication"

cleanup
$COMPOSE -p fhirsmoke up -d --build >/dev/null 2>&1 || fail "compose up"
trap '$COMPOSE -p fhirsmoke down -v >/dev/null 2>&1 || true; cleanup' EXIT
healthy fhirsmoke_fhir_1 2>/dev/null || healthy fhirsmoke-fhir-1 || fail "compose: server not healthy"
pass "compose: PostgreSQL and server healthy"
C=http://127.0.0.1:8080/fhir
curl -sf -o /dev/null -X POST -H 'Content-Type: application/fhir+json' \
  -d '{"resourceType":"Patient","name":[{"family":"Composed"}]}' "$C/Patient" || fail "compose: create"
[ "$(curl -sf "$C/Patient?family=Composed&_summary=count" | jq .total)" = 1 ] || fail "compose: search"
$COMPOSE -p fhirsmoke logs fhir 2>&1 | grep -q '"backend":"Postgres"' || fail "compose: server not on PostgreSQL"
pass "compose: written and found on PostgreSQL"
curl -sf http://127.0.0.1:9090/metrics | grep -q '^fhir_http_requests_total' || fail "compose: /metrics on 9090"
pass "compose: /metrics on port 9090"
