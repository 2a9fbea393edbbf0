#!/usr/bin/env bash
# Intake benchmark: moked-intake (signature check + durable enqueue to Redis) against bare axum,
# Express+BullMQ and Flask+RQ, with the harness of bench/harness/ (run.sh; the peers are in
# bench/peers/) — same machine, same run, interleaved repetitions; read the ratios.
#
#   bench/intake.sh                       # full run (~8 min on 2 cores)
#   QUICK=1 bench/intake.sh               # smoke run; numbers not for comparison
#   PEERS="axum-hello" bench/intake.sh    # only the HTTP ceiling and ours
#
# moked runs as in production: moked-intake with the queue in Redis (the harness's own Redis on
# 127.0.0.1:6391), rate limits off (all load comes from one IP and few caller numbers), Twilio
# REST pointed at a closed local port. Every accepted webhook must be exactly one queued job:
# the harness compares the queue length (from `moked-worker jobs stats`) with the 2xx count.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
echo "building release binaries" >&2
cargo build --release --locked --bin moked-intake --bin moked-worker >&2
PORT=${OURS_PORT:-8088}
export OPERATOR_TOKEN=bench-operator
export MOKED_ENV="PORT=$PORT PUBLIC_HOST=http://127.0.0.1:$PORT \
REDIS_URL=redis://127.0.0.1:${REDIS_PORT:-6391}/0 QUEUE_PREFIX=bench DATABASE_URL=sqlite://$ROOT/target/bench/intake.db \
TWILIO_ACCOUNT_SID=AC0123456789abcdef0123456789abcdef TWILIO_AUTH_TOKEN=bench-auth-token-0123456789abcdef \
OPERATOR_TOKEN=$OPERATOR_TOKEN TWILIO_API_BASE=http://127.0.0.1:9 LOG_FORMAT=json RUST_LOG=warn \
RATE_LIMIT_UNVERIFIED=off RATE_LIMIT_CALLS=off RATE_LIMIT_RECORDINGS=off RATE_LIMIT_STATUS=off"
mkdir -p target/bench
env $MOKED_ENV "$ROOT/target/release/moked-worker" migrate >/dev/null
export OURS_URL=http://127.0.0.1:$PORT OURS_ENQ_ALL=1
export OURS_START="exec env $MOKED_ENV $ROOT/target/release/moked-intake"
export OURS_QUEUE_LEN="env $MOKED_ENV $ROOT/target/release/moked-worker jobs stats --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"queued\"])'"
export WORKERS=${WORKERS-""}
OUT=${OUT:-$ROOT/bench/results/intake-$(date +%Y%m%d-%H%M%S)}
export OUT
bash "$ROOT/bench/harness/run.sh"
echo "results in $OUT" >&2
