#!/usr/bin/env bash
# Shared by the benchmark scripts (sourced) and `make test-large` (run): where benchmark files go, the
# lock that keeps heavy steps apart, and the TinyLlama-shaped models made once.
#
#   BENCH_DIR         benchmark outputs and made models       (default out/bench, inside the repository)
#   MODELS            made models                              (default $BENCH_DIR/models)
#   LOCK              held by every heavy step; LOCK= for none (default $BENCH_DIR/heavy.lock)
#   MEDASSIST_SHARED  the shared assets folder                 (default ../shared beside the repository)
#   TINYLLAMA_CONFIG  TinyLlama's config.json + tokenizer dir   (default $MEDASSIST_SHARED/models/tinyllama-1.1b-chat-v1.0)
#   BIN               the medassist binary                     (default bin/medassist, built when missing)
#
#   bench/lib.sh random_tinyllama DIR   # make the random TinyLlama-shaped HF model in DIR unless it is there
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH_DIR=${BENCH_DIR:-$root/out/bench}
MODELS=${MODELS:-$BENCH_DIR/models}
LOCK=${LOCK-$BENCH_DIR/heavy.lock}
MEDASSIST_SHARED=${MEDASSIST_SHARED:-$root/../shared}
TINYLLAMA_CONFIG=${TINYLLAMA_CONFIG:-$MEDASSIST_SHARED/models/tinyllama-1.1b-chat-v1.0}
BIN=${BIN:-$root/bin/medassist}
mkdir -p "$BENCH_DIR" "$MODELS"

export CGO_ENABLED=1 GOEXPERIMENT=${GOEXPERIMENT:-simd}
export CGO_LDFLAGS=${CGO_LDFLAGS:--L$root/.cache/native/lib}
export MEDASSIST_ORT_LIB=${MEDASSIST_ORT_LIB:-$root/.cache/native/lib/libonnxruntime.so}

blog() { printf '%s: %s\n' "$(basename "$0")" "$*" >&2; }

# heavy runs a command while holding $LOCK (when set), so that heavy steps do not overlap.
heavy() { if [ -n "$LOCK" ]; then flock "$LOCK" "$@"; else "$@"; fi; }

# medassist_bin builds $BIN when it is missing.
medassist_bin() {
  if [ ! -x "$BIN" ]; then
    blog "building $BIN"
    (cd "$root" && go build -o "$BIN" ./cmd/medassist)
  fi
}

# random_tinyllama DIR: a random model of TinyLlama-1.1B's shapes (float32, 4.4 GB) in DIR, made once.
random_tinyllama() {
  local dir=$1
  [ -s "$dir/config.json" ] && return 0
  [ -s "$TINYLLAMA_CONFIG/config.json" ] || { blog "no TinyLlama config at $TINYLLAMA_CONFIG (set MEDASSIST_SHARED or TINYLLAMA_CONFIG)"; return 1; }
  medassist_bin
  blog "creating $dir (random weights, TinyLlama shapes)"
  heavy "$BIN" init --from-config "$TINYLLAMA_CONFIG" --random --seed 1 --out "$dir"
}

# export_onnx SRC DIR [flags]: SRC exported to ONNX in DIR, made once.
export_onnx() {
  local src=$1 dir=$2
  shift 2
  [ -s "$dir/model.onnx" ] && return 0
  medassist_bin
  heavy "$BIN" export --model "$src" --out "$dir" --progress=false "$@"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -euo pipefail
  "$@"
fi
