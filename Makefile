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

.PHONY: all setup build run test bench container-test lint fmt clean

all: build

# Idempotent: installs only what .cache/native lacks.
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
