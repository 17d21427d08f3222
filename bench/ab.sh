#!/usr/bin/env bash
# A/B of two or more exports (or of one export under different `medassist bench` flags) on a shared
# machine: ROUNDS rounds, each running every variant once (`medassist bench`, RUNS runs after a
# warm-up), the order rotating from round to round, so that a change in the machine's load hits every
# variant alike. Prints, per variant, decode and prefill tok/s of every round and their medians, and
# the per-round ratio to the first variant (min–max over the rounds): a change helps when that whole
# range is above 1.
#
#   bench/ab.sh NAME=DIR[:FLAGS] NAME=DIR[:FLAGS] ...
#   ROUNDS=6 RUNS=1 NEW=32 PROMPT=128 THREADS=2 bench/ab.sh base=out/bench/models/a fused=out/bench/models/b
#   bench/ab.sh spin=M nospin=M:--allow-spinning=false  # same export, different flags (FLAGS: comma-separated)
#
# Results go to $OUT (default out/bench/ab/<time>): one `medassist bench --json` per variant and round,
# and summary.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
source bench/lib.sh

ROUNDS=${ROUNDS:-6}
RUNS=${RUNS:-1}
NEW=${NEW:-32}
PROMPT=${PROMPT:-128}
THREADS=${THREADS:-2}
OUT=${OUT:-$BENCH_DIR/ab/$(date -u +%Y%m%dT%H%M%SZ)}
[ $# -ge 2 ] || { echo "usage: bench/ab.sh NAME=DIR[:FLAGS] NAME=DIR[:FLAGS] ..." >&2; exit 2; }
mkdir -p "$OUT"
medassist_bin
printf '%s\n' "$@" >"$OUT/variants.txt"
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)" >"$OUT/machine.txt"

n=$#
variants=("$@")
for round in $(seq 1 "$ROUNDS"); do
  for j in $(seq 0 $((n - 1))); do
    v=${variants[$(((j + round - 1) % n))]}
    name=${v%%=*} spec=${v#*=}
    dir=${spec%%:*} flags=""
    [ "$spec" != "$dir" ] && flags=${spec#*:}
    blog "round $round: $name"
    # shellcheck disable=SC2046 # flags are a comma-separated list of words
    heavy "$BIN" bench --model "$dir" --device cpu --threads "$THREADS" --prompt-tokens "$PROMPT" \
      --new-tokens "$NEW" --runs "$RUNS" --json $(tr ',' ' ' <<<"$flags") \
      >"$OUT/$name-r$round.json" 2>"$OUT/$name-r$round.log" </dev/null
  done
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT/machine.txt"
node bench/ab-summary.mjs "$OUT" | tee "$OUT/summary.txt"
