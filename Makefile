# medassist — build, test and benchmark. `make test` is what CI runs.
SHELL := /bin/bash
NATIVE ?= $(CURDIR)/.cache/native
export MEDASSIST_NATIVE_DIR := $(NATIVE)
export MEDASSIST_ORT_LIB ?= $(NATIVE)/lib/libonnxruntime.so
export CGO_ENABLED := 1
export CGO_LDFLAGS := -L$(NATIVE)/lib
export GOEXPERIMENT := simd
GO ?= go
TEST_TIMEOUT ?= 30m

.PHONY: all setup build run test test-large bench container-test lint fmt clean

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

# The large-model tests (model/large_test.go): peak memory while reading every tensor of a
# TinyLlama-shaped float32 model, each test in a process of its own. The model (4.4 GB, from the
# TinyLlama config in ../shared) is made once in LARGE_MODEL. About 7 min on 2 cores, 2 min once the
# model exists (BENCHMARKS.md "Large-model tests").
LARGE_MODEL ?= $(CURDIR)/out/bench/models/tinyllama-random
test-large: build
	bench/lib.sh random_tinyllama "$(LARGE_MODEL)"
	mkdir -p out/bench/large && $(GO) test -c -o out/bench/large/model.test ./model/
	for t in TestLargeModelFloat32 TestLargeModelTouchBytes; do \
	  MEDASSIST_LARGE_MODEL="$(LARGE_MODEL)" out/bench/large/model.test -test.run "^$$t$$" -test.v -test.timeout 30m || exit 1; \
	done

bench: build
	bench/run.sh

# Builds the Space image with podman and runs it for real (minutes to tens of minutes; not part of test).
container-test:
	scripts/container-test.sh

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

fmt:
	gofmt -w $$(git ls-files '*.go')

clean:
	rm -rf bin
