# The commands in README.md. CI runs `make test` (see .ci/run).
SHELL := /bin/bash
CARGO ?= cargo
export DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/bizinsights

.PHONY: run test bench migrate lint fmt fmt-check clippy schema schema-check services tools build docker precommit test-only

## Build, migrate, and run the gateway and the three workers.
run: services
	scripts/run.sh

## The whole suite: services up, tools present, formatting, lints, schema, every test.
test: services tools fmt-check clippy schema-check test-only

test-only:
	scripts/clean-test-dbs.sh
	@if $(CARGO) nextest --version >/dev/null 2>&1; then \
		$(CARGO) nextest run --workspace --no-fail-fast; \
	else \
		$(CARGO) test --workspace --no-fail-fast; \
	fi

## Benchmarks; figures are printed and written to target/bench/.
bench: services
	@mkdir -p target/bench
	$(CARGO) build --release --quiet -p queue-bench -p gateway -p sync-worker
	target/release/queue-bench
	target/release/queue-bench webhooks
	target/release/queue-bench throttled
	target/release/queue-bench backfill
	target/release/queue-bench shopify-throttled
	target/release/queue-bench shopify-backfill
	target/release/queue-bench dashboard
	target/release/queue-bench login-timing

migrate: services
	$(CARGO) run --quiet --bin gateway -- migrate

lint: fmt-check clippy

fmt:
	$(CARGO) fmt --all

fmt-check:
	$(CARGO) fmt --all -- --check

clippy:
	$(CARGO) clippy --workspace --all-targets -- -D warnings

## Regenerate crates/core/src/db/schema.rs from migrations/.
schema: services tools
	scripts/schema-check.sh --write

schema-check: services tools
	scripts/schema-check.sh

services:
	scripts/ensure-services.sh

tools:
	scripts/ensure-tools.sh

build:
	$(CARGO) build --workspace --bins

docker:
	docker build -f deploy/Dockerfile -t bizinsights:dev .

precommit: fmt lint test
