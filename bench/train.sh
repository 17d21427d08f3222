#!/usr/bin/env bash
# Training benchmarks, on one machine, one after the other (each heavy step holds $LOCK so that other
# heavy jobs on a shared machine wait):
#   1. the stories260K flashcards LoRA job in medassist's GoMLX trainer (train/bench_test.go,
#      BenchmarkStoriesFlashcards: 3,000 flashcards, 2 epochs, batch 2, grad-accum 4, r 16, alpha 32,
#      all seven projections, lr 2e-3, cosine, warmup 10) → $OUT/gomlx.json, and the prepared
#      examples → $OUT/dataset.json;
#   2. the same job on the same examples in PyTorch + PEFT (tools/oracle/train_speed_torch.py)
#      → $OUT/torch.json;
#   3. LoRA steps on a TinyLlama-shaped random model (BenchmarkTinyLlamaStep) under /usr/bin/time -v
#      → $OUT/tinyllama_step.json, $OUT/tinyllama_time.txt (peak RSS).
#
#   bench/train.sh                       # everything, GoMLX on --backend auto (XLA's CPU plugin after make setup)
#   BACKEND=go bench/train.sh            # the pure-Go backend; BACKEND=xla:/abs/plugin.so for another plugin
#   STEPS="stories torch" bench/train.sh # a subset
#
# Outputs go to $OUT (default out/bench/train/DATE); the TinyLlama-shaped model is made once in
# $TINYLLAMA_DIR (default out/bench/models/tinyllama-random); $LOCK and the rest: bench/lib.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
source bench/lib.sh
BACKEND=${BACKEND:-auto}
STEPS=${STEPS:-stories torch tinyllama}
TINYLLAMA_DIR=${TINYLLAMA_DIR:-$MODELS/tinyllama-random}
OUT=${OUT:-$BENCH_DIR/train/$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$OUT"
log() { blog "$*"; }

export MEDASSIST_BENCH_OUT=$OUT MEDASSIST_BENCH_BACKEND=$BACKEND MEDASSIST_TINYLLAMA_DIR=$TINYLLAMA_DIR
log "building $OUT/train.test"
go test -c -o "$OUT/train.test" ./train/

for step in $STEPS; do
  case $step in
    stories)
      log "GoMLX ($BACKEND): stories260K flashcards job"
      heavy "$OUT/train.test" -test.run '^$' -test.bench '^BenchmarkStoriesFlashcards$' -test.benchtime 1x \
        -test.timeout 4h -test.v 2>&1 | tee "$OUT/gomlx.log" ;;
    torch)
      log "PyTorch + PEFT: the same job on $OUT/dataset.json"
      heavy python3 tools/oracle/train_speed_torch.py "$OUT/dataset.json" "$OUT/torch.json" 2>&1 | tee "$OUT/torch.log" ;;
    tinyllama)
      random_tinyllama "$TINYLLAMA_DIR"
      log "TinyLlama-shaped LoRA step ($TINYLLAMA_DIR)"
      heavy /usr/bin/time -v -o "$OUT/tinyllama_time.txt" "$OUT/train.test" -test.run '^$' \
        -test.bench '^BenchmarkTinyLlamaStep$' -test.benchtime 1x -test.timeout 1h -test.v 2>&1 | tee "$OUT/tinyllama.log"
      grep -E "Maximum resident|Elapsed" "$OUT/tinyllama_time.txt" >&2 ;;
    *) log "unknown step $step"; exit 2 ;;
  esac
done

python3 - "$OUT" <<'PY'
import json, os, sys
out = sys.argv[1]
def load(name):
    p = os.path.join(out, name)
    return json.load(open(p)) if os.path.exists(p) else None
for name in ("gomlx.json", "torch.json"):
    r = load(name)
    if r:
        print(f"{r['engine']:14s} val ppl {r['base_val_perplexity']:.2f} -> {r['val_perplexity'][-1]:.2f} "
              f"(-{r['perplexity_drop_pct']:.1f}%), wall {r['wall_time_s']:.0f} s, {r['tokens_per_s']:.0f} tokens/s")
t = load("tinyllama_step.json")
if t:
    print(f"TinyLlama-shaped step: 1x512 {t['step_1x512_s']:.1f} s, 2x{t['mean_padded_width']} {t['step_2xmean_s']:.1f} s, "
          f"seed job projected {t['seed_job_projected_s'] / 3600:.1f} h")
print(f"results in {out}")
PY
