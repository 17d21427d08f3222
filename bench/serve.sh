#!/usr/bin/env bash
# Serving load benchmark (loopback only): export stories260K to ONNX, start `medassist serve` on
# 127.0.0.1 with a few concurrent sequences and a bounded queue, drive it with 8 streaming clients for
# 60 s (bench/loadtest), then stop it with SIGTERM. Prints the load summary (TTFT p50/p99, aggregate
# tokens/s, 429s, errors, RSS after warm-up, goroutines before/after) and writes it to
# $OUT/serve.json together with the server's log and its final /metrics.
#
#   MODEL       HF-layout model dir to export   (default $MEDASSIST_SHARED or ../shared, models/stories260K)
#   ONNX_DIR    an already exported dir; skips the export
#   CLIENTS     concurrent clients               (default 8)
#   DURATION    load duration                    (default 60s)
#   CONCURRENT  --max-concurrent                 (default 2)
#   QUEUE       --queue-size                     (default 4)
#   MAX_TOKENS  max_tokens per request           (default 64)
#   PORT        loopback port                    (default 18080)
#   DEVICE      --device of the server           (default cpu)
#   OUT         output dir                       (default out/bench/serve)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
MODEL=${MODEL:-${MEDASSIST_SHARED:-$root/../shared}/models/stories260K}
CLIENTS=${CLIENTS:-8}
DURATION=${DURATION:-60s}
CONCURRENT=${CONCURRENT:-2}
QUEUE=${QUEUE:-4}
MAX_TOKENS=${MAX_TOKENS:-64}
PORT=${PORT:-18080}
DEVICE=${DEVICE:-cpu}
OUT=${OUT:-$root/out/bench/serve}
url=http://127.0.0.1:$PORT
say() { printf '==> %s\n' "$*" >&2; }

mkdir -p "$OUT"
pid="" tmp=""
cleanup() {
  if [ -n "$pid" ]; then kill -TERM "$pid" 2>/dev/null || true; fi
  if [ -n "$tmp" ]; then rm -rf "$tmp"; fi
}
trap cleanup EXIT
say "build"
go build -o bin/medassist ./cmd/medassist
go build -o "$OUT/loadtest" ./bench/loadtest

if [ -z "${ONNX_DIR:-}" ]; then
  tmp=$(mktemp -d)
  ONNX_DIR=$tmp/stories260k
  say "export $MODEL → $ONNX_DIR"
  start=$(date +%s.%N)
  bin/medassist export --model "$MODEL" --out "$ONNX_DIR" >/dev/null
  export_s=$(echo "$(date +%s.%N) - $start" | bc)
  say "export took ${export_s}s"
fi

say "serve on $url (max-concurrent $CONCURRENT, queue $QUEUE)"
bin/medassist serve --model "$ONNX_DIR" --addr "127.0.0.1:$PORT" --device "$DEVICE" \
  --max-concurrent "$CONCURRENT" --queue-size "$QUEUE" --log-format json 2>"$OUT/server.log" &
pid=$!
for _ in $(seq 1 300); do
  if curl -fsS "$url/readyz" >/dev/null 2>&1; then break; fi
  if ! kill -0 "$pid" 2>/dev/null; then say "server exited:"; cat "$OUT/server.log" >&2; exit 1; fi
  sleep 0.1
done
curl -fsS "$url/readyz" >&2; echo >&2

load_start=$(cut -d' ' -f1 /proc/loadavg)
say "load: $CLIENTS clients for $DURATION (machine load average $load_start on $(nproc) cores)"
set +e
"$OUT/loadtest" --url "$url" --clients "$CLIENTS" --duration "$DURATION" --max-tokens "$MAX_TOKENS" --json "$OUT/serve.json"
load_rc=$?
set -e
curl -fsS "$url/metrics" >"$OUT/metrics.txt" || true

say "SIGTERM"
kill -TERM "$pid"
set +e
wait "$pid"
serve_rc=$?
set -e
pid=""
grep -c '"msg":"request"' "$OUT/server.log" | xargs printf '%s request log lines; ' >&2
printf 'server exit status %d; loadtest exit status %d\n' "$serve_rc" "$load_rc" >&2
printf '{"export_seconds": %s, "server_exit": %d, "loadtest_exit": %d, "cores": %d, "loadavg_start": %s, "loadavg_end": %s}\n' \
  "$(printf '%.3f' "${export_s:-0}")" "$serve_rc" "$load_rc" "$(nproc)" "$load_start" "$(cut -d' ' -f1 /proc/loadavg)" >"$OUT/run.json"
cat "$OUT/run.json" >&2
[ "$serve_rc" -eq 0 ] && [ "$load_rc" -eq 0 ]
