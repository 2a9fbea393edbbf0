#!/usr/bin/env bash
# Prism (pinned in tests/twilio/prism/package-lock.json) serving Twilio's REST API as a mock:
# the official v2010 OpenAPI document of tests/twilio/spec/ plus make_mock_spec.py's additions.
#
#   tests/twilio/prism.sh install      npm ci of the pinned Prism (once; again when the lock changes)
#   tests/twilio/prism.sh start PORT   writes the mock spec, starts Prism on 127.0.0.1:PORT and waits
#                                      until it answers
#   tests/twilio/prism.sh stop PORT    stops the instance started for PORT (by its pid file)
#   tests/twilio/prism.sh status PORT  exit 1 unless it runs and answers
#
# Everything it writes (node_modules, the mock spec, prism-PORT.pid, prism-PORT.log) goes to
# ${CARGO_TARGET_DIR:-<repo>/target}/twilio-prism. Needs Node.js 18+ with npm, and python3.
# PRISM_START_TIMEOUT (seconds, default 60) bounds the start.
set -euo pipefail

KIT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$KIT/../.." && pwd)"
HOME_DIR="${CARGO_TARGET_DIR:-$REPO/target}/twilio-prism"
PRISM="$HOME_DIR/node_modules/.bin/prism"
SPEC="$HOME_DIR/twilio_api_v2010.mock.json"

die() { echo "prism.sh: $*" >&2; exit 1; }

# Installed from the current lock: the lock is copied beside node_modules after a good install.
installed() { [ -x "$PRISM" ] && cmp -s "$KIT/prism/package-lock.json" "$HOME_DIR/installed-lock.json"; }

install() {
  installed && return 0
  command -v npm >/dev/null || die "npm is missing (Node.js 18+ runs Prism)"
  mkdir -p "$HOME_DIR"
  ( # Parallel starts take turns: one installs, the others find it installed.
    flock 9
    installed && exit 0
    cp "$KIT/prism/package.json" "$KIT/prism/package-lock.json" "$HOME_DIR/"
    echo "prism.sh: installing Prism into $HOME_DIR" >&2
    (cd "$HOME_DIR" && npm ci --no-audit --no-fund --loglevel=error >&2)
    cp "$KIT/prism/package-lock.json" "$HOME_DIR/installed-lock.json"
  ) 9>"$HOME_DIR/install.lock"
  installed || die "the install left no $PRISM"
}

# The mock spec, rebuilt when the official document or the script is newer than it.
write_spec() {
  if [ "$SPEC" -nt "$KIT/spec/twilio_api_v2010.json" ] && [ "$SPEC" -nt "$KIT/make_mock_spec.py" ]; then return; fi
  python3 "$KIT/make_mock_spec.py" --out "$SPEC"
}

# Is the pid file's process alive and a Prism (not a reused pid)?
running() {
  local pid
  [ -f "$1" ] && pid=$(cat "$1") && kill -0 "$pid" 2>/dev/null && grep -qa prism "/proc/$pid/cmdline" 2>/dev/null
}

# Does anything answer HTTP on the port?
answers() { curl -s -o /dev/null -m 2 "http://127.0.0.1:$1/"; }

cmd=${1:-}
port=${2:-}
case "$cmd" in
  install) install; exit 0 ;;
  start | stop | status) [[ "$port" =~ ^[0-9]+$ ]] || die "usage: prism.sh $cmd PORT" ;;
  *) die "usage: prism.sh install | start PORT | stop PORT | status PORT" ;;
esac
pidfile="$HOME_DIR/prism-$port.pid"
logfile="$HOME_DIR/prism-$port.log"

case "$cmd" in
  start)
    if running "$pidfile"; then echo "prism already runs on 127.0.0.1:$port"; exit 0; fi
    ! answers "$port" || die "port $port is taken by another process"
    install
    write_spec
    # Its own session, so stop ends Prism and its children and nothing else. No --errors: the
    # official list examples break their own `format: uri`, and Prism would turn them into 500s.
    setsid "$PRISM" mock -h 127.0.0.1 -p "$port" "$SPEC" </dev/null >"$logfile" 2>&1 &
    echo $! >"$pidfile"
    deadline=$(($(date +%s) + ${PRISM_START_TIMEOUT:-60}))
    until answers "$port"; do
      if ! running "$pidfile"; then tail -n 20 "$logfile" >&2; rm -f "$pidfile"; die "Prism exited while starting"; fi
      if [ "$(date +%s)" -ge "$deadline" ]; then "$0" stop "$port" >/dev/null; tail -n 20 "$logfile" >&2; die "Prism did not answer within ${PRISM_START_TIMEOUT:-60}s"; fi
      sleep 0.2
    done
    echo "prism mocks Twilio on http://127.0.0.1:$port (log $logfile)"
    ;;
  stop)
    if ! running "$pidfile"; then rm -f "$pidfile"; exit 0; fi
    pid=$(cat "$pidfile")
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid"
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid"; fi
    rm -f "$pidfile"
    ;;
  status)
    running "$pidfile" || { echo "prism does not run on port $port"; exit 1; }
    # A malformed percent-encoding (%%%) kills Prism's listener and leaves its process alive.
    answers "$port" || { echo "prism (pid $(cat "$pidfile")) does not answer on port $port"; exit 1; }
    echo "prism runs on 127.0.0.1:$port"
    ;;
esac
