#!/usr/bin/env bash
# The intake benchmark harness: on this machine and in one run, loads each intake peer with the
# same signed Twilio webhooks and writes one result line per run to $OUT/results.txt (read by
# bench/report.py). Used by bench/intake.sh and bench/floor.sh; it can run alone.
#
# Steps: install the peers' pinned dependencies (bench/harness/peers.sh) -> start a Redis of its
# own on 127.0.0.1:$REDIS_PORT (no persistence, for every peer alike) -> redis-benchmark LPUSH,
# RPUSH, LPOP at -P 1 and -P 16 (the Redis ceiling) -> for each repetition, each peer in turn
# (interleaved, so background load falls on all alike): start it, check its contract
# (check_target.py), warm it up, load it with wrk + twilio.lua, read its CPU, Redis's CPU and its
# queue length before and after, stop it -> optional worker drains -> results.txt.
# Everything listens on and targets 127.0.0.1; everything started is stopped by PID.
#
# Knobs (environment):
#   PEERS="flask-rq express-bullmq axum-hello"  intake peers; "ours" is added when OURS_URL is set
#   WORKERS="rq rq-simple bullmq"                worker drains; "ours" is added when OURS_DRAIN is set
#   CONNS=64 DURATION=20 REPS=3 WARMUP=3 THREADS=2   wrk per run
#   WORKER_JOBS=20000 WORKER_MAX_S=15            jobs per drain, time cap per drain
#   EXPRESS_CLUSTER=1   node processes of express-bullmq
#   REDIS_PORT=6391  REDIS_BENCH=1 (0 skips redis-benchmark)  TOKEN=bench-auth-token-0123456789abcdef
#   QUICK=1          smoke run: REPS=1 DURATION=5 WARMUP=1 WORKER_JOBS=2000 WORKER_MAX_S=5
#   OUT=DIR          run folder (default bench/results/harness-<time>)
# The intake under test ("ours"):
#   OURS_URL=http://127.0.0.1:8080  its base URL
#   OURS_START='cmd'   runs it in the foreground; started before and stopped after each run
#   OURS_PID=N         when started by you: the process charged as peer CPU
#   OURS_QUEUE_LEN='cmd'  prints how many jobs it has queued (checked against the 2xx count)
#   OURS_ENQ_ALL=1     it queues a job for incoming_call too (the peers answer TwiML only)
#   OURS_SIGN_BASE=URL the public base URL it checks signatures against, if not OURS_URL
#   OURS_DRAIN='cmd'   its worker side: prints "RESULT jobs= done= jobs_per_s= ..." like drain.js
set -u
HARNESS=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HARNESS/../.." && pwd)
PEERS_DIR=$ROOT/bench/peers
if [ "${QUICK:-0}" = 1 ]; then
  REPS=${REPS:-1} DURATION=${DURATION:-5} WARMUP=${WARMUP:-1} WORKER_JOBS=${WORKER_JOBS:-2000} WORKER_MAX_S=${WORKER_MAX_S:-5}
fi
CONNS=${CONNS:-64} DURATION=${DURATION:-20} REPS=${REPS:-3} WARMUP=${WARMUP:-3} THREADS=${THREADS:-2}
WORKER_JOBS=${WORKER_JOBS:-20000} WORKER_MAX_S=${WORKER_MAX_S:-15}
EXPRESS_CLUSTER=${EXPRESS_CLUSTER:-1} REDIS_PORT=${REDIS_PORT:-6391} REDIS_BENCH=${REDIS_BENCH:-1}
TOKEN=${TOKEN:-bench-auth-token-0123456789abcdef}
PEERS=${PEERS-"flask-rq express-bullmq axum-hello"}
WORKERS=${WORKERS-"rq rq-simple bullmq"}
[ -z "${OURS_URL:-}" ] || case " $PEERS " in *" ours "*) ;; *) PEERS="$PEERS ours" ;; esac
[ -z "${OURS_DRAIN:-}" ] || case " $WORKERS " in *" ours "*) ;; *) WORKERS="$WORKERS ours" ;; esac
OUT=${OUT:-$ROOT/bench/results/harness-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"
RESULTS=$OUT/results.txt
REDIS_URL=redis://127.0.0.1:$REDIS_PORT/0
RCLI=(redis-cli -h 127.0.0.1 -p "$REDIS_PORT")
. "$HARNESS/peers.sh"
T0=$(date +%s)

log() { echo "[harness $(date +%H:%M:%S)] $*" >&2; }
load1() { cut -d' ' -f1 /proc/loadavg; }
cpu() { python3 "$HARNESS/cpu.py" "$@"; }
listening() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }
wait_listening() { # host port seconds
  local i
  for i in $(seq $(($3 * 10))); do listening "$1" "$2" && return 0; sleep 0.1; done
  return 1
}

# Stops a process and its descendants: TERM, up to 10 s, then KILL.
tree() { local c; for c in $(ps -o pid= --ppid "$1" 2>/dev/null); do tree "$c"; echo "$c"; done; }
stop() {
  local pid=${1:-} all p
  [ -n "$pid" ] || return 0
  all="$(tree "$pid") $pid"
  for p in $all; do kill -TERM "$p" 2>/dev/null; done
  for _ in $(seq 100); do
    local alive=""
    for p in $all; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ -n "$alive" ] || break
    sleep 0.1
  done
  for p in $all; do kill -KILL "$p" 2>/dev/null; done
  wait "$pid" 2>/dev/null
  return 0
}
PEER_PID="" REDIS_PID=""
cleanup() { stop "$PEER_PID"; stop "$REDIS_PID"; PEER_PID="" REDIS_PID=""; }
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

start_redis() {
  if listening 127.0.0.1 "$REDIS_PORT"; then log "port $REDIS_PORT is taken: set REDIS_PORT"; exit 1; fi
  mkdir -p "$OUT/redis"
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$OUT/redis" \
    --logfile "$OUT/redis/redis.log" &
  REDIS_PID=$!
  wait_listening 127.0.0.1 "$REDIS_PORT" 10 || { log "redis-server did not start"; exit 1; }
}

redis_ceiling() {
  local rep pipeline requests
  for rep in $(seq "$REPS"); do
    for pipeline in 1 16; do
      requests=$((pipeline == 1 ? 100000 : 1000000))
      "${RCLI[@]}" flushall >/dev/null
      log "redis-benchmark -P $pipeline, rep $rep"
      redis-benchmark -h 127.0.0.1 -p "$REDIS_PORT" -c "$CONNS" -n "$requests" -d 128 -P "$pipeline" \
        -t lpush,rpush,lpop --csv 2>/dev/null | tr -d '"' | tail -n +2 |
        while IFS=, read -r test rps _avg _min p50 _p95 p99 _max; do
          echo "phase=redis test=$test pipeline=$pipeline rep=$rep rps=$rps p50_ms=$p50 p99_ms=$p99 load1=$(load1)"
        done >>"$RESULTS"
    done
  done
}

# start_peer NAME: sets PEER_PID, PEER_URL, PEER_QLEN (a command printing its queue length),
# PEER_SIGN_BASE.
start_peer() {
  PEER_SIGN_BASE="" PEER_QLEN="" PEER_PID=""
  case $1 in
    flask-rq)
      PEER_URL=http://127.0.0.1:8001 PEER_QLEN="${RCLI[*]} llen rq:queue:intake"
      (cd "$PEERS_DIR/flask-rq" && TWILIO_AUTH_TOKEN=$TOKEN REDIS_URL=$REDIS_URL \
        exec "$PEER_VENV/bin/gunicorn" -w 2 -k sync -b 127.0.0.1:8001 app:app) >>"$OUT/flask-rq.log" 2>&1 &
      PEER_PID=$! ;;
    express-bullmq)
      PEER_URL=http://127.0.0.1:8002 PEER_QLEN="${RCLI[*]} llen bull:intake:wait"
      (cd "$PEERS_DIR/express-bullmq" && NODE_PATH=$PEER_NODE_MODULES PORT=8002 CLUSTER=$EXPRESS_CLUSTER \
        TWILIO_AUTH_TOKEN=$TOKEN REDIS_HOST=127.0.0.1 REDIS_PORT=$REDIS_PORT exec node server.js) \
        >>"$OUT/express-bullmq.log" 2>&1 &
      PEER_PID=$! ;;
    axum-hello)
      PEER_URL=http://127.0.0.1:8003
      "$AXUM_HELLO" 127.0.0.1:8003 >>"$OUT/axum-hello.log" 2>&1 &
      PEER_PID=$! ;;
    ours)
      PEER_URL=${OURS_URL%/} PEER_QLEN=${OURS_QUEUE_LEN:-} PEER_SIGN_BASE=${OURS_SIGN_BASE:-}
      if [ -n "${OURS_START:-}" ]; then
        bash -c "$OURS_START" >>"$OUT/ours.log" 2>&1 &
        PEER_PID=$!
      fi ;;
    *) log "unknown peer $1"; return 1 ;;
  esac
  local hostport=${PEER_URL#*://}
  hostport=${hostport%%/*}
  wait_listening "${hostport%:*}" "${hostport##*:}" 30 || { log "$1 did not listen on $PEER_URL"; return 1; }
}

load() { # out-file seconds: wrk on the current peer
  local sign=()
  [ -z "$PEER_SIGN_BASE" ] || sign=("sign_base=$PEER_SIGN_BASE")
  /usr/bin/time -f "WRKCPU %U %S" wrk -t"$THREADS" -c"$CONNS" -d"$2s" --timeout 10s -s "$HARNESS/twilio.lua" \
    "$PEER_URL" -- "token=$TOKEN" "${sign[@]}" >"$1" 2>&1
}

intake_run() { # peer rep
  local peer=$1 rep=$2 charged q0="" q1="" c0="" c1="" r0 r1 l1 out res
  "${RCLI[@]}" flushall >/dev/null
  if ! start_peer "$peer"; then stop "$PEER_PID"; PEER_PID=""; return 1; fi
  # The ceiling answers 200 to anything, so its check fails by design.
  if ! python3 "$HARNESS/check_target.py" "$PEER_URL" --token "$TOKEN" ${PEER_SIGN_BASE:+--sign-base "$PEER_SIGN_BASE"} \
    >"$OUT/check-$peer-$rep.txt" 2>&1 && [ "$peer" != axum-hello ]; then
    log "CONTRACT CHECK FAILED for $peer: $OUT/check-$peer-$rep.txt"
  fi
  load "$OUT/warmup-$peer-$rep.txt" "$WARMUP"
  charged=$PEER_PID
  [ "$peer" != ours ] || [ -n "$charged" ] || charged=${OURS_PID:-}
  [ -z "$PEER_QLEN" ] || q0=$(eval "$PEER_QLEN" 2>/dev/null)
  [ -z "$charged" ] || c0=$(cpu "$charged")
  r0=$(cpu "$REDIS_PID") l1=$(load1)
  log "$peer rep $rep: wrk -t$THREADS -c$CONNS -d${DURATION}s (load $l1)"
  out=$OUT/wrk-$peer-$rep.txt
  load "$out" "$DURATION"
  [ -z "$charged" ] || c1=$(cpu "$charged")
  r1=$(cpu "$REDIS_PID")
  # Jobs still being written when wrk stopped land within a moment; the count waits for them.
  sleep 0.5
  [ -z "$PEER_QLEN" ] || q1=$(eval "$PEER_QLEN" 2>/dev/null)
  stop "$PEER_PID"; PEER_PID=""
  res=$(sed -n 's/^RESULT //p' "$out")
  [ -n "$res" ] || { log "no RESULT from wrk for $peer: $out"; return 1; }
  local kv requests=0 status=0 sockerr=0
  for kv in $res; do
    case $kv in
      requests=*) requests=${kv#*=} ;;
      err_status=*) status=${kv#*=} ;;
      err_connect=* | err_read=* | err_write=* | err_timeout=*) sockerr=$((sockerr + ${kv#*=})) ;;
    esac
  done
  local enq=- expected=-
  if [ -n "$q0" ] && [ -n "$q1" ]; then
    enq=$((q1 - q0))
    # The peers queue call_status and whatsapp_status (two thirds of the mix); ours maybe all.
    expected=$(((requests - status) * 2 / 3))
    [ "$peer" != ours ] || [ "${OURS_ENQ_ALL:-0}" != 1 ] || expected=$((requests - status))
  fi
  local peer_s=-
  [ -z "$c0" ] || peer_s=$(awk -v a="$c0" -v b="$c1" 'BEGIN { printf "%.2f", b - a }')
  echo "phase=intake peer=$peer rep=$rep $res cpu_peer_s=$peer_s" \
    "cpu_redis_s=$(awk -v a="$r0" -v b="$r1" 'BEGIN { printf "%.2f", b - a }')" \
    "cpu_wrk_s=$(awk '/^WRKCPU/ { print $2 + $3 }' "$out") non2xx=$status sockerr=$sockerr" \
    "enq=$enq enq_expected=$expected load1=$l1" >>"$RESULTS"
}

worker_run() { # name rep
  local name=$1 rep=$2 r0 r1 l1 res
  "${RCLI[@]}" flushall >/dev/null
  l1=$(load1) r0=$(cpu "$REDIS_PID")
  log "worker drain $name rep $rep (load $l1)"
  case $name in
    rq) res=$(cd "$PEERS_DIR/flask-rq" && REDIS_URL=$REDIS_URL "$PEER_VENV/bin/python" drain.py "$WORKER_JOBS" 2 rq.worker.Worker "$WORKER_MAX_S") ;;
    rq-simple) res=$(cd "$PEERS_DIR/flask-rq" && REDIS_URL=$REDIS_URL "$PEER_VENV/bin/python" drain.py "$WORKER_JOBS" 2 rq.worker.SimpleWorker "$WORKER_MAX_S") ;;
    bullmq) res=$(cd "$PEERS_DIR/express-bullmq" && NODE_PATH=$PEER_NODE_MODULES REDIS_HOST=127.0.0.1 REDIS_PORT=$REDIS_PORT \
      timeout $((WORKER_MAX_S * 3 + 30)) node drain.js "$WORKER_JOBS" 50) ;;
    ours) res=$(REDIS_URL=$REDIS_URL WORKER_JOBS=$WORKER_JOBS WORKER_MAX_S=$WORKER_MAX_S bash -c "$OURS_DRAIN") ;;
    *) log "unknown worker $name"; return 1 ;;
  esac
  r1=$(cpu "$REDIS_PID")
  res=$(sed -n 's/^RESULT //p' <<<"$res" | tail -1)
  [ -n "$res" ] || { log "no RESULT from the $name drain"; return 1; }
  # drain.js counts completed=; the report reads done=.
  case " $res " in *" done="*) ;; *) res="$res done=$(sed -n 's/.*completed=\([0-9]*\).*/\1/p' <<<"$res")" ;; esac
  echo "phase=worker peer=$name rep=$rep $res cpu_redis_s=$(awk -v a="$r0" -v b="$r1" 'BEGIN { printf "%.2f", b - a }') load1=$l1" >>"$RESULTS"
}

install_peers "$PEERS $WORKERS" || exit 1
{
  echo "# run $(date -u +%Y-%m-%dT%H:%M:%SZ) host=$(hostname)"
  echo "# cpu: $(lscpu | sed -n 's/^Model name: *//p') x $(nproc)"
  echo "# load at start: $(cat /proc/loadavg)"
  echo "# load: CONNS=$CONNS DURATION=$DURATION REPS=$REPS WARMUP=$WARMUP THREADS=$THREADS PEERS=\"$PEERS\" WORKERS=\"$WORKERS\" WORKER_JOBS=$WORKER_JOBS WORKER_MAX_S=$WORKER_MAX_S EXPRESS_CLUSTER=$EXPRESS_CLUSTER"
  echo "# versions: $(redis-server --version | cut -d' ' -f1-3) | $(wrk --version 2>&1 | head -1 | cut -d' ' -f1-2) | node $(node --version 2>/dev/null) | $("$PEER_VENV/bin/python" --version 2>&1 || python3 --version 2>&1) | $(rustc --version 2>/dev/null)"
} >"$RESULTS"
start_redis
[ "$REDIS_BENCH" != 1 ] || redis_ceiling
for rep in $(seq "$REPS"); do
  for peer in $PEERS; do intake_run "$peer" "$rep"; done
done
for rep in $(seq "$REPS"); do
  for w in $WORKERS; do worker_run "$w" "$rep"; done
done
echo "# load at end: $(cat /proc/loadavg)" >>"$RESULTS"
cleanup
log "done in $(($(date +%s) - T0)) s: $RESULTS"
