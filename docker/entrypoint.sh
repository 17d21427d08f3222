#!/bin/sh
# Start medassist serve in a container. The container's settings MODEL_ID, MODEL_REVISION, MODEL_DIR
# and QUANTIZE are serve's model-id, revision, model-dir and quantize (MEDASSIST_* variables and flags
# win). serve listens on 7860 at once and pulls, exports and loads the model in the background:
# /readyz answers 503 with what it is doing, or why it failed, until the model is ready.
set -eu
if [ -z "${MEDASSIST_MODEL:-}" ]; then # MEDASSIST_MODEL (an exported folder) replaces MODEL_ID
  export MEDASSIST_MODEL_ID="${MEDASSIST_MODEL_ID:-${MODEL_ID:-}}"
fi
export MEDASSIST_REVISION="${MEDASSIST_REVISION:-${MODEL_REVISION:-main}}"
export MEDASSIST_MODEL_DIR="${MEDASSIST_MODEL_DIR:-${MODEL_DIR:-}}"
export MEDASSIST_QUANTIZE="${MEDASSIST_QUANTIZE:-${QUANTIZE:-int4}}"
exec /app/medassist serve "$@"
