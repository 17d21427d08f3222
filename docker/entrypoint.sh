#!/bin/sh
# Start medassist in a container: serve MODEL_DIR when it already holds an exported model (baked in at
# build time or mounted); otherwise pull MODEL_ID from the Hugging Face Hub, export it to ONNX
# (QUANTIZE: none, int8 or int4) into MODEL_DIR, then serve.
set -eu
if [ ! -f "$MODEL_DIR/model.onnx" ]; then
  echo "medassist: no exported model in $MODEL_DIR; pulling $MODEL_ID" >&2
  snapshot="$(/app/medassist pull "$MODEL_ID")"
  /app/medassist export --model "$snapshot" --out "$MODEL_DIR" --quantize "$QUANTIZE"
fi
exec /app/medassist serve --model "$MODEL_DIR" "$@"
