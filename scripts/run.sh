#!/usr/bin/env bash
# `make run`: builds, migrates, and runs the gateway and the three workers as one supervised
# group. Each line of output is prefixed with its service. Ctrl-C (or any process exiting) stops
# them all.
set -euo pipefail
cd "$(dirname "$0")/.."

export BIZ_ENV="${BIZ_ENV:-development}"
export DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/bizinsights}"
export REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379}"
addr="${BIZ__GATEWAY__ADDR:-127.0.0.1:8080}"
url="http://$addr"
bin=target/debug

echo "run: building"
cargo build --workspace --bins --quiet
echo "run: migrating $DATABASE_URL"
"$bin/gateway" migrate

pids=()
stop() {
  trap - INT TERM EXIT
  echo "run: stopping"
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap stop INT TERM EXIT

start() {
  local name=$1; shift
  # The binary runs in the background; its output goes through a prefixing filter.
  "$@" > >(sed -u "s/^/[$name] /") 2>&1 &
  pids+=($!)
}

start gateway "$bin/gateway"
start sync-worker "$bin/sync-worker"
start report-worker "$bin/report-worker"
start alert-worker "$bin/alert-worker"

for _ in $(seq 1 60); do
  curl -fsS "$url/readyz" >/dev/null 2>&1 && break
  sleep 0.5
done

# The demo login: created on first run, reused after.
demo_email="demo@bizinsights.local"
demo_password="demo-password-2026"
if ! curl -fs -o /dev/null -X POST "$url/api/v1/auth/login" -H 'content-type: application/json' \
     -d "{\"email\":\"$demo_email\",\"password\":\"$demo_password\"}"; then
  curl -fsS -o /dev/null -X POST "$url/api/v1/auth/signup" -H 'content-type: application/json' \
    -d "{\"email\":\"$demo_email\",\"password\":\"$demo_password\",\"name\":\"Demo\",\"organization_name\":\"Demo Shop\"}" \
    || echo "run: could not create the demo login"
fi

cat <<MSG

  BizInsights is running.
    Gateway:   $url   (readiness: $url/readyz, API: $url/api/v1/openapi.json)
    Demo login: $demo_email / $demo_password
  Ctrl-C stops everything.

MSG

# Supervise: when any process exits, stop the rest.
wait -n "${pids[@]}" || true
echo "run: a process exited; stopping the group"
