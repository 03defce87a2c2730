#!/usr/bin/env bash
# `make run`: builds, migrates, and runs the provider simulator, the gateway and the three
# workers as one supervised group, then makes a demo organisation whose Stripe account is the
# simulator's. Each line of output is prefixed with its service. Ctrl-C (or any process
# exiting) stops them all.
set -euo pipefail
cd "$(dirname "$0")/.."

export BIZ_ENV="${BIZ_ENV:-development}"
export DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/bizinsights}"
export REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379}"
addr="${BIZ__GATEWAY__ADDR:-127.0.0.1:8080}"
sim_addr="${SIM_ADDR:-127.0.0.1:12111}"
# Every provider base URL points at the simulator unless set otherwise.
export BIZ__PROVIDERS__STRIPE_API_BASE="${BIZ__PROVIDERS__STRIPE_API_BASE:-http://$sim_addr}"
export BIZ__PROVIDERS__STRIPE_CONNECT_BASE="${BIZ__PROVIDERS__STRIPE_CONNECT_BASE:-http://$sim_addr}"
export BIZ__PROVIDERS__RESEND_API_BASE="${BIZ__PROVIDERS__RESEND_API_BASE:-http://$sim_addr}"
export BIZ__PROVIDERS__SHOPIFY_API_BASE="${BIZ__PROVIDERS__SHOPIFY_API_BASE:-http://$sim_addr/shopify/{shop}}"
# The simulated shops know this app (provider-sim's defaults).
export SHOPIFY_CLIENT_ID="${SHOPIFY_CLIENT_ID:-sim-shopify-client-id}"
export SHOPIFY_CLIENT_SECRET="${SHOPIFY_CLIENT_SECRET:-sim-shopify-client-secret}"
# The simulator accepts any well-formed Resend key; a real one comes from the environment.
export RESEND_API_KEY="${RESEND_API_KEY:-re_local_simulator_key}"
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

start provider-sim "$bin/provider-sim" --addr "$sim_addr"
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

# The demo organisation's Stripe account is the simulator's: connect it once.
token=$(curl -fsS -X POST "$url/api/v1/auth/login" -H 'content-type: application/json' \
  -d "{\"email\":\"$demo_email\",\"password\":\"$demo_password\"}" | sed -n 's/.*"token":"\([^"]*\)".*/\1/p')
org=$(curl -fsS "$url/api/v1/orgs" -H "authorization: Bearer $token" | sed -n 's/.*"id":"\([^"]*\)".*/\1/p' | head -n 1)
if [ -n "$token" ] && [ -n "$org" ]; then
  if ! curl -fsS "$url/api/v1/orgs/$org/integrations" -H "authorization: Bearer $token" | grep -q '"provider":"stripe"'; then
    curl -fsS -o /dev/null -X POST "$url/api/v1/orgs/$org/integrations" -H "authorization: Bearer $token" \
      -H 'content-type: application/json' \
      -d '{"provider":"stripe","credentials":{"api_key":"sk_test_51DemoShopSimulatorKey0001"}}' \
      && echo "run: demo Stripe account connected; its backfill is running" \
      || echo "run: could not connect the demo Stripe account"
  fi
  # And the simulator's demo shop, installed the way a merchant does: our install route, the
  # shop's approval page (the simulator approves at once), our OAuth callback.
  if ! curl -fsS "$url/api/v1/orgs/$org/integrations" -H "authorization: Bearer $token" | grep -q '"provider":"shopify"'; then
    next=$(curl -sS -o /dev/null -w '%{redirect_url}' -H "authorization: Bearer $token" \
      "$url/api/v1/orgs/$org/integrations/shopify/install?shop=demo-shop.myshopify.com")
    for _ in 1 2; do
      [ -n "$next" ] && next=$(curl -sS -o /dev/null -w '%{redirect_url}' "$next")
    done
    case "$next" in
      *connected=shopify*) echo "run: demo Shopify store installed; its backfill is running" ;;
      *) echo "run: could not install the demo Shopify store" ;;
    esac
  fi
fi

# Demo exchange rates, so the demo's money cards can total across currencies: fixed rates that
# match the simulator's prices (EUR 0.9, GBP 0.8 and JPY 150 per USD 1.00), not market data.
# Loaded only into a database that has no rates yet; real rates come from an admin's CSV.
if [ "$(psql "$DATABASE_URL" -Atc 'SELECT count(*) FROM fx_rates' 2>/dev/null)" = "0" ]; then
  fx=$(mktemp)
  echo "date,base,quote,rate" > "$fx"
  for i in $(seq 0 800); do
    d=$(date -u -d "-$i days" +%F)
    printf '%s,EUR,USD,1.1111111
%s,GBP,USD,1.25
%s,JPY,USD,0.0066667
' "$d" "$d" "$d" >> "$fx"
  done
  "$bin/gateway" load-fx-rates "$fx" >/dev/null \
    && echo "run: demo exchange rates loaded (fixed, matching the simulator's prices; not market data)" \
    || echo "run: could not load the demo exchange rates"
  rm -f "$fx"
fi

cat <<MSG

  BizInsights is running.
    Gateway:   $url   (readiness: $url/readyz, API: $url/api/v1/openapi.json)
    Simulator: http://$sim_addr   (providers' APIs; control at /_sim/config)
    Demo login: $demo_email / $demo_password
    The simulator's data runs to 2025-12-31; its last month: $url/?from=2025-12-01&to=2025-12-31
  Ctrl-C stops everything.

MSG

# Supervise: when any process exits, stop the rest.
wait -n "${pids[@]}" || true
echo "run: a process exited; stopping the group"
