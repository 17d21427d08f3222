#!/usr/bin/env bash
# `make bench`: every benchmark, one after the other (they share the CPU): engine speed against the
# memory-bandwidth floor and the transformers.js peer, training speed against PyTorch, serving load,
# the guard's latency and the sentence encoder's (latency per message, load time, throughput). Each
# script documents its own knobs; results land under out/bench/.
set -euo pipefail
cd "$(dirname "$0")/.."
only=${ONLY:-"guard encoder engine train serve"}
for b in $only; do
  printf '\n==> bench: %s\n' "$b" >&2
  case $b in
    guard)  go test ./guard -run '^$' -bench BenchmarkCheck -benchtime 5000x ;;
    encoder) go test ./encoder -run '^$' -bench BenchmarkEmbedOne -benchtime 300x -count 3 -cpu 2 &&
             go test ./encoder -run '^$' -bench 'BenchmarkOpen|BenchmarkEmbedMessages' -benchtime 3x -cpu 2 ;;
    engine) bench/engine.sh ;;
    train)  bench/train.sh ;;
    serve)  bench/serve.sh ;;
    *) echo "unknown benchmark $b (guard, encoder, engine, train, serve)" >&2; exit 2 ;;
  esac
done
