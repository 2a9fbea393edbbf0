#!/usr/bin/env bash
# moto's S3 server for the tests: a Python venv with the pinned moto (requirements.txt beside
# this file) under target/, one server on 127.0.0.1:PORT, stopped by its pid file.
#
#   bash tests/s3/moto.sh start PORT    install if needed, start, wait until it answers
#   bash tests/s3/moto.sh stop PORT
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
HOME_DIR="${CARGO_TARGET_DIR:-$ROOT/target}/s3-moto"
VENV="$HOME_DIR/venv"
die() { echo "moto.sh: $*" >&2; exit 1; }

cmd="${1:-}"; port="${2:-}"
[[ "$port" =~ ^[0-9]+$ ]] || die "usage: moto.sh start|stop PORT"
pidfile="$HOME_DIR/moto-$port.pid"; logfile="$HOME_DIR/moto-$port.log"
mkdir -p "$HOME_DIR"

case "$cmd" in
  start)
    if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then exit 0; fi
    if ! cmp -s "$HERE/requirements.txt" "$HOME_DIR/.installed-requirements.txt"; then
      echo "moto.sh: installing moto into $VENV" >&2
      python3 -m venv "$VENV"
      "$VENV/bin/pip" install -q -r "$HERE/requirements.txt"
      cp "$HERE/requirements.txt" "$HOME_DIR/.installed-requirements.txt"
    fi
    setsid "$VENV/bin/moto_server" -H 127.0.0.1 -p "$port" </dev/null >"$logfile" 2>&1 &
    echo $! >"$pidfile"
    for _ in $(seq 1 150); do
      if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        echo "moto S3 ready on http://127.0.0.1:$port (pid $(cat "$pidfile"))"; exit 0
      fi
      kill -0 "$(cat "$pidfile")" 2>/dev/null || { tail -n 20 "$logfile" >&2; die "moto exited during start-up"; }
      sleep 0.2
    done
    die "moto did not answer on port $port"
    ;;
  stop)
    [ -f "$pidfile" ] || exit 0
    pid=$(cat "$pidfile")
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    rm -f "$pidfile"
    ;;
  *) die "usage: moto.sh start|stop PORT" ;;
esac
