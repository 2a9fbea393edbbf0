#!/usr/bin/env bash
# The Baileys bridge's tests (node:test, no network): its HTTP contract against a stubbed
# Baileys socket, and inbound/outbound against the real moked binary.
#   bridge/test.sh            — installs bridge/node_modules from the lock file when missing,
#                               builds target/debug/moked (unless MOKED_BIN names a binary),
#                               runs every test/*.test.js, ends with "N passed, N failed";
#                               arguments go to node (e.g. --test-name-pattern=restart).
# Exit status: 0 only when every test passed.
set -euo pipefail
cd "$(dirname "$0")"

log() { echo "[bridge-test] $*" >&2; }

if [ ! -d node_modules/@whiskeysockets/baileys ]; then
  log "installing dependencies (npm ci)"
  # No install scripts: Baileys' only one is an engine check, protobufjs' a version notice.
  npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
fi

if [ -z "${MOKED_BIN:-}" ]; then
  log "building moked (cargo build --bin moked)"
  (cd .. && cargo build --locked --quiet --bin moked)
  export MOKED_BIN=$PWD/../target/debug/moked
fi

out=$(mktemp)
trap 'rm -f "$out"' EXIT
status=0
node --test --test-reporter=tap "$@" test/*.test.js | tee "$out" || status=$?
passed=$(sed -n 's/^# pass \([0-9]*\)$/\1/p' "$out" | tail -n1)
failed=$(sed -n 's/^# fail \([0-9]*\)$/\1/p' "$out" | tail -n1)
echo "${passed:-0} passed, ${failed:-0} failed"
if [ "$status" -ne 0 ] || [ "${failed:-1}" != 0 ] || [ -z "${passed:-}" ]; then exit 1; fi
