// Package onnxpb holds the ONNX protobuf types (ModelProto, GraphProto, NodeProto, TensorProto, ...)
// generated from the ONNX IR definition (onnx.proto, IR version 8) with its proto package renamed
// to medassist.onnx. The wire format is unchanged: files written with these types are ordinary
// .onnx files.
package onnxpb

//go:generate sh gen.sh
