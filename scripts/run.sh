#!/usr/bin/env bash
# The main job: base model + flashcards → LoRA sweep (best by validation perplexity) → merged model →
# ONNX export → evaluation (base vs fine-tuned) → ready to serve.
#
#   BASE   Hub model id, local HF-layout dir, or a llama.cpp .gguf file (imported into OUT/base)
#          (default TinyLlama/TinyLlama-1.1B-Chat-v1.0)
#   DATA   Hub dataset id or local JSON/JSONL/Parquet file (default medalpaca/medical_meadow_medical_flashcards)
#   SWEEP  sweep YAML                             (default assets/sweeps/tinyllama.yaml)
#   OUT    output dir                             (default runs/main)
#   QUANTIZE  none|int8|int4 for the served export (default int4)
#   EVAL_EXAMPLES  validation examples generated for ROUGE (default 50)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=$root/bin/medassist
BASE=${BASE:-TinyLlama/TinyLlama-1.1B-Chat-v1.0}
DATA=${DATA:-medalpaca/medical_meadow_medical_flashcards}
SWEEP=${SWEEP:-$root/assets/sweeps/tinyllama.yaml}
OUT=${OUT:-$root/runs/main}
QUANTIZE=${QUANTIZE:-int4}
EVAL_EXAMPLES=${EVAL_EXAMPLES:-50}
say() { printf '\n==> %s\n' "$*" >&2; }

mkdir -p "$OUT"
if [ -f "$BASE" ] && [[ "$BASE" == *.gguf ]]; then
  base_dir=$OUT/base
  if [ ! -f "$base_dir/model.safetensors" ] || [ "$BASE" -nt "$base_dir/model.safetensors" ]; then
    say "import $BASE into $base_dir"
    "$bin" import "$BASE" --out "$base_dir" >/dev/null
  fi
elif [ -d "$BASE" ]; then base_dir=$BASE; else
  say "pull $BASE"
  base_dir=$("$bin" pull "$BASE")
fi
if [ -f "$DATA" ]; then data_file=$DATA; else
  say "pull dataset $DATA"
  data_dir=$("$bin" pull --type dataset "$DATA")
  data_file=$(find -L "$data_dir" -maxdepth 2 -type f \( -name '*.json' -o -name '*.jsonl' -o -name '*.parquet' \) | sort | head -n 1)
  [ -n "$data_file" ] || { echo "no JSON/JSONL/Parquet file in $data_dir" >&2; exit 1; }
fi

say "train: sweep $SWEEP on $data_file (resumes if interrupted)"
"$bin" train --base "$base_dir" --data "$data_file" --out "$OUT" --sweep "$SWEEP"

say "export to ONNX: float32 base and fine-tuned for evaluation, $QUANTIZE for serving"
"$bin" export --model "$base_dir" --out "$OUT/onnx-base-fp32"
"$bin" export --model "$OUT/merged" --out "$OUT/onnx-fp32"
"$bin" export --model "$OUT/merged" --out "$OUT/onnx" --quantize "$QUANTIZE"

# The winner's run: eval re-makes the validation split its summary records (and plots its metrics).
train_dir=$OUT/runs/$(cut -f1 "$OUT/best.txt")
say "evaluate base vs fine-tuned"
"$bin" eval --base "$OUT/onnx-base-fp32" --model "$OUT/onnx-fp32" --data "$data_file" --max-examples "$EVAL_EXAMPLES" \
  --out "$OUT/evaluation_results.json" --report "$OUT/report" --train-dir "$train_dir"

say "done: $OUT/evaluation_results.json, $OUT/report/report.md"
echo "serve it with: bin/medassist serve --model $OUT/onnx" >&2
