#!/usr/bin/env bash
# Queue benchmark: moked's Redis queue against BullMQ on the same Redis, same machine, same run.
#
#   bench/queue.sh                # 3 interleaved reps of a 50,000-job drain each, a 300,000-job
#                                 # due backlog, idle pickup latency; writes bench/results/queue-*.txt
#   REPS=1 JOBS=5000 BACKLOG=20000 bench/queue.sh   # a quick smoke run
#
# Starts its own redis-server on 127.0.0.1:$REDIS_PORT (default 6391, no persistence, as the
# intake harness does for every peer) and stops it by PID at the end. BullMQ's drain is
# bench/peers/express-bullmq/drain.js (one Worker, concurrency 50, no-op jobs), with the
# packages pinned by its package-lock.json (installed under target/bench-peers/).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
. bench/harness/peers.sh
REDIS_PORT=${REDIS_PORT:-6391}
REPS=${REPS:-3}; JOBS=${JOBS:-50000}; BACKLOG=${BACKLOG:-300000}; CONC=${CONC:-50}
OUT=$ROOT/bench/results; mkdir -p "$OUT"
RUN=$OUT/queue-$(date +%Y%m%d-%H%M%S).txt
log() { echo "[queue-bench $(date +%H:%M:%S)] $*" >&2; }

if redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1; then
  echo "port $REDIS_PORT is taken; set REDIS_PORT" >&2; exit 1
fi
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no --daemonize no >/dev/null &
REDIS_PID=$!
trap 'kill $REDIS_PID 2>/dev/null || true' EXIT
for _ in $(seq 50); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done

install_peers bullmq
log "building the benchmark (release)"
cargo bench -p moked-jobs --bench queue --no-run --locked >/dev/null 2>&1
export REDIS_URL=redis://127.0.0.1:$REDIS_PORT/0

ours() { cargo bench -q -p moked-jobs --bench queue --locked -- "$@" 2>/dev/null | grep '^RESULT'; }
bullmq() { (cd bench/peers/express-bullmq && REDIS_PORT=$REDIS_PORT NODE_PATH=$PEER_NODE_MODULES node drain.js "$@" | grep '^RESULT'); }

{
  echo "# $(date -u +%FT%TZ) $(nproc) cores, load $(cut -d' ' -f1 /proc/loadavg), redis $(redis-server --version | awk '{print $3}')"
  for rep in $(seq "$REPS"); do
    log "rep $rep: BullMQ drain of $JOBS"
    echo "rep=$rep peer=bullmq $(bullmq "$JOBS" "$CONC")"
    redis-cli -p "$REDIS_PORT" flushall >/dev/null
    log "rep $rep: moked drain of $JOBS"
    echo "rep=$rep peer=moked $(ours drain --jobs "$JOBS" --concurrency "$CONC")"
    redis-cli -p "$REDIS_PORT" flushall >/dev/null
    log "rep $rep: moked backend alone (no runner) on $JOBS"
    echo "rep=$rep peer=moked-backend $(ours raw --jobs "$JOBS")"
    redis-cli -p "$REDIS_PORT" flushall >/dev/null
  done
  log "moked backlog of $BACKLOG due jobs"
  echo "peer=moked $(ours backlog --jobs "$BACKLOG" --concurrency "$CONC")"
  redis-cli -p "$REDIS_PORT" flushall >/dev/null
  log "moked idle pickup"
  echo "peer=moked $(ours pickup --samples 200 --gap-ms 50)"
} | tee "$RUN"
python3 "$ROOT/bench/queue_table.py" "$RUN"
