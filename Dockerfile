# medassist as a Hugging Face Space (sdk: docker, app_port: 7860).
#
# CPU (default):  docker build -t medassist .
# CUDA:           docker build -t medassist:cuda --build-arg ORT_FLAVOR=gpu \
#                   --build-arg RUNTIME_IMAGE=nvidia/cuda:13.0.2-cudnn-runtime-ubuntu24.04 .
# Bake a model:   docker build --build-arg BAKE_MODEL=TinyLlama/TinyLlama-1.1B-Chat-v1.0 -t medassist:baked .
# Run:            docker run -p 7860:7860 -e MODEL_ID=TinyLlama/TinyLlama-1.1B-Chat-v1.0 medassist
# Under podman, build with --format docker (the OCI format drops HEALTHCHECK).
ARG RUNTIME_IMAGE=debian:bookworm-slim

FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
# libtokenizers.a from its release archive, else built by cargo from the crates.io sources. The golang
# image has no Rust (nor pip, which setup.sh's other PyPI fallbacks use): when setup fails they are
# installed and setup retried. ONNX Runtime comes from docker/onnxruntime.sh (release archive, else
# the PyPI wheel: no npm), so setup keeps it; XLA=0: the image serves and never trains, so it needs no
# XLA plugin. The host's .cache never enters (.dockerignore).
ARG ORT_VERSION=1.30.0
COPY docker/onnxruntime.sh docker/onnxruntime.sh
COPY scripts/setup.sh scripts/setup.sh
RUN docker/onnxruntime.sh /native/lib cpu "${ORT_VERSION}" \
    && export ORT_FLAVOR=cpu GPU=0 XLA=0 MEDASSIST_NATIVE_DIR=/native \
    && if ! scripts/setup.sh; then \
         echo "build: installing cargo and pip for the registry fallbacks" >&2 \
         && apt-get update && apt-get install -y --no-install-recommends cargo-web python3-pip \
         && scripts/setup.sh; \
       fi
COPY . .
# Stripped (-s -w) and without build paths; libtokenizers.a is linked in, ONNX Runtime loaded at run time.
RUN CGO_ENABLED=1 CGO_LDFLAGS="-L/native/lib" GOEXPERIMENT=simd \
    go build -trimpath -ldflags="-s -w" -o /out/medassist ./cmd/medassist
# The flavour's ONNX Runtime last, so that CPU and GPU builds share every layer above.
ARG ORT_FLAVOR=cpu
RUN mkdir -p /out/lib && if [ "${ORT_FLAVOR}" = cpu ]; then cp /native/lib/libonnxruntime.so /out/lib/; \
    else docker/onnxruntime.sh /out/lib "${ORT_FLAVOR}" "${ORT_VERSION}"; fi

# The guard's sentence encoder is baked into the image's Hugging Face cache, where the guard looks
# for it (BAKE_ENCODER=""; or a build without the Hub: mount one and set MEDASSIST_GUARD__ENCODER).
# Optionally a model is pulled and exported too (stamped like a start-time export), so the container
# starts without network.
FROM build AS bake
ARG BAKE_ENCODER=sentence-transformers/all-MiniLM-L6-v2
ARG BAKE_MODEL=""
ARG BAKE_QUANTIZE=int4
ENV HF_HOME=/out/hf MEDASSIST_ORT_LIB=/out/lib/libonnxruntime.so
RUN mkdir -p /out/model /out/hf/hub \
    && if [ -n "${BAKE_ENCODER}" ] && ! /out/medassist pull --quiet --retries 2 \
            --include '*.json,model.safetensors,vocab.txt' "${BAKE_ENCODER}"; then \
         echo "build: WARNING: the guard's encoder ${BAKE_ENCODER} is not baked in (no Hub?): mount it at run time" >&2; \
       fi \
    && if [ -n "${BAKE_MODEL}" ]; then \
         HF_HOME=/tmp/hf /out/medassist prepare --model-id "${BAKE_MODEL}" --model-dir /out/model --quantize "${BAKE_QUANTIZE}"; \
       fi \
    && rm -rf /out/hf/hub/models--*/blobs/*.incomplete /out/hf/hub/.locks

# The runtime user is uid 1000 (what Spaces run as): Debian has none, so it is created; the Ubuntu
# 24.04 CUDA images already have one (ubuntu), which is renamed so that HOME is /home/user either way.
FROM ${RUNTIME_IMAGE} AS runtime-base
RUN set -eu; \
    if existing="$(getent passwd 1000 | cut -d: -f1)" && [ -n "$existing" ]; then \
      usermod --login user --home /home/user --move-home "$existing"; \
      if getent group "$existing" >/dev/null; then groupmod --new-name user "$existing"; fi; \
    else \
      useradd --create-home --uid 1000 --user-group user; \
    fi; \
    mkdir -p /home/user; chown 1000:1000 /home/user

FROM runtime-base
ARG BAKE_MODEL=""
ARG BAKE_QUANTIZE=int4
ENV HOME=/home/user \
    HF_HOME=/home/user/.cache/huggingface \
    MEDASSIST_ORT_LIB=/app/lib/libonnxruntime.so \
    LD_LIBRARY_PATH=/app/lib \
    MODEL_ID=${BAKE_MODEL:-TinyLlama/TinyLlama-1.1B-Chat-v1.0} \
    MODEL_DIR=/home/user/model \
    QUANTIZE=${BAKE_QUANTIZE} \
    MEDASSIST_ADDR=0.0.0.0:7860
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /out/medassist /app/medassist
COPY --from=build /out/lib/ /app/lib/
COPY --chown=1000:1000 --from=bake /out/model/ /home/user/model/
COPY --chown=1000:1000 --from=bake /out/hf/hub/ /home/user/.cache/huggingface/hub/
COPY docker/entrypoint.sh /app/entrypoint.sh
USER 1000
WORKDIR /home/user
EXPOSE 7860
HEALTHCHECK --interval=30s --timeout=5s --start-period=10m --retries=3 \
    CMD ["/app/medassist", "probe", "--url", "http://127.0.0.1:7860/readyz"]
ENTRYPOINT ["/app/entrypoint.sh"]
