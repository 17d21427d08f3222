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
#   bench/lib.sh random_tinyllama DIR [LAYERS]  # make the random TinyLlama-shaped HF model in DIR unless it is there
#   bench/lib.sh export_onnx SRC DIR [FLAGS]    # export SRC to DIR unless it is there
#   bench/lib.sh llama_cpp              # build llama.cpp's llama-bench and llama-quantize once (see below)
#   bench/lib.sh gguf_of SRC DIR        # SRC (an HF model dir or a .gguf) as DIR/f32.gguf, q8_0.gguf, q4_0.gguf, made once
#
#   LLAMA_CPP_VERSION llama-cpp-python sdist whose vendored llama.cpp is the peer (default 0.3.36)
#   LLAMA_CPP_DIR     where it is unpacked and built           (default .cache/llama.cpp-$LLAMA_CPP_VERSION)
#   LLAMA_CPP_SDIST   an already downloaded sdist .tar.gz      (default: pip download into $LLAMA_CPP_DIR)
#   PYTHON            python with torch, transformers, numpy, sentencepiece for convert_hf_to_gguf.py
#                     (default python3; its gguf-py is the vendored one)
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

# random_tinyllama DIR [LAYERS]: a random model of TinyLlama-1.1B's shapes (float32, 4.4 GB) in DIR,
# made once; with LAYERS, the same shapes cut to that many layers (4: 1.2 GB), for quick A/B runs.
random_tinyllama() {
  local dir=$1 layers=${2:-} from=$TINYLLAMA_CONFIG
  [ -s "$dir/config.json" ] && return 0
  [ -s "$TINYLLAMA_CONFIG/config.json" ] || { blog "no TinyLlama config at $TINYLLAMA_CONFIG (set MEDASSIST_SHARED or TINYLLAMA_CONFIG)"; return 1; }
  medassist_bin
  if [ -n "$layers" ]; then
    from=$dir-config
    mkdir -p "$from"
    cp "$TINYLLAMA_CONFIG"/* "$from"/
    sed -i "s/\"num_hidden_layers\": *[0-9]*/\"num_hidden_layers\": $layers/" "$from/config.json"
  fi
  blog "creating $dir (random weights, TinyLlama shapes${layers:+, $layers layers})"
  heavy "$BIN" init --from-config "$from" --random --seed 1 --out "$dir"
}

# export_onnx SRC DIR [flags]: SRC exported to ONNX in DIR, made once.
export_onnx() {
  local src=$1 dir=$2
  shift 2
  [ -s "$dir/model.onnx" ] && return 0
  medassist_bin
  heavy "$BIN" export --model "$src" --out "$dir" --progress=false "$@"
}

LLAMA_CPP_VERSION=${LLAMA_CPP_VERSION:-0.3.36}
LLAMA_CPP_DIR=${LLAMA_CPP_DIR:-$root/.cache/llama.cpp-$LLAMA_CPP_VERSION}
LLAMA_CPP_SRC=$LLAMA_CPP_DIR/llama_cpp_python-$LLAMA_CPP_VERSION/vendor/llama.cpp
LLAMA_CPP_BIN=$LLAMA_CPP_SRC/build/bin
PYTHON=${PYTHON:-python3}

# llama_cpp: llama.cpp (vendored in the PyPI sdist of llama-cpp-python) built once with GGML_NATIVE into
# $LLAMA_CPP_DIR: llama-bench and llama-quantize (about 20 minutes on 2 idle cores; runs under nice).
llama_cpp() {
  [ -x "$LLAMA_CPP_BIN/llama-bench" ] && [ -x "$LLAMA_CPP_BIN/llama-quantize" ] && return 0
  mkdir -p "$LLAMA_CPP_DIR"
  if [ ! -f "$LLAMA_CPP_SRC/CMakeLists.txt" ]; then
    local sdist=${LLAMA_CPP_SDIST:-$LLAMA_CPP_DIR/llama_cpp_python-$LLAMA_CPP_VERSION.tar.gz}
    if [ ! -s "$sdist" ]; then
      blog "downloading the llama-cpp-python $LLAMA_CPP_VERSION sdist (PyPI, 76 MB)"
      "$PYTHON" -m pip download "llama-cpp-python==$LLAMA_CPP_VERSION" --no-deps --no-binary :all: -d "$LLAMA_CPP_DIR"
    fi
    tar xzf "$sdist" -C "$LLAMA_CPP_DIR"
  fi
  blog "building llama.cpp in $LLAMA_CPP_SRC/build (llama-bench, llama-quantize)"
  (cd "$LLAMA_CPP_SRC" &&
    nice -n 15 cmake -B build -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON -DLLAMA_CURL=OFF \
      -DLLAMA_BUILD_TESTS=OFF -DBUILD_SHARED_LIBS=OFF >build.log &&
    nice -n 15 cmake --build build --target llama-bench llama-quantize -j "$(nproc)" >>build.log)
}

# gguf_of SRC DIR: SRC in llama.cpp's formats, made once with llama.cpp's own tools: DIR/f32.gguf, then
# DIR/q8_0.gguf and DIR/q4_0.gguf by llama-quantize from it. SRC is an HF model dir, converted by
# convert_hf_to_gguf.py (with the vendored gguf-py; $PYTHON needs torch, transformers, numpy and
# sentencepiece), or a .gguf file, dequantized to F32 by llama-quantize --allow-requantize (exactly,
# as `medassist import` dequantizes it).
gguf_of() {
  local src=$1 dir=$2 t
  mkdir -p "$dir"
  if [ ! -s "$dir/f32.gguf" ]; then
    llama_cpp
    if [ -f "$src" ]; then
      blog "dequantizing $src to $dir/f32.gguf (llama-quantize)"
      heavy "$LLAMA_CPP_BIN/llama-quantize" --allow-requantize "$src" "$dir/f32.gguf.tmp" F32 >"$dir/convert.log" 2>&1
    else
      blog "converting $src to $dir/f32.gguf (convert_hf_to_gguf.py)"
      PYTHONPATH=$LLAMA_CPP_SRC/gguf-py${PYTHONPATH:+:$PYTHONPATH} heavy "$PYTHON" "$LLAMA_CPP_SRC/convert_hf_to_gguf.py" \
        "$src" --outtype f32 --outfile "$dir/f32.gguf.tmp" >"$dir/convert.log" 2>&1
    fi || {
      blog "making $dir/f32.gguf failed: see $dir/convert.log"
      return 1
    }
    mv "$dir/f32.gguf.tmp" "$dir/f32.gguf"
  fi
  for t in Q8_0 Q4_0; do
    local out=$dir/${t,,}.gguf
    [ -s "$out" ] && continue
    llama_cpp
    heavy "$LLAMA_CPP_BIN/llama-quantize" "$dir/f32.gguf" "$out.tmp" "$t" >"$dir/quantize-${t,,}.log" 2>&1 || {
      blog "llama-quantize $t failed: see $dir/quantize-${t,,}.log"
      return 1
    }
    mv "$out.tmp" "$out"
  done
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -euo pipefail
  "$@"
fi
