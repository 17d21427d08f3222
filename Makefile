# medassist — build, test and benchmark. `make test` is what CI runs.
SHELL := /bin/bash
NATIVE ?= $(CURDIR)/.cache/native
export MEDASSIST_NATIVE_DIR := $(NATIVE)
export MEDASSIST_ORT_LIB ?= $(NATIVE)/lib/libonnxruntime.so
export CGO_ENABLED := 1
export CGO_LDFLAGS := -L$(NATIVE)/lib
export GOEXPERIMENT := simd
GO ?= go
TEST_TIMEOUT ?= 25m

.PHONY: all setup build run test bench lint fmt clean

all: build

# Idempotent: installs only what .cache/native lacks or what changed version (stamps/): ONNX Runtime,
# libtokenizers.a, XLA's CPU PJRT plugin; with a GPU (or GPU=1) also the CUDA PJRT plugin, the NVIDIA
# libraries and ONNX Runtime's GPU build (see scripts/setup.sh).
setup:
	@scripts/setup.sh

build: setup
	$(GO) build -o bin/medassist ./cmd/medassist

# The main job (scripts/run.sh): BASE, DATA, SWEEP, OUT, QUANTIZE, EVAL_EXAMPLES select inputs and outputs.
run: build
	scripts/run.sh

test: setup
	$(GO) vet ./...
	$(GO) test -timeout $(TEST_TIMEOUT) ./...

bench: build
	bench/run.sh

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

fmt:
	gofmt -w $$(git ls-files '*.go')

clean:
	rm -rf bin
