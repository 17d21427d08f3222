#!/usr/bin/env bash
# Engine speed in one run: this machine's memory-read bandwidth (bench/membw.c on 2 threads), then
# `medassist bench` (batch 1) on TinyLlama-shaped float32 and int4 exports, then the peer —
# transformers.js on onnxruntime-node (bench/peer.mjs) — on the same model.onnx files with the same
# prompt ids, prompt length, new tokens and threads, in ROUNDS rounds of alternating order. ONNX Runtime's
# threads spin while a run waits for work (SPIN=true), which is ONNX Runtime's default and what the peer
# gets. Every step writes JSON into $OUT; the summary (bench/summary.mjs) pools the rounds and compares
# decode speed with the bandwidth floor and with the peer.
#
#   bench/engine.sh                      # defaults below; exports are made when missing
#   PROMPT=128 NEW=64 RUNS=3 ROUNDS=2 SPIN=true THREADS=2 FP32=DIR INT4=DIR bench/engine.sh
#   EXTRA="int4-acc4=DIR" bench/engine.sh  # more exports, measured the same way (name=dir ...)
#
# Missing models are made once under $MODELS (default out/bench/models; bench/lib.sh): a random
# TinyLlama-shaped HF model (medassist init, from the TinyLlama config in ../shared) and its float32
# and int4 exports (medassist export). The measuring phase holds $LOCK (default out/bench/heavy.lock)
# so that other heavy steps started from this checkout wait.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
source bench/lib.sh

RANDOM_DIR=${RANDOM_DIR:-$MODELS/tinyllama-random}
FP32=${FP32:-$MODELS/tinyllama-onnx-fp32}
INT4=${INT4:-$MODELS/tinyllama-onnx-int4}
INT4_FLAGS=${INT4_FLAGS:---quantize int4}
PROMPT=${PROMPT:-128}
NEW=${NEW:-64}
RUNS=${RUNS:-3}
ROUNDS=${ROUNDS:-2}
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
if [ ! -s "$FP32/model.onnx" ] || [ ! -s "$INT4/model.onnx" ]; then
  random_tinyllama "$RANDOM_DIR"
  export_onnx "$RANDOM_DIR" "$FP32"
  # shellcheck disable=SC2086 # INT4_FLAGS is a list of flags
  export_onnx "$RANDOM_DIR" "$INT4" $INT4_FLAGS
fi

{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | xargs), $(nproc) cores"
  echo "memory: $(free -g | awk '/Mem:/ {print $2}') GiB"
  echo "kernel: $(uname -r)"
  echo "go: $(go version | cut -d' ' -f3), node: $(node --version)"
  echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "settings: PROMPT=$PROMPT NEW=$NEW RUNS=$RUNS ROUNDS=$ROUNDS SPIN=$SPIN THREADS=$THREADS FP32=$FP32 INT4=$INT4 EXTRA=${EXTRA:-}"
} >"$OUT/machine.txt"

MODELS="fp32=$FP32 int4=$INT4 ${EXTRA:-}"
echo "$MODELS" | tr ' ' '\n' | sed '/^$/d' >"$OUT/models.txt"
measure() {
  log "memory bandwidth"
  "$OUT/membw" "$MEMBW_MIB" "$THREADS" 8 >"$OUT/membw-before.json"
  while IFS== read -r kind dir; do
    # Rounds alternate the order (medassist first, then the peer first) so that a drift in the
    # machine's speed during the run does not favour either; the summary pools the runs.
    for round in $(seq 1 "$ROUNDS"); do
      if [ $((round % 2)) -eq 1 ]; then order="ours peer"; else order="peer ours"; fi
      for who in $order; do
        if [ "$who" = ours ]; then
          log "medassist bench $kind ($dir), round $round"
          "$BIN" bench --model "$dir" --device cpu --threads "$THREADS" --allow-spinning="$SPIN" \
            --prompt-tokens "$PROMPT" --new-tokens "$NEW" --runs "$RUNS" --json \
            >"$OUT/medassist-$kind-r$round.json" 2>"$OUT/medassist-$kind-r$round.log" </dev/null
        else
          log "peer (transformers.js) $kind, round $round"
          node bench/peer.mjs --model "$dir" --threads "$THREADS" --prompt-tokens "$PROMPT" --new-tokens "$NEW" \
            --runs "$RUNS" >"$OUT/peer-$kind-r$round.json" 2>"$OUT/peer-$kind-r$round.log" </dev/null
        fi
      done
    done
  done <"$OUT/models.txt"
  log "memory bandwidth again"
  "$OUT/membw" "$MEMBW_MIB" "$THREADS" 8 >"$OUT/membw-after.json"
}
export -f measure log blog
export OUT BIN PROMPT NEW RUNS ROUNDS SPIN THREADS MEMBW_MIB
log "measuring (holding ${LOCK:-no lock})"
heavy bash -c measure
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT/machine.txt"
node bench/summary.mjs "$OUT" | tee "$OUT/summary.md"
