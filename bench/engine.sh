#!/usr/bin/env bash
# Engine speed in one run: this machine's memory-read bandwidth (bench/membw.c on 2 threads), then
# `medassist bench` (batch 1) on TinyLlama-shaped float32, int8 and int4 exports, and two peers:
# transformers.js on onnxruntime-node (bench/peer.mjs) on the same model.onnx files, and llama.cpp
# (llama-bench through bench/llamacpp.mjs) on GGUF files made by llama.cpp's own converter and
# llama-quantize from the same HF weights (F32, Q8_0, Q4_0) — with the same prompt length, new
# tokens, threads and runs, in ROUNDS rounds of alternating order. ONNX Runtime's threads spin while
# a run waits for work (SPIN=true), which is ONNX Runtime's default and what the peer gets (llama.cpp
# polls by default too). Every step writes JSON into $OUT; the summary (bench/summary.mjs) pools the
# rounds, compares decode speed with the bandwidth floor and with the peers, and gives the
# medassist/llama.cpp ratios with their spread over the rounds.
#
#   bench/engine.sh                      # defaults below; exports and GGUF files are made when missing
#   PROMPT=128 NEW=64 RUNS=3 ROUNDS=4 SPIN=true THREADS=2 FP32=DIR INT8=DIR INT4=DIR bench/engine.sh
#   EXTRA="int4-acc4=DIR" bench/engine.sh  # more exports, measured the same way (name=dir ...)
#   LLAMA_EXTRA="int4-acc4=F.gguf" ...   # llama.cpp files for EXTRA's names (name=file ...)
#   LLAMA=0 bench/engine.sh              # without llama.cpp
#   SMOLLM2=0 bench/engine.sh            # without the SmolLM2-135M-Instruct rows
#
# Missing models are made once under $MODELS (default out/bench/models; bench/lib.sh): a random
# TinyLlama-shaped HF model (medassist init, from the TinyLlama config in ../shared), its float32,
# int8 and int4 exports (medassist export) and its GGUF files (bench/lib.sh gguf_of: llama.cpp's
# convert_hf_to_gguf.py, which needs $PYTHON with torch, transformers, numpy and sentencepiece, and
# llama-quantize). llama.cpp itself is built once from the PyPI sdist of llama-cpp-python into
# .cache/llama.cpp-VERSION (bench/lib.sh llama_cpp, ~20 min on 2 idle cores). The measuring phase
# holds $LOCK (default out/bench/heavy.lock) so that other heavy steps started from this checkout wait.
#
# The real chat model, SmolLM2-135M-Instruct (its Q4_1 GGUF in ../shared), is measured the same way
# (smollm2-fp32/int8/int4): `medassist import` dequantizes it into an HF dir, exported as above;
# llama.cpp gets the same dequantized weights (llama-quantize to F32, then Q8_0 and Q4_0 from it).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
source bench/lib.sh

RANDOM_DIR=${RANDOM_DIR:-$MODELS/tinyllama-random}
FP32=${FP32:-$MODELS/tinyllama-onnx-fp32}
INT8=${INT8:-$MODELS/tinyllama-onnx-int8}
INT4=${INT4:-$MODELS/tinyllama-onnx-int4}
INT8_FLAGS=${INT8_FLAGS:---quantize int8}
INT4_FLAGS=${INT4_FLAGS:---quantize int4}
LLAMA=${LLAMA:-1}
GGUF=${GGUF:-$MODELS/tinyllama-gguf}
SMOLLM2=${SMOLLM2:-1}
SMOLLM2_GGUF=${SMOLLM2_GGUF:-$MEDASSIST_SHARED/models/smollm2-135m-instruct-gguf/SmolLM2-135M-Instruct.Q4_1.gguf}
PROMPT=${PROMPT:-128}
NEW=${NEW:-64}
RUNS=${RUNS:-3}
ROUNDS=${ROUNDS:-4}
SPIN=${SPIN:-true}
THREADS=${THREADS:-2}
MEMBW_MIB=${MEMBW_MIB:-4096}
OUT=${OUT:-$BENCH_DIR/engine/$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$OUT"
log() { blog "$*"; }
medassist_bin
cc -O3 -march=native -pthread -o "$OUT/membw" bench/membw.c
if [ ! -d bench/node_modules/@huggingface/transformers ]; then
  log "installing the peer (npm, bench/node_modules)"
  (cd bench && npm install --ignore-scripts --no-audit --no-fund --silent)
fi

# Models, made once.
if [ ! -s "$FP32/model.onnx" ] || [ ! -s "$INT8/model.onnx" ] || [ ! -s "$INT4/model.onnx" ]; then
  random_tinyllama "$RANDOM_DIR"
  export_onnx "$RANDOM_DIR" "$FP32"
  # shellcheck disable=SC2086 # INT8_FLAGS and INT4_FLAGS are lists of flags
  export_onnx "$RANDOM_DIR" "$INT8" $INT8_FLAGS
  # shellcheck disable=SC2086
  export_onnx "$RANDOM_DIR" "$INT4" $INT4_FLAGS
fi
LLAMA_MODELS=""
if [ "$LLAMA" = 1 ]; then
  llama_cpp
  if [ ! -s "$GGUF/q4_0.gguf" ]; then
    random_tinyllama "$RANDOM_DIR"
    gguf_of "$RANDOM_DIR" "$GGUF"
  fi
  LLAMA_MODELS="fp32=$GGUF/f32.gguf int8=$GGUF/q8_0.gguf int4=$GGUF/q4_0.gguf ${LLAMA_EXTRA:-}"
fi
SMOLLM2_MODELS=""
if [ "$SMOLLM2" = 1 ]; then
  [ -s "$SMOLLM2_GGUF" ] || { log "no SmolLM2 GGUF at $SMOLLM2_GGUF (set MEDASSIST_SHARED or SMOLLM2_GGUF, or SMOLLM2=0)"; exit 1; }
  s2=$MODELS/smollm2
  if [ ! -s "$s2-hf/config.json" ]; then
    log "importing $SMOLLM2_GGUF"
    heavy "$BIN" import "$SMOLLM2_GGUF" --out "$s2-hf"
  fi
  export_onnx "$s2-hf" "$s2-onnx-fp32"
  # shellcheck disable=SC2086
  export_onnx "$s2-hf" "$s2-onnx-int8" $INT8_FLAGS
  # shellcheck disable=SC2086
  export_onnx "$s2-hf" "$s2-onnx-int4" $INT4_FLAGS
  SMOLLM2_MODELS="smollm2-fp32=$s2-onnx-fp32 smollm2-int8=$s2-onnx-int8 smollm2-int4=$s2-onnx-int4"
  if [ "$LLAMA" = 1 ]; then
    gguf_of "$SMOLLM2_GGUF" "$s2-gguf"
    LLAMA_MODELS="$LLAMA_MODELS smollm2-fp32=$s2-gguf/f32.gguf smollm2-int8=$s2-gguf/q8_0.gguf smollm2-int4=$s2-gguf/q4_0.gguf"
  fi
fi

{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | xargs), $(nproc) cores"
  echo "memory: $(free -g | awk '/Mem:/ {print $2}') GiB"
  echo "kernel: $(uname -r)"
  echo "go: $(go version | cut -d' ' -f3), node: $(node --version)"
  echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "settings: PROMPT=$PROMPT NEW=$NEW RUNS=$RUNS ROUNDS=$ROUNDS SPIN=$SPIN THREADS=$THREADS FP32=$FP32 INT8=$INT8 INT4=$INT4 EXTRA=${EXTRA:-} LLAMA=$LLAMA GGUF=$GGUF LLAMA_EXTRA=${LLAMA_EXTRA:-} SMOLLM2=$SMOLLM2"
} >"$OUT/machine.txt"

MODELS="fp32=$FP32 int8=$INT8 int4=$INT4 $SMOLLM2_MODELS ${EXTRA:-}"
echo "$MODELS" | tr ' ' '\n' | sed '/^$/d' >"$OUT/models.txt"
echo "$LLAMA_MODELS" | tr ' ' '\n' | sed '/^$/d' >"$OUT/llama.txt"
measure() {
  log "memory bandwidth"
  "$OUT/membw" "$MEMBW_MIB" "$THREADS" 8 >"$OUT/membw-before.json"
  while IFS== read -r kind dir; do
    # Rounds alternate the order (medassist first, then last) so that a drift in the machine's
    # speed during the run does not favour any engine; the summary pools the runs.
    gguf=$(sed -n "s/^$kind=//p" "$OUT/llama.txt")
    engines="ours peer${gguf:+ llama}"
    for round in $(seq 1 "$ROUNDS"); do
      if [ $((round % 2)) -eq 1 ]; then order=$engines; else order=$(echo "$engines" | tr ' ' '\n' | tac | xargs); fi
      for who in $order; do
        case $who in
        ours)
          log "medassist bench $kind ($dir), round $round"
          "$BIN" bench --model "$dir" --device cpu --threads "$THREADS" --allow-spinning="$SPIN" \
            --prompt-tokens "$PROMPT" --new-tokens "$NEW" --runs "$RUNS" --json \
            >"$OUT/medassist-$kind-r$round.json" 2>"$OUT/medassist-$kind-r$round.log" </dev/null
          ;;
        peer)
          log "peer (transformers.js) $kind, round $round"
          node bench/peer.mjs --model "$dir" --threads "$THREADS" --prompt-tokens "$PROMPT" --new-tokens "$NEW" \
            --runs "$RUNS" >"$OUT/peer-$kind-r$round.json" 2>"$OUT/peer-$kind-r$round.log" </dev/null
          ;;
        llama)
          log "llama.cpp $kind ($gguf), round $round"
          node bench/llamacpp.mjs --bench "$LLAMA_CPP_BIN/llama-bench" --model "$gguf" --threads "$THREADS" \
            --prompt-tokens "$PROMPT" --new-tokens "$NEW" --runs "$RUNS" \
            >"$OUT/llama-$kind-r$round.json" 2>"$OUT/llama-$kind-r$round.log" </dev/null
          ;;
        esac
      done
    done
  done <"$OUT/models.txt"
  log "memory bandwidth again"
  "$OUT/membw" "$MEMBW_MIB" "$THREADS" 8 >"$OUT/membw-after.json"
}
export -f measure log blog
export OUT BIN PROMPT NEW RUNS ROUNDS SPIN THREADS MEMBW_MIB LLAMA_CPP_BIN
log "measuring (holding ${LOCK:-no lock})"
heavy bash -c measure
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT/machine.txt"
node bench/summary.mjs "$OUT" | tee "$OUT/summary.md"
