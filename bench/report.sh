#!/usr/bin/env bash
# The benchmark report in one command: runs bench/queue.sh (moked's queue against BullMQ,
# a due backlog, idle pickup), bench/intake.sh (moked-intake against bare axum,
# Express+BullMQ and Flask+RQ in the harness of bench/harness/) and bench/floor.sh (the least possible
# intake on the same stack beside bare axum) on this machine, keeps the runs' raw results in
# one folder, and writes docs/BENCHMARKS.md and docs/bench.png from them with bench/report.py
# (matplotlib in a venv inside the clone, target/bench-venv).
#
#   bench/report.sh                      full run: about 25 minutes on 2 cores with its builds (queue ~5 min,
#                                        drains ~7 min, intake ~7 min, floor ~6 min); writes docs/BENCHMARKS.md,
#                                        docs/bench.png
#   QUICK=1 bench/report.sh              smoke run, about 3 minutes (2,000-job drains, 5 s loads,
#                                        one repetition); the report goes into the run's folder,
#                                        not docs/ (its numbers are not for comparison)
#   bench/report.sh --from DIR [PATH...] no measuring, seconds: the report again from kept
#                                        results — a bench/results/report-* folder, or a
#                                        bench/results/queue-*.txt plus a harness run folder
#                                        (bench/results/intake-*/, with results.txt)
#   ... --out DIR                        write BENCHMARKS.md and bench.png into DIR instead
#
# Raw results: bench/results/report-<UTC time>/ (not committed): machine.txt (machine,
# versions, load average), queue.txt (bench/queue.sh's file), drain.txt (bench/drain.sh: real
# call.started jobs into SQLite and Postgres; DRAIN_STORES="" skips it), intake/ (the harness's
# run folder: results.txt, table.md, every wrk output and peer log), floor-push/ and
# floor-verify/ (bench/floor.sh's harness passes; FLOOR_MODES="" skips them). The benchmarks'
# knobs pass through the environment (REPS, JOBS, BACKLOG for the queue; PEERS, DURATION, …
# for the harness; REDIS_PORT for both). Everything they start they stop by PID.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
VENV=$ROOT/target/bench-venv
MATPLOTLIB=matplotlib==3.11.2
log() { echo "[report $(date +%H:%M:%S)] $*" >&2; }

FROM=() OUT_DIR=""
while [ $# -gt 0 ]; do
  case $1 in
    --from) shift; while [ $# -gt 0 ] && [ "${1#--}" = "$1" ]; do FROM+=("$1"); shift; done
            [ ${#FROM[@]} -gt 0 ] || { echo "--from needs a folder or file" >&2; exit 2; } ;;
    --out) [ $# -ge 2 ] || { echo "--out needs a folder" >&2; exit 2; }; OUT_DIR=$2; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument $1 (see bench/report.sh --help)" >&2; exit 2 ;;
  esac
done

venv() {
  if ! "$VENV/bin/python" -c "import matplotlib, sys; sys.exit(matplotlib.__version__ != '${MATPLOTLIB#*==}')" 2>/dev/null; then
    log "installing $MATPLOTLIB into $VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check "$MATPLOTLIB"
  fi
}

if [ ${#FROM[@]} -gt 0 ]; then
  venv
  "$VENV/bin/python" bench/report.py --out-dir "${OUT_DIR:-$ROOT/docs}" "${FROM[@]}"
  exit 0
fi

RUN=$ROOT/bench/results/report-$(date -u +%Y%m%d-%H%M%S)
mkdir -p "$RUN"
if [ "${QUICK:-0}" = 1 ]; then
  export REPS=${REPS:-1} JOBS=${JOBS:-2000} BACKLOG=${BACKLOG:-5000} DRAIN_JOBS=${DRAIN_JOBS:-2000}
fi
venv   # before measuring, so a failed install costs seconds, not a run

{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "os: $(. /etc/os-release && echo "$PRETTY_NAME")"
  echo "kernel: $(uname -r)"
  echo "cpu: $(lscpu | sed -n 's/^Model name: *//p' | head -1)"
  echo "cores: $(nproc)"
  echo "virtualization: $(lscpu | sed -n 's/^Hypervisor vendor: *//p' | head -1)"
  echo "memory: $(awk '/^MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo)"
  echo "rustc: $(rustc --version | cut -d' ' -f1-2)"
  echo "redis: $(redis-server --version | sed -n 's/.* v=\([^ ]*\).*/\1/p')"
  echo "node: $(node --version 2>/dev/null || true)"
  echo "python: $(python3 --version 2>&1)"
  echo "commit: $(git describe --always --dirty 2>/dev/null || true)"
  echo "quick: ${QUICK:-0}"
  echo "load start: $(cut -d' ' -f1-3 /proc/loadavg)"
} > "$RUN/machine.txt"

log "queue benchmark (bench/queue.sh) -> $RUN/queue.txt"
MARK=$RUN/.queue-start; touch "$MARK"
bench/queue.sh >&2
QFILE=$(find bench/results -maxdepth 1 -name 'queue-*.txt' -newer "$MARK" | sort | tail -1)
[ -n "$QFILE" ] || { log "bench/queue.sh left no result file"; exit 1; }
mv "$QFILE" "$RUN/queue.txt"; rm -f "$MARK"

if [ -n "${DRAIN_STORES-sqlite postgres}" ]; then
  log "real-job drains (bench/drain.sh) -> $RUN/drain.txt"
  RESULT_FILE=$RUN/drain.txt STORES=${DRAIN_STORES-sqlite postgres} bench/drain.sh >&2
fi

log "intake benchmark (bench/intake.sh) -> $RUN/intake"
OUT=$RUN/intake bench/intake.sh >&2
[ -s "$RUN/intake/results.txt" ] || { log "bench/intake.sh left no results.txt"; exit 1; }

if [ -n "${FLOOR_MODES-push verify}" ]; then
  log "intake floor (bench/floor.sh) -> $RUN/floor-*"
  OUT=$RUN bench/floor.sh >&2
fi

. bench/harness/peers.sh
{
  echo "load end: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "wrk: $(wrk --version 2>&1 | head -1 | cut -d' ' -f1-2)"
  echo "bullmq: $(node -p "require('$PEER_NODE_MODULES/bullmq/package.json').version" 2>/dev/null || true)"
} >> "$RUN/machine.txt"

if [ -z "$OUT_DIR" ]; then
  if [ "${QUICK:-0}" = 1 ]; then OUT_DIR=$RUN; else OUT_DIR=$ROOT/docs; fi
fi
"$VENV/bin/python" bench/report.py --out-dir "$OUT_DIR" "$RUN"
log "raw results in $RUN; rebuild the report from them with: bench/report.sh --from ${RUN#"$ROOT"/}"
