# medassist as a Hugging Face Space (sdk: docker, app_port: 7860).
#
# CPU (default):  docker build -t medassist .
# CUDA:           docker build -t medassist:cuda --build-arg ORT_FLAVOR=gpu \
#                   --build-arg RUNTIME_IMAGE=nvidia/cuda:12.6.3-cudnn-runtime-ubuntu24.04 .
# Bake a model:   docker build --build-arg BAKE_MODEL=TinyLlama/TinyLlama-1.1B-Chat-v1.0 -t medassist:baked .
# Run:            docker run -p 7860:7860 -e MODEL_ID=TinyLlama/TinyLlama-1.1B-Chat-v1.0 medassist
ARG RUNTIME_IMAGE=debian:bookworm-slim

FROM golang:1.26-bookworm AS build
ARG ORT_FLAVOR=cpu
ARG ORT_VERSION=1.30.0
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN ORT_FLAVOR=${ORT_FLAVOR} ORT_VERSION=${ORT_VERSION} make setup build \
    && mkdir -p /out/lib \
    && cp bin/medassist /out/ \
    && cp -P .cache/native/lib/*.so* /out/lib/

# Optionally pull and export a model at build time, so the container starts without network.
FROM build AS bake
ARG BAKE_MODEL=""
ARG BAKE_QUANTIZE=int4
ENV HF_HOME=/tmp/hf MEDASSIST_ORT_LIB=/out/lib/libonnxruntime.so
RUN mkdir -p /out/model && if [ -n "${BAKE_MODEL}" ]; then \
      snap="$(/out/medassist pull "${BAKE_MODEL}")" \
      && /out/medassist export --model "${snap}" --out /out/model --quantize "${BAKE_QUANTIZE}"; \
    fi

FROM ${RUNTIME_IMAGE}
ENV HOME=/home/user \
    HF_HOME=/home/user/.cache/huggingface \
    MEDASSIST_ORT_LIB=/app/lib/libonnxruntime.so \
    LD_LIBRARY_PATH=/app/lib \
    MODEL_ID=TinyLlama/TinyLlama-1.1B-Chat-v1.0 \
    MODEL_DIR=/home/user/model \
    QUANTIZE=int4 \
    MEDASSIST_ADDR=0.0.0.0:7860 \
    MEDASSIST_DEVICE=auto
RUN useradd --create-home --uid 1000 user
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /out/medassist /app/medassist
COPY --from=build /out/lib/ /app/lib/
COPY --chown=1000:1000 --from=bake /out/model/ /home/user/model/
COPY --chmod=755 docker/entrypoint.sh /app/entrypoint.sh
USER 1000
WORKDIR /home/user
EXPOSE 7860
HEALTHCHECK --interval=30s --timeout=5s --start-period=10m --retries=3 \
    CMD ["/app/medassist", "probe", "--url", "http://127.0.0.1:7860/readyz"]
ENTRYPOINT ["/app/entrypoint.sh"]
