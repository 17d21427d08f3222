//go:build !cgo

package serve

import (
	"context"
	"log/slog"
)

// OpenBackend needs ONNX Runtime and the Hugging Face tokenizer, both cgo: a binary built without
// cgo serves only a Backend its caller builds (as the HTTP layer's tests do).
func OpenBackend(context.Context, Config, *slog.Logger) (*Backend, error) {
	return nil, ErrNoCgo
}
