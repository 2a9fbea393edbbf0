#!/usr/bin/env bash
# The intake floor beside bare axum, in the harness of bench/harness/: how fast can any intake on this
# stack (axum, HMAC-SHA1, Redis) check a signed webhook and queue it, on this machine, in the
# same run as the HTTP ceiling? bench/floor/ is that least possible intake (no dedupe, no job
# record, no request ids or metrics); see its src/main.rs. One harness pass per mode:
#
#   push    verify + one batched RPUSH per webhook before answering (the floor of a durable intake)
#   verify  verify only, no Redis (the floor of reading and checking a webhook)
#
#   bench/floor.sh                 both modes, about 5 minutes on 2 cores
#   FLOOR_MODES=push bench/floor.sh
#   OUT=DIR bench/floor.sh         the harness run folders go to DIR/floor-<mode>/
#
# The harness's knobs (REPS, DURATION, REDIS_PORT, …) pass through; Redis's own benchmark and
# the worker drains are skipped. Everything started is stopped by PID (the harness does it).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
echo "building the intake floor (bench/floor, release)" >&2
cargo build --release --locked --manifest-path bench/floor/Cargo.toml --target-dir target/floor >&2
PORT=${FLOOR_PORT:-8095}
OUT=${OUT:-$ROOT/bench/results/floor-$(date +%Y%m%d-%H%M%S)}
for mode in ${FLOOR_MODES:-push verify}; do
  export OURS_URL=http://127.0.0.1:$PORT
  export OURS_START="exec env PORT=$PORT FLOOR_MODE=$mode REDIS_URL=redis://127.0.0.1:${REDIS_PORT:-6391}/0 \
TWILIO_AUTH_TOKEN=${TOKEN:-bench-auth-token-0123456789abcdef} $ROOT/target/floor/release/intake-floor"
  if [ "$mode" = push ]; then
    export OURS_ENQ_ALL=1 OURS_QUEUE_LEN="redis-cli -p ${REDIS_PORT:-6391} llen floor:jobs"
  else
    unset OURS_ENQ_ALL OURS_QUEUE_LEN
  fi
  PEERS=axum-hello WORKERS="" REDIS_BENCH=0 OUT=$OUT/floor-$mode bash "$ROOT/bench/harness/run.sh"
done
echo "results in $OUT" >&2
