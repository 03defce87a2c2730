#!/usr/bin/env bash
# Fails when crates/core/src/db/schema.rs differs from what diesel prints for a database built
# from migrations/. `scripts/schema-check.sh --write` regenerates the file instead.
set -euo pipefail
server="${TEST_PG_SERVER:-postgres://postgres@127.0.0.1:5432}"
name="bi_schema_check_$$"
url="$server/$name"
trap 'psql "$server/postgres" -qc "DROP DATABASE IF EXISTS $name WITH (FORCE)" >/dev/null 2>&1 || true' EXIT
psql "$server/postgres" -qc "CREATE DATABASE $name" >/dev/null
diesel migration run --database-url "$url" --migration-dir migrations >/dev/null
generated=$(mktemp)
diesel print-schema --database-url "$url" > "$generated"
if [ "${1:-}" = "--write" ]; then
  cp "$generated" crates/core/src/db/schema.rs
  echo "schema: crates/core/src/db/schema.rs regenerated"
elif ! diff -u crates/core/src/db/schema.rs "$generated"; then
  echo "schema: crates/core/src/db/schema.rs differs from the migrations; run 'make schema'" >&2
  exit 1
else
  echo "schema: crates/core/src/db/schema.rs matches the migrations"
fi
