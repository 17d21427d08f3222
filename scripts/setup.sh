#!/usr/bin/env bash
# Installs the native pieces medassist links against or loads, idempotently, into .cache/native:
#   lib/libonnxruntime.so    ONNX Runtime C library (official release archive, else npm onnxruntime-node;
#                            with the GPU flavour a link to the GPU build below)
#   lib/libtokenizers.a      static Rust library for github.com/daulet/tokenizers (release archive, else cargo build)
#   pjrt/cpu/pjrt_c_api_cpu_plugin.so
#                            XLA's CPU PJRT plugin for GoMLX (gomlx/pjrt-cpu-binaries release, else the PyPI
#                            wheel lammps-jax-pjrt-cpu)
# With an NVIDIA GPU (or GPU=1), also, from PyPI, laid out as one Python site-packages so that the
# libraries' $ORIGIN/../../nvidia search paths resolve:
#   cuda/site-packages/jax_plugins/xla_cuda12/xla_cuda_plugin.so   XLA's CUDA 12 PJRT plugin (jax-cuda12-pjrt)
#   cuda/site-packages/nvidia/*/lib/                               the CUDA/cuDNN/NCCL runtime wheels it needs
#   cuda/site-packages/jax_plugins/nvidia -> ../nvidia/cu13        the toolkit (ptxas, libdevice) for go-xla
#   cuda/site-packages/onnxruntime/capi/libonnxruntime.so.VERSION  ONNX Runtime's GPU build with its CUDA
#                                                                  provider (release archive, else onnxruntime-gpu)
# and checks that ldd resolves every library there except the driver's own (libcuda.so.1).
# Downloads are kept in downloads/ (several GB with the GPU pieces) and reused.
# Each piece records what it was installed as in stamps/NAME; a piece whose wanted versions or
# flavour changed is reinstalled.
#
#   make setup                  # CPU pieces (GPU pieces too when nvidia-smi sees a GPU)
#   GPU=1 make setup            # the GPU pieces even without a GPU (e.g. to build an image)
#   XLA=0 make setup            # without XLA's CPU plugin (only training needs it: a serving image)
#   MEDASSIST_NATIVE_DIR=DIR scripts/setup.sh   # install somewhere else
set -euo pipefail

ORT_VERSION=${ORT_VERSION:-1.30.0}
TOKENIZERS_VERSION=${TOKENIZERS_VERSION:-v1.22.1}
# XLA CPU plugin: the gomlx/pjrt-cpu-binaries release the go-xla in go.mod was tested against, else a
# PyPI wheel carrying the same plugin (it trains the stories260K job at 0.85–0.97× PyTorch's speed).
XLA_CPU_RELEASE=${XLA_CPU_RELEASE:-v0.114.0}
XLA_CPU_WHEEL=${XLA_CPU_WHEEL:-lammps-jax-pjrt-cpu==0.11.2}
# CUDA: the CUDA PJRT plugin of the JAX release current with the go-xla in go.mod (it loads with it;
# go-xla's own installer also takes CUDA 13 by default), and the NVIDIA wheels
# jax-cudaNN-plugin[with-cuda] of that release asks for, plus cuRAND for ONNX Runtime's CUDA provider,
# at exact versions for reproducible installs. CUDA 13 is the default because the ONNX Runtime GPU
# wheel on PyPI (1.30.0) is built for CUDA 13: one set of libraries serves both. It needs an NVIDIA
# driver ≥ 580; with an older driver use CUDA=12 (XLA only: ONNX Runtime then stays on its CPU
# build unless the GPU release archive is reachable).
CUDA=${CUDA:-13}
case $CUDA in
13) JAX_CUDA_WHEEL=${JAX_CUDA_WHEEL:-jax-cuda13-pjrt==0.12.0.1}
    NVIDIA_WHEELS=${NVIDIA_WHEELS:-nvidia-cublas==13.10.0.20 nvidia-cuda-cupti==13.5.25 nvidia-cuda-nvcc==13.5.37 \
nvidia-cuda-runtime==13.5.37 nvidia-cudnn-cu13==9.28.1.4 nvidia-cufft==12.5.0.14 nvidia-cusolver==12.4.1.2 \
nvidia-cusparse==12.9.4.2 nvidia-nccl-cu13==2.32.6 nvidia-nvjitlink==13.5.37 nvidia-cuda-nvrtc==13.5.37 \
nvidia-nvshmem-cu13==3.8.0 nvidia-nvvm==13.5.37 nvidia-curand==10.4.5.25} ;;
12) JAX_CUDA_WHEEL=${JAX_CUDA_WHEEL:-jax-cuda12-pjrt==0.12.0.1}
    NVIDIA_WHEELS=${NVIDIA_WHEELS:-nvidia-cublas-cu12==12.9.3.13 nvidia-cuda-cupti-cu12==12.8.90 nvidia-cuda-nvcc-cu12==12.9.86 \
nvidia-cuda-runtime-cu12==12.9.79 nvidia-cudnn-cu12==9.28.0.42 nvidia-cufft-cu12==11.4.1.4 nvidia-cusolver-cu12==11.7.5.82 \
nvidia-cusparse-cu12==12.5.10.65 nvidia-nccl-cu12==2.32.3 nvidia-nvjitlink-cu12==12.9.86 nvidia-cuda-nvrtc-cu12==12.9.86 \
nvidia-nvshmem-cu12==3.8.0} ;;
*) printf 'setup: CUDA=%s: use 13 or 12\n' "$CUDA" >&2; exit 1 ;;
esac
cuda_root=$([ "$CUDA" = 13 ] && echo cu13 || echo cuda_nvcc) # the toolkit wheel's folder under nvidia/: bin/ptxas, nvvm/

root=$(cd "$(dirname "$0")/.." && pwd)
native=${MEDASSIST_NATIVE_DIR:-$root/.cache/native}
lib=$native/lib
downloads=$native/downloads
site=$native/cuda/site-packages
mkdir -p "$lib" "$native/tmp" "$native/stamps" "$downloads"
log() { printf 'setup: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

XLA=${XLA:-1} # 0: skip XLA's CPU plugin (training falls back to the pure-Go backend)
GPU=${GPU:-auto} # 1: install the GPU pieces; 0: do not; auto: when nvidia-smi lists a GPU or they are installed
if [ "$GPU" = auto ]; then
  GPU=0
  if command -v nvidia-smi >/dev/null && nvidia-smi -L 2>/dev/null | grep -q '^GPU'; then GPU=1; fi
  if [ -f "$native/stamps/cuda" ]; then GPU=1; fi # keep an earlier GPU=1 install (and its ONNX Runtime)
fi
[ "$GPU" = 0 ] || [ "$GPU" = 1 ] || die "GPU=$GPU: use 1, 0 or auto"
ORT_FLAVOR=${ORT_FLAVOR:-$([ "$GPU" = 1 ] && [ "$CUDA" = 13 ] && echo gpu || echo cpu)}
[ "$ORT_FLAVOR" = cpu ] || [ "$ORT_FLAVOR" = gpu ] || die "ORT_FLAVOR=$ORT_FLAVOR: use cpu or gpu"
if [ "$ORT_FLAVOR" = gpu ] && [ "$GPU" = 0 ]; then GPU=1; fi # the GPU build lives beside the CUDA libraries

fetch() { # url dest: quiet download with a short connect timeout
  curl -fsSL --connect-timeout 10 --max-time 600 -o "$2" "$1"
}

# Stamps: the first line of stamps/NAME is what the piece was installed as (versions, flavour).
stamp_is() { [ -f "$native/stamps/$1" ] && [ "$(head -n1 "$native/stamps/$1")" = "$2" ]; }
stamp() { printf '%s\nsource=%s\ninstalled=%s\n' "$2" "$3" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" >"$native/stamps/$1"; }

# wheel SPEC (name==version) prints the path of that wheel in downloads/, downloading it once from PyPI.
wheel() {
  local name=${1%%==*} version=${1#*==} found
  found=$(compgen -G "$downloads/${name//-/_}-$version-*.whl" | head -n1 || true)
  if [ -z "$found" ]; then
    python3 -m pip --version >/dev/null 2>&1 ||
      die "python3 -m pip is needed to download $1 from PyPI: install pip (apt-get install python3-pip) and re-run make setup"
    log "downloading $1 from PyPI"
    python3 -m pip download --quiet --no-deps --only-binary=:all: -d "$downloads" "$1" >&2 ||
      die "pip download $1 failed (is PyPI reachable?)"
    found=$(compgen -G "$downloads/${name//-/_}-$version-*.whl" | head -n1 || true)
    [ -n "$found" ] || die "pip download $1 left no wheel in $downloads"
  fi
  printf '%s\n' "$found"
}

install_ort() {
  local want="onnxruntime $ORT_VERSION $ORT_FLAVOR"
  if [ -s "$lib/libonnxruntime.so" ] && [ ! -f "$native/stamps/onnxruntime" ] && [ "$ORT_FLAVOR" = cpu ] && [ ! -L "$lib/libonnxruntime.so" ]; then
    stamp onnxruntime "$want" "present before stamps" # an install from before stamps were kept
  fi
  if [ -s "$lib/libonnxruntime.so" ] && stamp_is onnxruntime "$want"; then log "ONNX Runtime present ($want)"; return; fi
  rm -f "$lib/libonnxruntime.so" "$lib"/libonnxruntime_providers_*.so
  if [ "$ORT_FLAVOR" = gpu ]; then
    # The GPU build stays beside the NVIDIA libraries (its CUDA provider finds them through
    # $ORIGIN); the engine resolves this link, so ONNX Runtime looks for its providers there.
    ln -s "../cuda/site-packages/onnxruntime/capi/libonnxruntime.so.$ORT_VERSION" "$lib/libonnxruntime.so"
    stamp onnxruntime "$want" "link to $site/onnxruntime/capi"
    log "linked $lib/libonnxruntime.so to the GPU build"
    return
  fi
  local tmp=$native/tmp/ort name=onnxruntime-linux-x64-$ORT_VERSION source
  rm -rf "$tmp"; mkdir -p "$tmp"
  local url="https://github.com/microsoft/onnxruntime/releases/download/v$ORT_VERSION/$name.tgz"
  if fetch "$url" "$tmp/ort.tgz" 2>/dev/null && tar xzf "$tmp/ort.tgz" -C "$tmp" 2>/dev/null; then
    cp "$tmp/$name/lib/libonnxruntime.so.$ORT_VERSION" "$lib/libonnxruntime.so"
    source="release $url"
  else
    log "release archive unreachable; using npm onnxruntime-node@$ORT_VERSION"
    (cd "$tmp" && npm pack --silent "onnxruntime-node@$ORT_VERSION" >/dev/null)
    tar xzf "$tmp"/onnxruntime-node-"$ORT_VERSION".tgz -C "$tmp" package/bin/napi-v6/linux/x64/libonnxruntime.so.1
    cp "$tmp/package/bin/napi-v6/linux/x64/libonnxruntime.so.1" "$lib/libonnxruntime.so"
    source="npm onnxruntime-node@$ORT_VERSION"
  fi
  rm -rf "$tmp"
  stamp onnxruntime "$want" "$source"
  log "installed $lib/libonnxruntime.so ($want, from $source)"
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

install_xla_cpu() {
  local dir=$native/pjrt/cpu want="xla-cpu release=$XLA_CPU_RELEASE wheel=$XLA_CPU_WHEEL"
  if [ -s "$dir/pjrt_c_api_cpu_plugin.so" ] && stamp_is xla-cpu "$want"; then log "XLA CPU plugin present ($dir)"; return; fi
  local tmp=$native/tmp/xla-cpu so source
  rm -rf "$tmp"; mkdir -p "$tmp"
  local url="https://github.com/gomlx/pjrt-cpu-binaries/releases/download/$XLA_CPU_RELEASE/pjrt_cpu_linux_amd64.tar.gz"
  if fetch "$url" "$tmp/cpu.tgz" 2>/dev/null && tar xzf "$tmp/cpu.tgz" -C "$tmp" 2>/dev/null &&
    so=$(find "$tmp" -name 'pjrt_c_api_cpu*plugin.so' -type f | head -n1) && [ -n "$so" ]; then
    source="release $url"
  else
    log "release archive unreachable; using the PyPI wheel $XLA_CPU_WHEEL"
    unzip -q -o -j "$(wheel "$XLA_CPU_WHEEL")" '*/pjrt_c_api_cpu_plugin.so' -d "$tmp"
    so=$tmp/pjrt_c_api_cpu_plugin.so source="PyPI $XLA_CPU_WHEEL"
  fi
  rm -rf "$dir"; mkdir -p "$dir"
  mv "$so" "$dir/pjrt_c_api_cpu_plugin.so"
  rm -rf "$tmp"
  stamp xla-cpu "$want" "$source"
  log "installed $dir/pjrt_c_api_cpu_plugin.so (from $source)"
}

install_cuda() {
  local want="cuda$CUDA $JAX_CUDA_WHEEL $NVIDIA_WHEELS onnxruntime=$ORT_VERSION-$ORT_FLAVOR"
  if stamp_is cuda "$want" && [ -d "$site" ]; then log "CUDA $CUDA libraries present ($site)"; check_cuda; return; fi
  rm -rf "$native/cuda"; mkdir -p "$site"
  local spec source="PyPI"
  for spec in $JAX_CUDA_WHEEL $NVIDIA_WHEELS; do
    unzip -q -o "$(wheel "$spec")" -d "$site" -x '*.dist-info/*'
  done
  # go-xla looks for the CUDA toolkit (ptxas, libdevice) in nvidia/ beside the plugin's folder and
  # passes it to XLA as --xla_gpu_cuda_data_dir: point that at the toolkit wheel's root.
  ln -sfn "../nvidia/$cuda_root" "$site/jax_plugins/nvidia"
  if [ "$ORT_FLAVOR" = gpu ]; then install_ort_gpu; source="PyPI; ONNX Runtime GPU from $ort_source"; fi
  check_cuda
  stamp cuda "$want" "$source"
  log "installed the CUDA $CUDA libraries into $site ($(du -sh "$site" | cut -f1))"
}

# install_ort_gpu puts ONNX Runtime's GPU build into site-packages/onnxruntime/capi, as its wheel does.
install_ort_gpu() {
  local tmp=$native/tmp/ort-gpu name=onnxruntime-linux-x64-gpu-$ORT_VERSION
  rm -rf "$tmp"; mkdir -p "$tmp" "$site/onnxruntime/capi"
  local url="https://github.com/microsoft/onnxruntime/releases/download/v$ORT_VERSION/$name.tgz"
  if fetch "$url" "$tmp/ort.tgz" 2>/dev/null && tar xzf "$tmp/ort.tgz" -C "$tmp" 2>/dev/null; then
    cp "$tmp/$name/lib/libonnxruntime.so.$ORT_VERSION" "$tmp/$name"/lib/libonnxruntime_providers_*.so "$site/onnxruntime/capi/"
    ort_source="release $url"
  elif [ "$CUDA" != 13 ]; then
    die "the ONNX Runtime GPU release archive is unreachable and its PyPI wheel is built for CUDA 13: use CUDA=13, or ORT_FLAVOR=cpu"
  else
    log "release archive unreachable; using the PyPI wheel onnxruntime-gpu==$ORT_VERSION"
    unzip -q -o "$(wheel "onnxruntime-gpu==$ORT_VERSION")" 'onnxruntime/capi/libonnxruntime*.so*' -d "$site"
    ort_source="PyPI onnxruntime-gpu==$ORT_VERSION"
  fi
  rm -rf "$tmp"
}

# check_cuda verifies the layout and that every library resolves its dependencies, except the
# driver's libcuda.so.1 (present only on a machine with the NVIDIA driver). ONNX Runtime's CUDA
# provider has no search path of its own: medassist loads the NVIDIA libraries before it (as the
# onnxruntime Python package does), which the check mimics with LD_LIBRARY_PATH.
check_cuda() {
  local need=("$site/jax_plugins/xla_cuda$CUDA/xla_cuda_plugin.so" "$site/jax_plugins/nvidia/bin/ptxas"
    "$site/jax_plugins/nvidia/nvvm/libdevice/libdevice.10.bc")
  if [ "$ORT_FLAVOR" = gpu ]; then
    need+=("$site/onnxruntime/capi/libonnxruntime.so.$ORT_VERSION" "$site/onnxruntime/capi/libonnxruntime_providers_cuda.so"
      "$site/onnxruntime/capi/libonnxruntime_providers_shared.so")
  fi
  local f bad=0 n=0 missing path nvlibs
  for f in "${need[@]}"; do [ -e "$f" ] || { log "missing $f"; bad=1; }; done
  nvlibs=$(find "$site/nvidia" -type d -name lib | sort | paste -sd:)
  while IFS= read -r f; do
    n=$((n + 1)) path=
    case $f in */onnxruntime/capi/*) path=$nvlibs ;; esac
    missing=$(env LD_LIBRARY_PATH="$path" ldd "$f" 2>/dev/null | awk '/not found/ {print $1}' | grep -vx 'libcuda.so.1' || true)
    if [ -n "$missing" ]; then log "${f#"$site"/} cannot find: $(echo $missing)"; bad=1; fi
  done < <(find "$site" -name '*.so*' -type f \( -path '*/lib/*' -o -path '*/capi/*' -o -path '*/jax_plugins/*' \) |
    grep -v -e providers_tensorrt -e /nvshmem_transport_ -e /nvshmem_bootstrap_)
  # Left out: ONNX Runtime's TensorRT provider (TensorRT is not installed; loaded only when asked for)
  # and NVSHMEM's multi-node network transports (InfiniBand, MPI, UCX, libfabric: loaded only when
  # configured).
  [ "$bad" = 0 ] || die "the CUDA libraries in $site are incomplete (see above): remove $native/cuda and re-run GPU=1 make setup"
  log "CUDA $CUDA layout ok: $n libraries resolve everything but the driver (libcuda.so.1)"
}

install_tokenizers
if [ "$XLA" != 0 ]; then install_xla_cpu; fi
if [ "$GPU" = 1 ]; then install_cuda; fi
install_ort
