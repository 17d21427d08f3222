#!/bin/sh
# Installs the ONNX Runtime libraries an image serves with into LIBDIR, for FLAVOR cpu or gpu:
# libonnxruntime.so (and, for gpu, its CUDA provider libraries; CUDA and cuDNN come from the CUDA
# base image). From the official release archive, else from the PyPI wheel (onnxruntime or
# onnxruntime-gpu), which carries the same C library: no pip, npm or GitHub needed.
#   docker/onnxruntime.sh LIBDIR FLAVOR VERSION
set -eu
libdir=$1 flavor=$2 version=$3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$libdir"
log() { printf 'onnxruntime: %s\n' "$*" >&2; }
fetch() { curl -fsSL --connect-timeout 10 --retry 3 -o "$2" "$1"; }

case $flavor in
cpu) archive=onnxruntime-linux-x64-$version wheel=onnxruntime ;;
gpu) archive=onnxruntime-linux-x64-gpu-$version wheel=onnxruntime-gpu ;;
*) log "flavor $flavor: use cpu or gpu"; exit 1 ;;
esac

if fetch "https://github.com/microsoft/onnxruntime/releases/download/v$version/$archive.tgz" "$tmp/ort.tgz" 2>/dev/null; then
  tar xzf "$tmp/ort.tgz" -C "$tmp"
  src=$tmp/$archive/lib source="release archive $archive"
else
  # The wheel for one CPython version (the libraries are the same in each).
  index=${PYPI_INDEX:-https://pypi.org/simple}
  name=$(echo "$wheel" | tr - _)
  url=$(curl -fsSL --connect-timeout 10 "$index/$wheel/" |
    grep -o "https://[^\"#]*/$name-$version-cp312-cp312-manylinux[^\"#]*x86_64\.whl" | head -n 1) || true
  [ -n "$url" ] || { log "no $wheel $version wheel on $index and the release archive is unreachable"; exit 1; }
  fetch "$url" "$tmp/ort.whl"
  mkdir -p "$tmp/lib"
  unzip -q -j -d "$tmp/lib" "$tmp/ort.whl" 'onnxruntime/capi/libonnxruntime*.so*'
  src=$tmp/lib source="PyPI $wheel $version"
fi
cp "$src/libonnxruntime.so.$version" "$libdir/libonnxruntime.so"
if [ "$flavor" = gpu ]; then
  cp "$src/libonnxruntime_providers_shared.so" "$src/libonnxruntime_providers_cuda.so" "$libdir/"
fi
log "installed ONNX Runtime $version ($flavor) from the $source into $libdir"
