//go:build linux && cgo

package engine

// #include <malloc.h>
import "C"

// releaseFreedMemory hands the heap memory that loading a model freed back to the OS. ONNX Runtime
// parses an inline model into memory, copies the initializers and frees the parsed copy; glibc keeps
// such freed heap pages mapped, which left an int4 TinyLlama's resident set 30% above its weights.
func releaseFreedMemory() { C.malloc_trim(0) }
