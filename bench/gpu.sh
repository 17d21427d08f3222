#!/usr/bin/env bash
# The GPU benchmark, in one unattended run (< 10 minutes on one H100/H200) for the day a GPU is lent:
#   0. preflight: tools, disk, the TinyLlama config in ../shared;
#   1. GPU=1 make setup: XLA's CUDA PJRT plugin, the NVIDIA runtime wheels and ONNX Runtime's GPU build
#      (from PyPI, ~3.5 GB, kept in .cache/native/downloads; checked with ldd), then make build;
#   2. the GPU check (nvidia-smi must list a GPU) — DRY_RUN=1 stops here, with everything before it done;
#   3. a TinyLlama-shaped random model (medassist init --random) and its float16 and int4 ONNX exports;
#   4. GoMLX LoRA steps on the CUDA plugin (train BenchmarkTinyLlamaStep, --backend xla:cuda): step
#      time, tokens/s and MFU = 4·params·tokens / step time / the card's peak (forward 2·N·T, backward
#      through frozen weights 2·N·T; attention and the LoRA matrices left out);
#   5. prefill and decode of both exports on ONNX Runtime's CUDA provider with the KV cache on the GPU
#      (medassist bench --device cuda --kv-cache device): tokens/s, and the HBM floor for decode =
#      bytes of weights read per token / the card's memory bandwidth;
#   6. the serving load test (bench/serve.sh, bench/loadtest) on the int4 export on CUDA, 8 clients;
#   7. the SmolLM2 flashcards job end to end on the GPU (scripts/run.sh: import the GGUF file, the seed
#      job's sweep assets/sweeps/smollm2.yaml on xla:cuda, merge, exports, eval on ONNX Runtime's CUDA
#      provider), at most SMOL_TIMEOUT seconds (default 240; a rerun resumes where it stopped);
#   8. $OUT/gpu.json (every number) and $OUT/gpu.md (a Markdown table for BENCHMARKS.md).
# Any missing piece or failed step stops the run with a message naming it (set -e, `need`).
#
#   bench/gpu.sh                 # on a GPU machine
#   DRY_RUN=1 bench/gpu.sh       # anywhere: setup, build and the checks up to the GPU
#   PEAK_TFLOPS=495 HBM_GBPS=3350 bench/gpu.sh   # a card not in the table below
#
# OUT (default out/bench/gpu/<time>), STEPS (default "train onnx serve smollm2"), DURATION of the load test
# (default 30s), NATIVE (make's install folder). Setup needs PyPI (and the Go module proxy for the build) reachable from the machine.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
OUT=${OUT:-$root/out/bench/gpu/$(date -u +%Y%m%dT%H%M%SZ)}
STEPS=${STEPS:-train onnx serve smollm2}
DURATION=${DURATION:-30s}
SMOL_TIMEOUT=${SMOL_TIMEOUT:-240}
export NATIVE=${NATIVE:-$root/.cache/native} # make's install folder (NATIVE=DIR installs elsewhere)
native=$NATIVE
SHARED=${MEDASSIST_SHARED:-$root/../shared}
TL_CONFIG=$SHARED/models/tinyllama-1.1b-chat-v1.0
SMOL_GGUF=${SMOL_GGUF:-$SHARED/models/smollm2-135m-instruct-gguf/SmolLM2-135M-Instruct.Q4_1.gguf}
FLASHCARDS=${FLASHCARDS:-$SHARED/data/medical_flashcards/flashcards.jsonl}
MODELS=$OUT/models
mkdir -p "$OUT" "$MODELS"
t0=$(date +%s)
say() { printf '==> [%3ds] %s\n' "$(($(date +%s) - t0))" "$*" >&2; }
die() { printf 'bench/gpu.sh: FAILED: %s\n' "$*" >&2; exit 1; }
need() { command -v "$1" >/dev/null || die "$1 not found: $2"; }
trap 'rc=$?; [ $rc = 0 ] || printf "bench/gpu.sh: FAILED (exit %d) after %ds; logs in %s\n" $rc $(($(date +%s) - t0)) "$OUT" >&2' EXIT

say "preflight"
need go "install Go (go.mod's version)"
need python3 "python3 with pip downloads the CUDA wheels"
need curl "used by make setup and the load test"
need jq "used to assemble gpu.json (apt-get install jq)"
need bc "used by bench/serve.sh"
[ -f "$TL_CONFIG/config.json" ] || die "no TinyLlama config at $TL_CONFIG (set MEDASSIST_SHARED to the shared folder)"
free_gb=$(df -Pk "$root" | awk 'NR==2 {print int($4 / 1048576)}')
[ "$free_gb" -ge 20 ] || die "only $free_gb GB free: the CUDA wheels, the random model and its exports need ~20 GB"

say "GPU=1 make setup (CUDA PJRT plugin, NVIDIA libraries, ONNX Runtime GPU build; checked with ldd)"
GPU=1 make setup 2>&1 | tee "$OUT/setup.log" >&2
say "make build"
GPU=1 make build >"$OUT/build.log" 2>&1 || die "make build failed (see $OUT/build.log)"
[ -L "$native/lib/libonnxruntime.so" ] || die "$native/lib/libonnxruntime.so is not the GPU build (ORT_FLAVOR=gpu expected)"
plugin=$(compgen -G "$native/cuda/site-packages/jax_plugins/xla_cuda*/xla_cuda_plugin.so" | head -n1) ||
  die "no CUDA PJRT plugin under $native/cuda/site-packages"

if [ "${DRY_RUN:-0}" = 1 ]; then
  say "DRY_RUN=1: stopping before the GPU check; setup and build done, plugin $plugin"
  exit 0
fi
say "GPU check"
need nvidia-smi "no NVIDIA driver on this machine: run bench/gpu.sh on a GPU machine (DRY_RUN=1 checks the rest)"
gpu=$(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | head -n1) ||
  die "nvidia-smi lists no GPU"
[ -n "$gpu" ] || die "nvidia-smi lists no GPU"
say "GPU: $gpu"
# Peak dense TF32 tensor throughput (GoMLX's XLA backend runs float32 matmuls as TF32 by default)
# and HBM bandwidth, from NVIDIA's data sheets.
case $gpu in
  *H200*) peak=${PEAK_TFLOPS:-494.7} hbm=${HBM_GBPS:-4800} ;;
  *H100*PCIe*) peak=${PEAK_TFLOPS:-378} hbm=${HBM_GBPS:-2000} ;;
  *H100*NVL*) peak=${PEAK_TFLOPS:-417.5} hbm=${HBM_GBPS:-3900} ;;
  *H100*) peak=${PEAK_TFLOPS:-494.7} hbm=${HBM_GBPS:-3350} ;;
  *A100*) peak=${PEAK_TFLOPS:-156} hbm=${HBM_GBPS:-2039} ;;
  *) [ -n "${PEAK_TFLOPS:-}" ] && [ -n "${HBM_GBPS:-}" ] || die "unknown card '$gpu': set PEAK_TFLOPS and HBM_GBPS"
     peak=$PEAK_TFLOPS hbm=$HBM_GBPS ;;
esac

say "TinyLlama-shaped random model and its float16 and int4 exports"
tl=$MODELS/tl-random
bin/medassist init --from-config "$TL_CONFIG" --random --seed 1 --out "$tl" >"$OUT/init.log" 2>&1 ||
  die "medassist init failed (see $OUT/init.log)"
for q in fp16 int4; do
  args=(--dtype float16) && [ $q = int4 ] && args=(--quantize int4)
  bin/medassist export --model "$tl" --out "$MODELS/tl-$q" "${args[@]}" --progress=false >"$OUT/export-$q.log" 2>&1 ||
    die "export $q failed (see $OUT/export-$q.log)"
done

export CGO_ENABLED=1 GOEXPERIMENT=simd CGO_LDFLAGS=-L$native/lib MEDASSIST_NATIVE_DIR=$native
for step in $STEPS; do
  case $step in
    train)
      say "GoMLX LoRA steps on the CUDA plugin (TinyLlama shape)"
      go test -c -o "$OUT/train.test" ./train/
      MEDASSIST_BENCH_OUT=$OUT MEDASSIST_BENCH_BACKEND=xla:cuda MEDASSIST_TINYLLAMA_DIR=$tl \
        "$OUT/train.test" -test.run '^$' -test.bench '^BenchmarkTinyLlamaStep$' -test.benchtime 1x -test.timeout 8m -test.v \
        >"$OUT/train.log" 2>&1 || die "the LoRA step failed on the CUDA plugin (see $OUT/train.log)"
      grep -q 'backend=xla:cuda' "$OUT/train.log" || die "the LoRA step did not run on xla:cuda (see $OUT/train.log)"
      [ -s "$OUT/tinyllama_step.json" ] || die "no tinyllama_step.json" ;;
    onnx)
      for q in fp16 int4; do
        say "ONNX Runtime CUDA provider: prefill and decode, $q"
        bin/medassist bench --model "$MODELS/tl-$q" --device cuda --kv-cache device --prompt-tokens 512 --new-tokens 128 \
          --runs 3 --json >"$OUT/onnx-$q.json" 2>"$OUT/onnx-$q.log" || die "bench $q on CUDA failed (see $OUT/onnx-$q.log)"
        [ "$(jq -r .device "$OUT/onnx-$q.json")" = cuda ] || die "bench $q did not run on CUDA"
      done ;;
    serve)
      say "serving load test (int4 export on CUDA, $DURATION)"
      DEVICE=cuda ONNX_DIR=$MODELS/tl-int4 DURATION=$DURATION OUT=$OUT/serve bench/serve.sh >"$OUT/serve.log" 2>&1 ||
        die "the load test failed (see $OUT/serve.log)" ;;
    smollm2)
      say "SmolLM2 flashcards job end to end on the GPU (assets/sweeps/smollm2.yaml, at most ${SMOL_TIMEOUT}s)"
      [ -s "$SMOL_GGUF" ] || die "no SmolLM2 GGUF file at $SMOL_GGUF (set SMOL_GGUF)"
      [ -s "$FLASHCARDS" ] || die "no flashcards at $FLASHCARDS (set FLASHCARDS)"
      s0=$(date +%s)
      BASE=$SMOL_GGUF DATA=$FLASHCARDS SWEEP=$root/assets/sweeps/smollm2.yaml OUT=$OUT/smollm2 \
        MEDASSIST_BACKEND=xla:cuda MEDASSIST_DEVICE=cuda timeout "$SMOL_TIMEOUT" scripts/run.sh \
        >"$OUT/smollm2.log" 2>&1 || die "the SmolLM2 job failed or ran past ${SMOL_TIMEOUT}s (see $OUT/smollm2.log; a rerun with the same OUT resumes)"
      jq --argjson wall $(($(date +%s) - s0)) '{wall_s: $wall, perplexity, rouge, training}' \
        "$OUT/smollm2/evaluation_results.json" >"$OUT/smollm2.json" ;;
    *) die "unknown step $step" ;;
  esac
done

say "gpu.json and gpu.md"
load() { if [ -s "$1" ]; then cat "$1"; else echo null; fi; }
jq -n --arg gpu "$gpu" --argjson peak "$peak" --argjson hbm "$hbm" --arg plugin "$plugin" --argjson wall $(($(date +%s) - t0)) \
  --argjson step "$(load "$OUT/tinyllama_step.json")" --argjson fp16 "$(load "$OUT/onnx-fp16.json")" \
  --argjson int4 "$(load "$OUT/onnx-int4.json")" --argjson serve "$(load "$OUT/serve/serve.json")" '
  def tokps(s; t): if s == null then null else t / s end;
  {gpu: $gpu, peak_tflops: $peak, hbm_gbps: $hbm, cuda_plugin: $plugin, wall_s: $wall,
   lora_step: (if $step == null then null else $step + {
     tokens_per_s_1x512: tokps($step.step_1x512_s; 512),
     mfu_1x512: (4 * $step.params * 512 / $step.step_1x512_s / ($peak * 1e12))} end),
   onnx: {fp16: $fp16, int4: $int4} | map_values(if . == null then null else . + {
     decode_floor_tokens_per_s: ($hbm * 1e9 / .weight_bytes_per_token)} end),
   serve: $serve}' >"$OUT/gpu.json"
jq -r '
  "| GPU | \(.gpu) |", "|---|---|",
  (if .lora_step then "| GoMLX LoRA step, 1×512 (xla:cuda) | \(.lora_step.step_1x512_s * 1000 | round) ms, \(.lora_step.tokens_per_s_1x512 | round) tokens/s, MFU \(.lora_step.mfu_1x512 * 1000 | round / 10)% of \(.peak_tflops) TFLOP/s |" else empty end),
  (.onnx | to_entries[] | select(.value) | .value as $r |
    "| ONNX Runtime CUDA \(.key): prefill | \($r.prefill_tokens_per_s | round) tokens/s (TTFT \($r.ttft_ms | round) ms) |",
    "| ONNX Runtime CUDA \(.key): decode | \($r.decode_tokens_per_s | round) tokens/s; HBM floor \($r.decode_floor_tokens_per_s | round) tokens/s (\($r.decode_tokens_per_s / $r.decode_floor_tokens_per_s * 100 | round)%) |"),
  (if .serve then "| serving load test (int4, CUDA, \(.serve.clients) clients) | \(.serve.aggregate_tokens_per_s | round) tokens/s, TTFT p50/p99 \(.serve.ttft_p50_ms | round)/\(.serve.ttft_p99_ms | round) ms, \(.serve.completed) requests, \(.serve.errors) errors |" else empty end)' "$OUT/gpu.json" >"$OUT/gpu.md"
cat "$OUT/gpu.md"
say "done in $(($(date +%s) - t0)) s: $OUT/gpu.json, $OUT/gpu.md"
