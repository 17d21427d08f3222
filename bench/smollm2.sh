#!/usr/bin/env bash
# SmolLM2-135M-Instruct fine-tuned on the flashcards, in one command: the CPU-sized sweep through the
# whole pipeline (import → LoRA sweep → merge → export → eval base vs fine-tuned, with progress bars),
# then the same job as the sweep's best variant in PyTorch + PEFT on the very same prepared examples
# (`medassist dataset` writes them from the run; tools/oracle/train_speed_torch.py reads them and the
# run's hyperparameters), then one comparison:
#   $OUT/evaluation_results.json  medassist's evaluation, plus a "pytorch_peft" entry (the reference run)
#   $OUT/comparison.json, comparison.md  tokens/s of GoMLX and PyTorch, validation answer perplexity
#                                 base vs best (both trainers), ROUGE-1/2/L base vs fine-tuned, and
#                                 the manual prompts answered by both models side by side
#
#   bench/smollm2.sh                                   # the CPU sweep (3 variants, ~1,000 examples)
#   SWEEP=assets/sweeps/smollm2.yaml bench/smollm2.sh  # the full seed job (a GPU job)
#   STEPS="torch compare" bench/smollm2.sh             # a subset (sweep, torch, compare)
#
#   BASE     the GGUF file or an imported HF dir   (default ../shared/models/smollm2-135m-instruct-gguf/…Q4_1.gguf)
#   DATA     the flashcard file                    (default ../shared/data/medical_flashcards/flashcards.jsonl)
#   SWEEP    the sweep                             (default assets/sweeps/smollm2-cpu.yaml)
#   OUT      outputs; re-running resumes           (default out/bench/smollm2/SWEEP-NAME)
#   BACKEND  GoMLX backend (MEDASSIST_BACKEND)     (default: train's own default)
#   EVAL_EXAMPLES, QUANTIZE                        passed to scripts/run.sh
#   TORCH_ARGS  extra train_speed_torch.py flags   (e.g. "--max-steps 5" for a smoke run)
#   PYTHON   a Python with torch, transformers, peft (default python3)
# $LOCK and the rest: bench/lib.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
source bench/lib.sh
BASE=${BASE:-$MEDASSIST_SHARED/models/smollm2-135m-instruct-gguf/SmolLM2-135M-Instruct.Q4_1.gguf}
DATA=${DATA:-$MEDASSIST_SHARED/data/medical_flashcards/flashcards.jsonl}
SWEEP=${SWEEP:-assets/sweeps/smollm2-cpu.yaml}
OUT=${OUT:-$BENCH_DIR/smollm2/$(basename "$SWEEP" .yaml)}
STEPS=${STEPS:-sweep torch compare}
PYTHON=${PYTHON:-python3}
TORCH_ARGS=${TORCH_ARGS:-}
[ -z "${BACKEND:-}" ] || export MEDASSIST_BACKEND=$BACKEND
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

for step in $STEPS; do
  case $step in
    sweep)
      blog "medassist: $SWEEP on $BASE → $OUT"
      heavy make --no-print-directory run BASE="$BASE" DATA="$DATA" SWEEP="$SWEEP" OUT="$OUT" ;;
    torch)
      medassist_bin
      best=$(cut -f1 "$OUT/best.txt")
      blog "PyTorch + PEFT: the job of $best on its own prepared examples"
      "$BIN" dataset --train-dir "$OUT/runs/$best" --out "$OUT/dataset.json"
      # shellcheck disable=SC2086 # TORCH_ARGS is a list of flags
      heavy "$PYTHON" tools/oracle/train_speed_torch.py "$OUT/dataset.json" "$OUT/torch.json" $TORCH_ARGS 2>&1 |
        tee "$OUT/torch.log" ;;
    compare)
      "$PYTHON" bench/smollm2_compare.py "$OUT" ;;
    *) blog "unknown step $step"; exit 2 ;;
  esac
done
