#!/bin/sh
# Exports stories260K (float32, float16, int8, int4, contrib) and the tiny random test models
# with bin/medassist, checks them and any TinyLlama-shaped exports given with the reference onnx
# package (onnx_check.py), and writes the report to testdata/export/onnx_check.txt.
#
# Usage: make build && tools/oracle/onnx_check_all.sh [EXPORT_DIR ...]
#   e.g. tools/oracle/onnx_check_all.sh out/bench/models/tinyllama-onnx-fp32 out/bench/models/tinyllama-onnx-int4
# (a TinyLlama-shaped export: medassist init --from-config ../shared/models/tinyllama-1.1b-chat-v1.0
#  --random --seed 0 --out DIR, then medassist export --model DIR --out DIR-onnx [--quantize ...])
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
bin="$root/bin/medassist"
stories="${MEDASSIST_SHARED:-$root/../shared}/models/stories260K"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export_one() { # name model-dir flags...
	name=$1 model=$2
	shift 2
	"$bin" export --model "$model" --out "$work/$name" --progress=false "$@" >/dev/null 2>"$work/$name.log" ||
		{ cat "$work/$name.log" >&2; exit 1; }
	rm "$work/$name.log"
}
export_one stories260k-fp32 "$stories"
export_one stories260k-fp16 "$stories" --dtype float16
export_one stories260k-int8 "$stories" --quantize int8
export_one stories260k-int4 "$stories" --quantize int4
export_one stories260k-contrib "$stories" --contrib
export_one tiny-gqa3-untied-llama3 "$root/testdata/export/tiny-gqa3-untied-llama3"
export_one tiny-mha-tied-linear "$root/testdata/export/tiny-mha-tied-linear"
for d in "$@"; do
	ln -s "$(cd "$d" && pwd)" "$work/$(basename "$d")"
done
cd "$work"
python3 "$root/tools/oracle/onnx_check.py" $(ls) >"$root/testdata/export/onnx_check.txt"
echo "wrote testdata/export/onnx_check.txt"
