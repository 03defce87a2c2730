#!/usr/bin/env bash
# Drops databases, queues and logs left by test runs (a killed run cannot clean up after itself).
set -euo pipefail
server="${TEST_PG_SERVER:-postgres://postgres@127.0.0.1:5432}"
for db in $(psql "$server/postgres" -Atc "SELECT datname FROM pg_database WHERE datname LIKE 'bi\_test\_%' OR datname LIKE 'bi\_schema\_check\_%'"); do
  psql "$server/postgres" -qc "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null
done
# Queues of earlier test and benchmark runs: each used a key prefix of its own (bt…, pt…, at…
# for the gateway, pipeline and alert tests; bench… for make bench).
for pattern in 'bt????????????:*' 'pt????????????:*' 'at????????????:*' 'bench*:q:*'; do
  redis-cli -h 127.0.0.1 -p 6379 --scan --pattern "$pattern" | xargs -r -n 500 redis-cli -h 127.0.0.1 -p 6379 unlink >/dev/null
done
rm -rf target/tmp/bi_test_*
