#!/usr/bin/env bash
# Installs the build and test tools a fresh machine lacks: diesel_cli (schema check) and
# cargo-nextest (the test runner; `cargo test` is the fallback).
set -euo pipefail
DIESEL_CLI_VERSION=2.3.14

log() { echo "ensure-tools: $*"; }

if ! command -v diesel >/dev/null || ! diesel --version | grep -q "$DIESEL_CLI_VERSION"; then
  if ! dpkg -s libpq-dev >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq --no-install-recommends libpq-dev >/dev/null
  fi
  log "installing diesel_cli $DIESEL_CLI_VERSION (postgres only)"
  cargo install diesel_cli --version "$DIESEL_CLI_VERSION" --no-default-features --features postgres --locked --quiet
fi
log "diesel_cli $(diesel --version | tr -s " \n" " ")"

# The dashboard's browser tests drive headless Chromium through ChromeDriver.
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  log "installing chromium and chromium-driver"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null
fi
log "$(chromium --version 2>/dev/null | head -n1); $(chromedriver --version 2>/dev/null | head -n1)"
