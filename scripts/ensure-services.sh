#!/usr/bin/env bash
# Makes sure PostgreSQL (127.0.0.1:5432, user postgres, trust auth) and Redis (127.0.0.1:6379)
# answer: starts them if this machine has them, installs them from Debian's packages if not.
# Also installs the command-line tools the suite uses (psql, pg_dump, libpq for diesel_cli).
set -euo pipefail

log() { echo "ensure-services: $*"; }

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

apt_updated=""
apt_install() {
  export DEBIAN_FRONTEND=noninteractive
  if [ -z "$apt_updated" ]; then as_root apt-get update -qq; apt_updated=1; fi
  log "installing $*"
  as_root apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

pg_answers() { pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; }
pg_trusts() { psql -h 127.0.0.1 -U postgres -d postgres -Atc 'select 1' >/dev/null 2>&1; }
redis_answers() { redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG; }

# --- PostgreSQL -------------------------------------------------------------------------------
command -v pg_isready >/dev/null && command -v pg_dump >/dev/null || apt_install postgresql-client
if ! pg_answers; then
  if [ -z "$(ls /etc/postgresql 2>/dev/null)" ]; then
    apt_install postgresql
  fi
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  log "starting PostgreSQL $version"
  as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  for _ in $(seq 1 30); do pg_answers && break; sleep 1; done
  pg_answers || { log "PostgreSQL did not start"; exit 1; }
fi
if ! pg_trusts; then
  # A fresh Debian cluster asks for passwords over TCP; the suite connects as postgres with
  # trust auth on loopback, as on the developers' and CI machines.
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  hba="/etc/postgresql/$version/main/pg_hba.conf"
  log "allowing trust auth on loopback in $hba"
  as_root sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' "$hba"
  as_root pg_ctlcluster --skip-systemctl-redirect "$version" main reload
  sleep 1
  pg_trusts || { log "cannot connect to PostgreSQL as postgres on 127.0.0.1"; exit 1; }
fi
log "PostgreSQL answers on 127.0.0.1:5432"

# --- Redis ------------------------------------------------------------------------------------
if ! redis_answers; then
  command -v redis-server >/dev/null || apt_install redis-server
  as_root mkdir -p /var/lib/redis /var/log/redis
  log "starting Redis"
  as_root redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" \
    --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log
  for _ in $(seq 1 30); do redis_answers && break; sleep 1; done
  redis_answers || { log "Redis did not start"; exit 1; }
fi
log "Redis answers on 127.0.0.1:6379"
