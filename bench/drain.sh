#!/usr/bin/env bash
# Real-job drain: N signed incoming calls posted to moked-intake (queued in Redis), then one
# `moked-worker run` that records each as a call, a customer and a timeline event in the store
# (SQLite and Postgres), timed from its first finished job to its last. This is the worker's
# life in production: the store, not the queue, is what it waits on.
#
#   bench/drain.sh                       50,000 calls, 10,000 distinct callers, each store
#   DRAIN_JOBS=5000 STORES=sqlite bench/drain.sh   a quick run
#
# Knobs: DRAIN_JOBS (50000), CALLERS (10000), STORES ("sqlite postgres"), REDIS_PORT (6392, its own
# redis-server, no persistence), PG_URL (postgres://postgres@127.0.0.1:5432; a database
# moked_drain_<time> is created and dropped), WORKER_CONCURRENCY (the worker's default when unset),
# BIN (a folder with moked-intake and moked-worker to use instead of building them), PROFILE=1
# (perf record of the worker while it drains: target/bench-drain/perf-<store>.data).
# Writes bench/results/drain-<time>.txt (or RESULT_FILE), one `RESULT` line per store, and prints it:
# the rate, the CPU per job of the worker, of the Postgres server processes (Postgres store only)
# and of Redis, and how busy the whole machine was while the worker drained.
# Needs release binaries (built here), python3, redis-server, psql for Postgres.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
JOBS=${DRAIN_JOBS:-50000}; CALLERS=${CALLERS:-10000}; STORES=${STORES:-sqlite postgres}
REDIS_PORT=${REDIS_PORT:-6392}; PG_URL=${PG_URL:-postgres://postgres@127.0.0.1:5432}
PORT=${PORT:-18731}; TOKEN=bench-auth-token-0123456789abcdef
OUT=$ROOT/bench/results; mkdir -p "$OUT"
RUN=${RESULT_FILE:-$OUT/drain-$(date +%Y%m%d-%H%M%S).txt}
WORK=$ROOT/target/bench-drain; mkdir -p "$WORK"; rm -f "$WORK"/moked.db*
log() { echo "[drain-bench $(date +%H:%M:%S)] $*" >&2; }
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

if redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1; then
  echo "port $REDIS_PORT is taken; set REDIS_PORT" >&2; exit 1
fi
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no --daemonize no >/dev/null &
REDIS_PID=$!; PIDS+=("$REDIS_PID")
for _ in $(seq 50); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
R() { redis-cli -p "$REDIS_PORT" "$@"; }

if [ -z "${BIN:-}" ]; then
  log "building the release binaries"
  cargo build --release --locked -q --bin moked-intake --bin moked-worker
  BIN=$ROOT/target/release
fi

# CPU seconds (user + system) a process has used so far.
cpu_s() { awk -v hz="$(getconf CLK_TCK)" '{print ($14 + $15) / hz}' "/proc/$1/stat"; }
# CPU seconds of every postgres server process (the store's own work; 0 without a local server).
pg_cpu_s() {
  local total=0 p
  for p in $(pgrep -x postgres || true); do total=$(awk -v t="$total" -v hz="$(getconf CLK_TCK)" \
    '{print t + ($14 + $15) / hz}' "/proc/$p/stat" 2>/dev/null || echo "$total"); done
  echo "$total"
}
# Busy and total jiffies of the whole machine so far ("busy total").
machine_jiffies() { awk '/^cpu /{print $2 + $3 + $4 + $7 + $8, $2 + $3 + $4 + $5 + $6 + $7 + $8}' /proc/stat; }
# Polls `cond` (a shell command) every 50 ms for up to $2 seconds.
until_true() { local n=$(( $2 * 20 )); for _ in $(seq "$n"); do eval "$1" && return 0; sleep 0.05; done; return 1; }

{
echo "# $(date -u +%FT%TZ) $(nproc) cores, load $(cut -d' ' -f1 /proc/loadavg), redis $(redis-server --version | awk '{print $3}'), commit $(git describe --always --dirty)"
for store in $STORES; do
  prefix=drain-$store
  case $store in
    sqlite) db_url=sqlite://$WORK/moked.db ;;
    postgres) name=moked_drain_$(date +%s); psql "$PG_URL/postgres" -qc "CREATE DATABASE $name" >/dev/null
              db_url=$PG_URL/$name ;;
    *) echo "unknown store $store" >&2; exit 2 ;;
  esac
  export DATABASE_URL=$db_url REDIS_URL=redis://127.0.0.1:$REDIS_PORT/0 QUEUE_PREFIX=$prefix \
    TWILIO_AUTH_TOKEN=$TOKEN TWILIO_ACCOUNT_SID=AC0123456789abcdef0123456789abcdef RUST_LOG=warn
  "$BIN/moked-worker" migrate >/dev/null
  log "$store: posting $JOBS signed incoming calls through moked-intake"
  env PORT=$PORT PUBLIC_HOST=http://127.0.0.1:$PORT RATE_LIMIT_UNVERIFIED=off RATE_LIMIT_CALLS=off \
    RATE_LIMIT_RECORDINGS=off RATE_LIMIT_STATUS=off "$BIN/moked-intake" >"$WORK/intake-$store.log" 2>&1 &
  intake=$!; PIDS+=("$intake")
  until_true "curl -sf http://127.0.0.1:$PORT/api/health >/dev/null" 20
  fill=$(python3 bench/drain/fill.py "http://127.0.0.1:$PORT" "$JOBS" --callers "$CALLERS" --token "$TOKEN")
  kill "$intake"; wait "$intake" 2>/dev/null || true
  queued=$(R LLEN "$prefix:ready")
  [ "$queued" = "$JOBS" ] || { log "$store: $queued jobs queued, expected $JOBS"; exit 1; }
  log "$store: draining with one moked-worker run"
  pg0=$(pg_cpu_s) r0=$(cpu_s "$REDIS_PID") m0=$(machine_jiffies)
  "$BIN/moked-worker" run >"$WORK/worker-$store.log" 2>&1 &
  worker=$!; PIDS+=("$worker")
  if [ "${PROFILE:-0}" = 1 ]; then
    perf record -F 999 -g -p "$worker" -o "$WORK/perf-$store.data" >/dev/null 2>&1 &
    perf_pid=$!
  fi
  until_true "[ \"\$(R ZCARD $prefix:s:done)\" = $JOBS ]" 600 || { log "$store: not drained in 600 s"; exit 1; }
  wcpu=$(cpu_s "$worker") pg1=$(pg_cpu_s) r1=$(cpu_s "$REDIS_PID") m1=$(machine_jiffies)
  # Postgres's CPU only counts for the Postgres store (SQLite runs inside the worker).
  [ "$store" = postgres ] || pg1=$pg0
  [ "${PROFILE:-0}" != 1 ] || { kill -INT "$perf_pid"; wait "$perf_pid" || true; }
  kill -TERM "$worker"; wait "$worker" || true
  first=$(R ZRANGE "$prefix:s:done" 0 0 WITHSCORES | tail -1)
  last=$(R ZRANGE "$prefix:s:done" -1 -1 WITHSCORES | tail -1)
  case $store in
    sqlite) rows() { sqlite3 "$WORK/moked.db" "$1"; } ;;
    postgres) rows() { psql "$db_url" -Atc "$1"; } ;;
  esac
  calls=$(rows "SELECT count(*) FROM call") customers=$(rows "SELECT count(*) FROM customer")
  events=$(rows "SELECT count(*) FROM call_event")
  python3 - "$store" "$JOBS" "$first" "$last" "$wcpu" "$calls" "$customers" "$events" "$fill" \
    "$pg0" "$pg1" "$r0" "$r1" "$m0" "$m1" <<'PY'
import sys
(store, jobs, first, last, wcpu, calls, customers, events, fill, pg0, pg1, r0, r1, m0,
 m1) = sys.argv[1:]
jobs, secs = int(jobs), (float(last) - float(first)) / 1000
(busy0, all0), (busy1, all1) = (map(float, m.split()) for m in (m0, m1))
print(f"RESULT store={store} jobs={jobs} drain_s={secs:.2f} jobs_per_s={(jobs - 1) / secs:.0f} "
      f"worker_cpu_s={float(wcpu):.2f} worker_cpu_us_per_job={float(wcpu) * 1e6 / jobs:.0f} "
      f"db_cpu_us_per_job={(float(pg1) - float(pg0)) * 1e6 / jobs:.0f} "
      f"redis_cpu_us_per_job={(float(r1) - float(r0)) * 1e6 / jobs:.0f} "
      f"machine_busy={(busy1 - busy0) / max(all1 - all0, 1):.2f} "
      f"calls={calls} customers={customers} events={events} "
      f"fill_rps={fill.split('rps=')[1].split()[0]}")
PY
  [ "$store" != postgres ] || psql "$PG_URL/postgres" -qc "DROP DATABASE $name" >/dev/null
  rm -f "$WORK"/moked.db*
done
} | tee "$RUN"
