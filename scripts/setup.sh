#!/usr/bin/env bash
# Installs the native pieces medassist links against, idempotently, into .cache/native:
#   lib/libonnxruntime.so  ONNX Runtime C library (official release archive, else npm onnxruntime-node)
#   lib/libtokenizers.a    static Rust library for github.com/daulet/tokenizers (release archive, else cargo build)
# Override the target folder with MEDASSIST_NATIVE_DIR.
set -euo pipefail

ORT_VERSION=${ORT_VERSION:-1.30.0}
ORT_FLAVOR=${ORT_FLAVOR:-cpu} # cpu, or gpu for the CUDA 12 build (libonnxruntime_providers_cuda.so beside it)
TOKENIZERS_VERSION=${TOKENIZERS_VERSION:-v1.22.1}
root=$(cd "$(dirname "$0")/.." && pwd)
native=${MEDASSIST_NATIVE_DIR:-$root/.cache/native}
lib=$native/lib
mkdir -p "$lib" "$native/tmp"
log() { printf 'setup: %s\n' "$*" >&2; }

fetch() { # url dest: quiet download with a short connect timeout
  curl -fsSL --connect-timeout 10 --max-time 600 -o "$2" "$1"
}

install_ort() {
  if [ -s "$lib/libonnxruntime.so" ]; then log "ONNX Runtime present ($lib/libonnxruntime.so)"; return; fi
  local tmp=$native/tmp/ort; rm -rf "$tmp"; mkdir -p "$tmp"
  local name=onnxruntime-linux-x64-$ORT_VERSION
  [ "$ORT_FLAVOR" = gpu ] && name=onnxruntime-linux-x64-gpu-$ORT_VERSION
  local url="https://github.com/microsoft/onnxruntime/releases/download/v$ORT_VERSION/$name.tgz"
  if fetch "$url" "$tmp/ort.tgz" 2>/dev/null && tar xzf "$tmp/ort.tgz" -C "$tmp" 2>/dev/null; then
    log "ONNX Runtime $ORT_VERSION ($ORT_FLAVOR) from the release archive"
    cp "$tmp/$name"/lib/libonnxruntime_providers_*.so "$lib/" 2>/dev/null || true
    cp "$tmp/$name/lib/libonnxruntime.so.$ORT_VERSION" "$lib/libonnxruntime.so"
  elif [ "$ORT_FLAVOR" = gpu ]; then
    log "cannot download the ONNX Runtime GPU build ($url); the npm fallback has no CUDA provider"
    exit 1
  else
    log "release archive unreachable; using npm onnxruntime-node@$ORT_VERSION"
    (cd "$tmp" && npm pack --silent "onnxruntime-node@$ORT_VERSION" >/dev/null)
    tar xzf "$tmp"/onnxruntime-node-"$ORT_VERSION".tgz -C "$tmp" package/bin/napi-v6/linux/x64/libonnxruntime.so.1
    cp "$tmp/package/bin/napi-v6/linux/x64/libonnxruntime.so.1" "$lib/libonnxruntime.so"
  fi
  rm -rf "$tmp"
  log "installed $lib/libonnxruntime.so"
}

install_tokenizers() {
  if [ -s "$lib/libtokenizers.a" ]; then log "libtokenizers.a present ($lib/libtokenizers.a)"; return; fi
  local tmp=$native/tmp/tok; rm -rf "$tmp"; mkdir -p "$tmp"
  local url="https://github.com/daulet/tokenizers/releases/download/$TOKENIZERS_VERSION/libtokenizers.linux-x86_64.tar.gz"
  if fetch "$url" "$tmp/tok.tgz" 2>/dev/null && tar xzf "$tmp/tok.tgz" -C "$tmp" 2>/dev/null && [ -s "$tmp/libtokenizers.a" ]; then
    log "libtokenizers.a $TOKENIZERS_VERSION from the release archive"
    cp "$tmp/libtokenizers.a" "$lib/libtokenizers.a"
  else
    log "release archive unreachable; building libtokenizers.a $TOKENIZERS_VERSION with cargo (a few minutes)"
    command -v cargo >/dev/null || { log "cargo not found: install Rust (rustup) and re-run make setup"; exit 1; }
    local src
    src=$(cd "$root" && go mod download -json "github.com/daulet/tokenizers@$TOKENIZERS_VERSION" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
    cp -r "$src" "$tmp/src"; chmod -R u+w "$tmp/src"
    (cd "$tmp/src" && CARGO_TARGET_DIR="$native/cargo-target" cargo build --release --quiet)
    cp "$native/cargo-target/release/libtokenizers.a" "$lib/libtokenizers.a"
  fi
  rm -rf "$tmp"
  log "installed $lib/libtokenizers.a"
}

install_ort
install_tokenizers
