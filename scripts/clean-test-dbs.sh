#!/usr/bin/env bash
# Drops databases left by test runs that were killed before they could clean up after themselves.
set -euo pipefail
server="${TEST_PG_SERVER:-postgres://postgres@127.0.0.1:5432}"
for db in $(psql "$server/postgres" -Atc "SELECT datname FROM pg_database WHERE datname LIKE 'bi\_test\_%' OR datname LIKE 'bi\_schema\_check\_%'"); do
  psql "$server/postgres" -qc "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null
done
