#!/usr/bin/env bash
# `make bench`: every benchmark, one after the other (they share the CPU): engine speed against the
# memory-bandwidth floor and the transformers.js peer, training speed against PyTorch, serving load,
# and the guard's latency. Each script documents its own knobs; results land under out/bench/.
set -euo pipefail
cd "$(dirname "$0")/.."
only=${ONLY:-"guard engine train serve large"}
for b in $only; do
  printf '\n==> bench: %s\n' "$b" >&2
  case $b in
    guard)  go test ./guard -run '^$' -bench BenchmarkCheck -benchtime 5000x ;;
    engine) bench/engine.sh ;;
    train)  bench/train.sh ;;
    serve)  bench/serve.sh ;;
    large)  make --no-print-directory test-large ;;
    *) echo "unknown benchmark $b (guard, engine, train, serve, large)" >&2; exit 2 ;;
  esac
done
