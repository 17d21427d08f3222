#!/bin/sh
# Regenerates onnx.pb.go from the ONNX IR definition shipped by Debian's libonnx-dev
# (/usr/include/onnx/onnx.proto, IR version 8, proto2).
#
# The proto package is renamed from "onnx" to "medassist.onnx": two linked Go packages that
# register the same protobuf names panic at start-up, and other modules (e.g. ONNX readers)
# may register "onnx.*" themselves.
#
# Needs: protoc (Debian protobuf-compiler) and
#   go install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
set -eu
src=${ONNX_PROTO:-/usr/include/onnx/onnx.proto}
cd "$(dirname "$0")"
sed -e 's/^package onnx;/package medassist.onnx;/' \
    -e '/^syntax = /a option go_package = "github.com/medassist/medassist/export/onnxpb";' \
    "$src" > onnx.proto
protoc --go_out=. --go_opt=paths=source_relative onnx.proto
