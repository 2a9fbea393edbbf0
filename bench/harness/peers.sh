# Sourced by bench/harness/run.sh and bench/queue.sh: where the benchmark peers' pinned
# dependencies live, and install_peers, which installs the ones a run needs.
#
#   install_peers "flask-rq express-bullmq axum-hello rq bullmq ..."
#
# Everything goes under $BENCH_PEERS (default <repo>/target/bench-peers), never into bench/:
#   node_modules/   npm ci from bench/peers/express-bullmq/package-lock.json (BullMQ, Express, twilio)
#   venv/           pip install -r bench/peers/flask-rq/requirements.txt (Flask, gunicorn, RQ, twilio)
#   release/axum-hello  cargo build --release --locked of bench/peers/axum-hello (its own workspace)
# wrk and redis-server/redis-benchmark come from Debian (installed with apt-get when missing, as root).
_PEERS_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BENCH_PEERS=${BENCH_PEERS:-$_PEERS_ROOT/target/bench-peers}
PEER_NODE_MODULES=$BENCH_PEERS/node_modules
PEER_VENV=$BENCH_PEERS/venv
AXUM_HELLO=$BENCH_PEERS/release/axum-hello

install_peers() {
  local need=" $1 " src=$_PEERS_ROOT/bench/peers
  mkdir -p "$BENCH_PEERS"
  if ! command -v wrk >/dev/null || ! command -v redis-benchmark >/dev/null; then
    echo "[peers] installing wrk and redis-server with apt-get" >&2
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk redis-server) >/dev/null || return 1
  fi
  case $need in *" express-bullmq "* | *" bullmq "*)
    # Installed = the lock it was installed from (copied after success) is the committed one.
    if ! cmp -s "$src/express-bullmq/package-lock.json" "$BENCH_PEERS/package-lock.json" || [ ! -d "$PEER_NODE_MODULES/bullmq" ]; then
      echo "[peers] npm ci (BullMQ, Express, twilio) into $BENCH_PEERS" >&2
      rm -f "$BENCH_PEERS/package-lock.json"
      cp "$src/express-bullmq/package.json" "$BENCH_PEERS/package.json"
      cp "$src/express-bullmq/package-lock.json" "$BENCH_PEERS/package-lock.tmp"
      (cd "$BENCH_PEERS" && mv package-lock.tmp package-lock.json && npm ci --no-audit --no-fund --loglevel=error >&2) || {
        rm -f "$BENCH_PEERS/package-lock.json"; return 1; }
    fi ;;
  esac
  case $need in *" flask-rq "* | *" rq "* | *" rq-simple "*)
    if ! cmp -s "$src/flask-rq/requirements.txt" "$PEER_VENV/requirements.txt"; then
      echo "[peers] pip install (Flask, gunicorn, RQ, twilio) into $PEER_VENV" >&2
      python3 -m venv "$PEER_VENV" && "$PEER_VENV/bin/pip" install -q --disable-pip-version-check \
        -r "$src/flask-rq/requirements.txt" && cp "$src/flask-rq/requirements.txt" "$PEER_VENV/" || return 1
    fi ;;
  esac
  case $need in *" axum-hello "*)
    echo "[peers] cargo build axum-hello (release; a no-op when up to date)" >&2
    cargo build -q --release --locked --manifest-path "$src/axum-hello/Cargo.toml" --target-dir "$BENCH_PEERS" >&2 || return 1 ;;
  esac
}
