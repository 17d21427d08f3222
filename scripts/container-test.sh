#!/usr/bin/env bash
# Builds the Space image with podman and runs it for real (make container-test; not part of make test):
#   1. tools: podman, buildah, runc, debootstrap, jq (apt-get when missing; needs root)
#   2. base images: pulled, or stand-ins made here when the registry cannot be reached
#      (Debian bookworm-slim by debootstrap, golang:1.26-bookworm = that + Go from the module proxy)
#   3. the CPU image, then a container serving a local model: uid, port, health, readyz, chat, streamed
#      chat, guard, metrics, a stop with requests in flight, a start without a model, size and contents
#   4. the CUDA variant, built against a stand-in base that already has uid 1000 (as
#      nvidia/cuda:*-ubuntu24.04 does), to its final stage
# Settings (environment): IMAGE (medassist:container-test), WORK (scratch folder for stand-ins and the
# runtime wrapper), MODEL_SRC (Hugging Face layout model dir to mount; default the shared stories260K),
# ENCODER_SRC (the guard's sentence encoder, mounted; default the shared all-MiniLM-L6-v2),
# MAX_IMAGE_MB (size limit, 300), PORT (17860), STEPS (default "tools bases cpu run missing image cuda").
# Images are kept, so a rerun only rebuilds the layers whose inputs changed.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
IMAGE=${IMAGE:-medassist:container-test}
WORK=${WORK:-${TMPDIR:-/tmp}/medassist-container-test}
MAX_IMAGE_MB=${MAX_IMAGE_MB:-300}
STEPS=${STEPS:-tools bases cpu run missing image cuda}
DEBIAN_IMAGE=docker.io/library/debian:bookworm-slim
GOLANG_IMAGE=docker.io/library/golang:1.26-bookworm
CUDA_STANDIN=localhost/medassist-cuda-standin:ubuntu24.04
mkdir -p "$WORK"
start_time=$(date +%s)

log() { printf '\ncontainer-test [%4ds]: %s\n' "$(($(date +%s) - start_time))" "$*" >&2; }
fail() { printf 'container-test: FAIL: %s\n' "$*" >&2; exit 1; }
pass() { printf 'container-test: ok   %s\n' "$*" >&2; }

# The host's CA bundle goes into build steps: registries may sit behind a proxy with its own CA.
build_volumes=()
[ -d /etc/ssl/certs ] && build_volumes=(-v /etc/ssl/certs:/etc/ssl/certs:ro)

step_tools() {
  local missing=()
  for t in podman buildah debootstrap jq curl; do command -v "$t" >/dev/null || missing+=("$t"); done
  command -v runc >/dev/null || [ -x /usr/sbin/runc ] || missing+=(runc)
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    [ "$(id -u)" = 0 ] || fail "need ${missing[*]}: install them (apt-get install ${missing[*]}) or run as root"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

# runtime_wrapper writes an OCI runtime that deletes process.rlimits before calling runc, for machines
# that refuse setrlimit inside containers, and a containers.conf (used through CONTAINERS_CONF) that
# selects it. Nothing outside WORK changes.
runtime_wrapper() {
  local runc
  runc=$(command -v runc || echo /usr/sbin/runc)
  cat >"$WORK/runc-norlimit" <<EOF
#!/bin/sh
# runc without process.rlimits: for create/run in the bundle's config.json, for exec in --process.
bundle=. proc= cmd= prev=
for a in "\$@"; do
  case "\$prev" in --bundle|-b) bundle=\$a ;; --process|-p) proc=\$a ;; esac
  case "\$a" in
    --bundle=*) bundle=\${a#--bundle=} ;;
    --process=*) proc=\${a#--process=} ;;
    create|run|exec) [ -z "\$cmd" ] && cmd=\$a ;;
  esac
  prev=\$a
done
strip() { [ -f "\$1" ] && jq "\$2" "\$1" >"\$1.tmp" && mv "\$1.tmp" "\$1"; }
case "\$cmd" in
  create|run) strip "\$bundle/config.json" 'del(.process.rlimits)' ;;
  exec) [ -n "\$proc" ] && strip "\$proc" 'del(.rlimits)' ;;
esac
exec $runc "\$@"
EOF
  chmod 755 "$WORK/runc-norlimit"
  cat >"$WORK/containers.conf" <<EOF
[engine]
runtime = "runc-norlimit"
[engine.runtimes]
runc-norlimit = ["$WORK/runc-norlimit"]
EOF
}

# check_runtime runs a trivial container; when the default runtime fails, it switches to the wrapper.
check_runtime() {
  if [ -z "${CONTAINERS_CONF:-}" ] && podman run --rm "$DEBIAN_IMAGE" true 2>/dev/null; then return; fi
  runtime_wrapper
  export CONTAINERS_CONF=$WORK/containers.conf
  podman run --rm "$DEBIAN_IMAGE" true || fail "podman cannot run a container, even with the runc wrapper"
  log "using the runc wrapper ($CONTAINERS_CONF)"
}

pull_or() { # image: true when present or pulled
  podman image exists "$1" && return 0
  timeout 120 podman pull -q "$1" >/dev/null 2>&1
}

# debian_sources is the apt source list of the official Debian images (updates and security included).
debian_sources() {
  printf 'Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm bookworm-updates\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\n'
  printf 'Types: deb\nURIs: http://deb.debian.org/debian-security\nSuites: bookworm-security\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n'
}

debian_standin() {
  log "making a stand-in for $DEBIAN_IMAGE with debootstrap (a few minutes)"
  local rootfs=$WORK/rootfs
  rm -rf "$rootfs"
  nice -n 10 debootstrap --variant=minbase bookworm "$rootfs" http://deb.debian.org/debian >"$WORK/debootstrap.log" 2>&1 ||
    fail "debootstrap failed: see $WORK/debootstrap.log"
  rm -rf "$rootfs"/usr/share/{doc,man,locale} "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  debian_sources >"$rootfs/etc/apt/sources.list.d/debian.sources"
  rm -f "$rootfs/etc/apt/sources.list"
  tar -C "$rootfs" -c . | podman import -q - "$DEBIAN_IMAGE" >/dev/null
  rm -rf "$rootfs"
}

golang_standin() {
  local gover
  gover=$(sed -n 's/^go \(1\.[0-9]*\.[0-9]*\).*/\1/p' "$root/go.mod")
  command -v go >/dev/null && gover=$(go env GOVERSION | sed 's/^go//')
  log "making a stand-in for $GOLANG_IMAGE (Go $gover from the module proxy)"
  mkdir -p "$WORK/golang"
  curl -fsSL -o "$WORK/golang/go.zip" "${GOPROXY_URL:-https://proxy.golang.org}/golang.org/toolchain/@v/v0.0.1-go$gover.linux-amd64.zip" ||
    fail "cannot download Go $gover from the module proxy"
  cat >"$WORK/golang/Dockerfile" <<EOF
FROM $DEBIAN_IMAGE
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl gnupg netbase wget git \\
      openssh-client procps g++ gcc libc6-dev make pkg-config xz-utils unzip bzip2 file dpkg-dev \\
    && rm -rf /var/lib/apt/lists/*
COPY go.zip /tmp/go.zip
RUN mkdir -p /tmp/go && unzip -q /tmp/go.zip -d /tmp/go \\
    && mv /tmp/go/golang.org/toolchain@v0.0.1-go$gover.linux-amd64 /usr/local/go && rm -rf /tmp/go /tmp/go.zip
ENV GOTOOLCHAIN=local GOPATH=/go PATH=/go/bin:/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
WORKDIR /go
EOF
  nice -n 10 podman build -q -t "$GOLANG_IMAGE" "$WORK/golang" >/dev/null
  rm -f "$WORK/golang/go.zip"
}

cuda_standin() {
  podman image exists "$CUDA_STANDIN" && return
  log "making $CUDA_STANDIN: Debian with user ubuntu (uid 1000), the trait of nvidia/cuda:*-ubuntu24.04"
  printf 'FROM %s\nRUN useradd --create-home --uid 1000 ubuntu\n' "$DEBIAN_IMAGE" |
    podman build -q -t "$CUDA_STANDIN" -f - "$WORK" >/dev/null
}

step_bases() {
  pull_or "$DEBIAN_IMAGE" || debian_standin
  check_runtime
  pull_or "$GOLANG_IMAGE" || golang_standin
  cuda_standin
  local i sizes=()
  for i in "$DEBIAN_IMAGE" "$GOLANG_IMAGE" "$CUDA_STANDIN"; do sizes+=("$i $(podman image inspect --format '{{.Size}}' "$i" | awk '{printf "%d MB", $1 / 1e6}')"); done
  pass "base images: $(IFS=';'; echo "${sizes[*]}")"
}

# build_image TAG LOG [podman build args...]: a build with the host's CA bundle, logged to WORK/LOG.
build_image() {
  local tag=$1 logf=$WORK/$2 t0
  shift 2
  t0=$(date +%s)
  if ! nice -n 10 podman build --format docker "${build_volumes[@]}" -t "$tag" "$@" >"$logf" 2>&1; then
    tail -n 30 "$logf" >&2
    fail "podman build $tag failed (log: $logf)"
  fi
  pass "built $tag in $(($(date +%s) - t0)) s"
}

# .dockerignore keeps the host's native libraries, binaries, outputs, runs and history out of builds.
check_context() {
  local probe=$root/out/.dockerignore-probe
  mkdir -p "$probe"
  printf 'FROM %s\nCOPY . /ctx\nRUN cd /ctx && for p in .git .cache bin out runs; do if [ -e "$p" ]; then echo "in context: $p"; fi; done\n' \
    "$DEBIAN_IMAGE" >"$WORK/Dockerfile.context"
  local out id
  out=$(podman build --no-cache --iidfile "$WORK/context.iid" -f "$WORK/Dockerfile.context" "$root" 2>&1)
  rmdir "$probe" 2>/dev/null || true
  id=$(cat "$WORK/context.iid" 2>/dev/null || true)
  [ -z "$id" ] || podman rmi "$id" >/dev/null 2>&1 || true # only this probe: the build cache stays
  out=$(grep '^in context:' <<<"$out" || true)
  [ -z "$out" ] || fail ".dockerignore lets these into the build: $out"
  pass "build context has no .git, .cache, bin, out or runs"
}

step_cpu() {
  check_runtime
  check_context
  log "building $IMAGE (CPU flavour; tens of minutes on a loaded machine the first time)"
  build_image "$IMAGE" build-cpu.log "$root"
}

PORT=${PORT:-17860}
MODEL_SRC=${MODEL_SRC:-${MEDASSIST_SHARED:-$root/../shared}/models/stories260K}
# The guard's sentence encoder, when it is not baked into the image (no Hub at build time), is mounted.
ENCODER_SRC=${ENCODER_SRC:-${MEDASSIST_SHARED:-$root/../shared}/models/all-MiniLM-L6-v2}
encoder_args=()
[ -f "$ENCODER_SRC/config.json" ] &&
  encoder_args=(-v "$(cd "$ENCODER_SRC" && pwd):/models/encoder:ro" -e MEDASSIST_GUARD__ENCODER=/models/encoder)
url=http://127.0.0.1:$PORT
containers=()
cleanup() { # keeps each container's log in WORK
  for c in "${containers[@]}"; do
    podman logs "$c" >"$WORK/$c.log" 2>&1 || true
    podman rm -f -t 0 "$c" >/dev/null 2>&1 || true
  done
}
trap cleanup EXIT

# run_container NAME PORT [env and run args...]: a detached container of IMAGE publishing PORT.
run_container() {
  local name=$1 port=$2
  shift 2
  podman rm -f -t 0 "$name" >/dev/null 2>&1 || true
  podman run -d --name "$name" -p "127.0.0.1:$port:7860" "$@" "$IMAGE" >/dev/null 2>"$WORK/run-$name.log" ||
    fail "podman run $name failed: $(cat "$WORK/run-$name.log")"
  containers+=("$name")
}

has() { grep -q "$2" <<<"$1"; } # text pattern: whether text matches (no pipe: pipefail and grep -q)

wait_http() { # url code seconds: until url answers code
  local i
  for ((i = 0; i < $3 * 4; i++)); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "$1")" = "$2" ] && return 0
    sleep 0.25
  done
  return 1
}

chat() { # body: POST a chat completion
  curl -sS --max-time 120 "$url/v1/chat/completions" -H 'Content-Type: application/json' -d "$1"
}

step_run() {
  check_runtime
  [ -f "$MODEL_SRC/config.json" ] || fail "no model at $MODEL_SRC (set MODEL_SRC to a Hugging Face layout Llama folder)"
  local c=medassist-ct t0 body m
  m=/models/$(basename "$MODEL_SRC")
  log "running $IMAGE with MODEL_ID=$m (mounted read-only, exported at start)"
  t0=$(date +%s%N)
  run_container $c "$PORT" -v "$(cd "$MODEL_SRC" && pwd):$m:ro" -e MODEL_ID="$m" -e MEDASSIST_MAX_CONCURRENT=1 "${encoder_args[@]}"
  wait_http "$url/healthz" 200 30 || fail "nothing answers on port 7860 (published as $PORT): $(podman logs --tail 20 $c 2>&1)"
  pass "listening on 7860 after $((($(date +%s%N) - t0) / 1000000)) ms"
  [ "$(podman exec $c id -u)" = 1000 ] || fail "runs as uid $(podman exec $c id -u), want 1000"
  [ "$(podman exec $c sh -c 'echo $HOME')" = /home/user ] || fail "HOME is not /home/user"
  pass "runs as uid 1000 (HOME /home/user)"
  wait_http "$url/readyz" 200 120 || fail "/readyz never 200: $(curl -s "$url/readyz") $(podman logs --tail 20 $c 2>&1)"
  body=$(curl -s "$url/readyz")
  has "$body" '"device":"cpu"' || fail "/readyz: $body (want device cpu)"
  pass "/readyz 200: $body"
  has "$(podman exec $c cat /home/user/model/medassist-export.json)" "\"model_id\": \"$m\"" || fail "export not stamped"
  pass "exported into MODEL_DIR with a stamp"
  body=$(podman logs $c 2>&1)
  ! grep -qi cuda <<<"$body" || fail "the CPU image logs about CUDA: $(grep -i cuda <<<"$body" | head -n 3)"
  pass "no CUDA warning on the CPU image"
  podman healthcheck run $c >/dev/null || fail "HEALTHCHECK reports unhealthy"
  [ -n "$(podman image inspect --format '{{.Config.Healthcheck}}' "$IMAGE")" ] || fail "image has no HEALTHCHECK"
  pass "HEALTHCHECK healthy"

  body=$(chat '{"messages":[{"role":"user","content":"What is hypertension?"}],"max_tokens":32}')
  echo "$body" | jq -e '.choices[0].message.content | length > 0' >/dev/null || fail "chat: $body"
  pass "chat: finish_reason $(echo "$body" | jq -r '.choices[0].finish_reason'), $(echo "$body" | jq -r '.usage.completion_tokens') tokens"
  body=$(chat '{"messages":[{"role":"user","content":"What is a fever?"}],"max_tokens":32,"stream":true}')
  [ "$(echo "$body" | grep -c '^data: {')" -ge 2 ] && [ "$(echo "$body" | grep '^data: ' | tail -n 1)" = "data: [DONE]" ] ||
    fail "streamed chat: $body"
  pass "streamed chat: $(echo "$body" | grep -c '^data: {') chunks ending with [DONE]"
  body=$(chat '{"messages":[{"role":"user","content":"My father collapsed, he is not breathing and has no pulse"}],"max_tokens":32}')
  [ "$(echo "$body" | jq -r '.choices[0].finish_reason')" = content_filter ] || fail "guard: an emergency got $body"
  pass "guard: emergency answered with content_filter ($(echo "$body" | jq -r '.guard.verdict // empty'))"
  body=$(curl -s "$url/metrics")
  has "$body" '^medassist_http_requests_total{code="200",route="/v1/chat/completions"} [3-9]' ||
    fail "metrics: $(echo "$body" | grep medassist_http_requests_total)"
  has "$body" '^medassist_generated_tokens_total [1-9]' || fail "metrics: no generated tokens"
  pass "metrics count the requests and tokens"
  stop_in_flight $c
}

# stop_in_flight: requests queued and generating when SIGTERM comes all finish, then the container exits 0.
stop_in_flight() {
  local c=$1 n=16 i t0 elapsed
  for ((i = 0; i < n; i++)); do
    chat '{"messages":[{"role":"user","content":"What are the symptoms of diabetes?"}],"max_tokens":400,"temperature":1,"stream":true}' \
      >"$WORK/inflight-$i.txt" 2>&1 &
  done
  for ((i = 0; i < 200; i++)); do [ -s "$WORK/inflight-0.txt" ] && break; sleep 0.05; done
  t0=$(date +%s%N)
  podman stop -t 30 $c >/dev/null || fail "podman stop failed"
  elapsed=$((($(date +%s%N) - t0) / 1000000))
  wait
  for ((i = 0; i < n; i++)); do
    [ "$(grep '^data: ' "$WORK/inflight-$i.txt" | tail -n 1)" = "data: [DONE]" ] ||
      fail "request $i in flight at stop did not finish: $(tail -c 300 "$WORK/inflight-$i.txt")"
  done
  [ "$(podman inspect --format '{{.State.ExitCode}}' $c)" = 0 ] || fail "exit code $(podman inspect --format '{{.State.ExitCode}}' $c) after stop"
  has "$(podman logs $c 2>&1)" 'shutting down: finishing in-flight requests' || fail "no graceful shutdown in the log"
  local after
  after=$(podman logs $c 2>&1 | sed -n '/shutting down/,$p' | grep -c '"route":"/v1/chat/completions"' || true)
  [ "$after" -ge 1 ] || fail "no request finished after the stop began"
  pass "stop with $n requests in flight: $after finished after SIGTERM, all ended with [DONE], exit 0 in $elapsed ms"
}

# A start without a usable model stays up: /healthz 200, /readyz 503 with the reason, the chat page says so.
step_missing() {
  check_runtime
  local c=medassist-ct-missing body
  run_container $c "$PORT" -e MODEL_ID=/models/does-not-exist "${encoder_args[@]}"
  wait_http "$url/healthz" 200 30 || fail "a start without a model does not listen: $(podman logs --tail 20 $c 2>&1)"
  wait_http "$url/readyz" 503 10 || fail "/readyz without a model: $(curl -s "$url/readyz")"
  sleep 2
  body=$(curl -s "$url/readyz")
  echo "$body" | jq -e '.status == "failed" and (.reason | contains("/models/does-not-exist"))' >/dev/null ||
    fail "/readyz does not say why: $body"
  [ "$(podman inspect --format '{{.State.Running}}' $c)" = true ] || fail "the container stopped"
  has "$(curl -s "$url/")" 'id="notice"' || fail "the chat page has no notice"
  ! podman healthcheck run $c >/dev/null 2>&1 || fail "HEALTHCHECK healthy without a model"
  pass "missing model: still running, /readyz 503 $(echo "$body" | jq -c .reason), HEALTHCHECK unhealthy"
  podman rm -f -t 0 $c >/dev/null
}

# The image: size, layers, a stripped binary, no compiler, no Go toolchain, no sources.
step_image() {
  local size mb layers found tmpbin
  size=$(podman image inspect --format '{{.Size}}' "$IMAGE")
  mb=$((size / 1000000))
  layers=$(podman image inspect --format '{{len .RootFS.Layers}}' "$IMAGE")
  [ "$mb" -le "$MAX_IMAGE_MB" ] || fail "image is $mb MB, more than $MAX_IMAGE_MB"
  found=$(podman run --rm --entrypoint sh "$IMAGE" -c \
    'for t in gcc cc g++ go cargo rustc make; do command -v $t; done; ls -d /src /go /usr/local/go /native 2>/dev/null; find / -xdev \( -name "*.go" -o -name go.mod \) 2>/dev/null | head -n 3' || true)
  [ -z "$found" ] || fail "the image holds build tools or sources: $found"
  tmpbin=$(mktemp -d)
  podman create --name medassist-ct-copy "$IMAGE" >/dev/null
  podman cp medassist-ct-copy:/app/medassist "$tmpbin/medassist" >/dev/null
  podman rm medassist-ct-copy >/dev/null
  has "$(file "$tmpbin/medassist")" ', stripped' || fail "binary not stripped: $(file "$tmpbin/medassist")"
  pass "image $mb MB, $layers layers; binary stripped ($(($(stat -c %s "$tmpbin/medassist") / 1000000)) MB); no compiler, Go toolchain or sources"
  rm -rf "$tmpbin"
}

# The CUDA variant on a stand-in that, like nvidia/cuda:*-ubuntu24.04, already has uid 1000 (ubuntu):
# the whole build (GPU ONNX Runtime from the release archive or the PyPI wheel) must reach the final
# stage, whose user step reuses that uid as user with HOME /home/user instead of failing.
step_cuda() {
  check_runtime
  local img=localhost/medassist-ct-cuda who
  log "building the CUDA variant on $CUDA_STANDIN (the GPU ONNX Runtime download is ~250 MB)"
  build_image $img build-cuda.log --build-arg ORT_FLAVOR=gpu --build-arg RUNTIME_IMAGE="$CUDA_STANDIN" "$root"
  who=$(podman run --rm --entrypoint sh $img -c 'getent passwd 1000 | cut -d: -f1,6; stat -c %u /home/user; id -u; ls /app/lib')
  [ "$who" = "$(printf 'user:/home/user\n1000\n1000\nlibonnxruntime.so\nlibonnxruntime_providers_cuda.so\nlibonnxruntime_providers_shared.so')" ] ||
    fail "CUDA image: $who"
  who=$(podman run --rm --entrypoint sh "$IMAGE" -c 'getent passwd 1000 | cut -d: -f1,6')
  [ "$who" = user:/home/user ] || fail "Debian runtime: uid 1000 is $who"
  pass "CUDA image built with the GPU ONNX Runtime; uid 1000 is user (HOME /home/user) on the stand-in that had ubuntu, and on Debian"
}

for s in $STEPS; do
  "step_$s"
done
log "done in $(($(date +%s) - start_time)) s"
