// Package testutil finds the shared assets beside the repository and the native libraries
// installed by `make setup`, skipping tests cleanly when they are absent.
package testutil

import (
	"math"
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// RepoRoot is the repository root (the folder holding go.mod).
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// SharedDir is ../shared beside the repository, or $MEDASSIST_SHARED.
func SharedDir() string {
	if d := os.Getenv("MEDASSIST_SHARED"); d != "" {
		return d
	}
	return filepath.Join(RepoRoot(), "..", "shared")
}

// Shared returns the path of rel inside ../shared, skipping the test when it is absent.
func Shared(t testing.TB, rel string) string {
	t.Helper()
	p := filepath.Join(SharedDir(), rel)
	if _, err := os.Stat(p); err != nil {
		t.Skipf("shared asset %s not present: %v", rel, err)
	}
	return p
}

// Stories260K is the pretrained tiny Llama in ../shared (skips when absent).
func Stories260K(t testing.TB) string { return Shared(t, "models/stories260K") }

// TinyLlamaConfig is TinyLlama's config and tokenizer dir (no weights) in ../shared (skips when absent).
func TinyLlamaConfig(t testing.TB) string { return Shared(t, "models/tinyllama-1.1b-chat-v1.0") }

// Flashcards is the medical flashcards JSON Lines file in ../shared (skips when absent).
func Flashcards(t testing.TB) string {
	return Shared(t, "data/medical_flashcards/flashcards.jsonl")
}

// NativeDir is where `make setup` installs native libraries ($MEDASSIST_NATIVE_DIR or .cache/native).
func NativeDir() string {
	if d := os.Getenv("MEDASSIST_NATIVE_DIR"); d != "" {
		return d
	}
	return filepath.Join(RepoRoot(), ".cache", "native")
}

// ORTLibrary is the ONNX Runtime shared library ($MEDASSIST_ORT_LIB or the one `make setup` installed);
// the test is skipped when it is missing.
func ORTLibrary(t testing.TB) string {
	t.Helper()
	p := os.Getenv("MEDASSIST_ORT_LIB")
	if p == "" {
		p = filepath.Join(NativeDir(), "lib", "libonnxruntime.so")
	}
	if _, err := os.Stat(p); err != nil {
		t.Skipf("ONNX Runtime library not found at %s (run make setup): %v", p, err)
	}
	return p
}

// MaxAbsDiff is max |a[i] - b[i]| in float64; +Inf when the lengths differ or a difference is NaN,
// so that a broken result can never pass a tolerance check.
func MaxAbsDiff(a, b []float32) float64 {
	if len(a) != len(b) {
		return math.Inf(1)
	}
	var worst float64
	for i := range a {
		d := math.Abs(float64(a[i]) - float64(b[i]))
		if math.IsNaN(d) {
			return math.Inf(1)
		}
		worst = max(worst, d)
	}
	return worst
}

// Argmax is the first index of the largest value (torch.argmax's tie rule).
func Argmax(v []float32) int {
	best := 0
	for i, x := range v {
		if x > v[best] {
			best = i
		}
	}
	return best
}
