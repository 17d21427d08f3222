// Package testutil finds the shared assets beside the repository and the native libraries
// installed by `make setup`. A test whose asset is absent is skipped, except under
// MEDASSIST_REQUIRE_ASSETS=1 (CI sets it), where it fails: nothing is skipped silently there.
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

// RequireAssets reports whether missing assets fail tests instead of skipping them
// (MEDASSIST_REQUIRE_ASSETS=1).
func RequireAssets() bool { return os.Getenv("MEDASSIST_REQUIRE_ASSETS") == "1" }

// Missing skips the test because an asset it needs is absent, or fails it under
// MEDASSIST_REQUIRE_ASSETS=1. Every test that depends on something outside the repository
// (../shared, ONNX Runtime, Chromium, a tool on PATH) goes through here.
func Missing(t testing.TB, format string, args ...any) {
	t.Helper()
	if RequireAssets() {
		t.Fatalf("required asset missing (MEDASSIST_REQUIRE_ASSETS=1): "+format, args...)
	}
	t.Skipf(format, args...)
}

// Shared returns the path of rel inside ../shared; a missing path goes through Missing.
func Shared(t testing.TB, rel string) string {
	t.Helper()
	p := filepath.Join(SharedDir(), rel)
	if _, err := os.Stat(p); err != nil {
		Missing(t, "shared asset %s not present: %v", rel, err)
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

// SmolLM2GGUF is SmolLM2-135M-Instruct as a llama.cpp GGUF file in ../shared.
func SmolLM2GGUF(t testing.TB) string {
	return Shared(t, "models/smollm2-135m-instruct-gguf/SmolLM2-135M-Instruct.Q4_1.gguf")
}

// MiniLM is the all-MiniLM-L6-v2 sentence encoder (HF layout) in ../shared.
func MiniLM(t testing.TB) string { return Shared(t, "models/all-MiniLM-L6-v2") }

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
		Missing(t, "ONNX Runtime library not found at %s (run make setup): %v", p, err)
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
