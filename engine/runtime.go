package engine

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/medassist/medassist/internal/native"
)

// ORTLibEnv names the environment variable that points at the ONNX Runtime shared library.
const ORTLibEnv = "MEDASSIST_ORT_LIB"

// defaultORTLib is where `make setup` installs the library, relative to the repository root.
var defaultORTLib = filepath.Join(".cache", "native", "lib", "libonnxruntime.so")

var runtimeState struct {
	sync.Mutex
	lib string // the library the environment was initialised with, "" before
}

// InitRuntime loads the ONNX Runtime shared library at libPath and creates the process-wide ORT
// environment. The first successful call wins; later calls with the same path do nothing and calls
// with another path fail (ORT cannot load a second library into one process).
func InitRuntime(libPath string) error {
	runtimeState.Lock()
	defer runtimeState.Unlock()
	abs, err := filepath.Abs(libPath)
	if err != nil {
		return fmt.Errorf("onnx runtime library %q: %w", libPath, err)
	}
	// Load the library by its real path: ONNX Runtime looks for its provider libraries (CUDA) beside
	// the file it was loaded from, and `make setup` links lib/libonnxruntime.so to the GPU build.
	if real, err := filepath.EvalSymlinks(abs); err == nil {
		abs = real
	}
	if runtimeState.lib != "" {
		if runtimeState.lib != abs {
			return fmt.Errorf("onnx runtime already initialised from %s; cannot switch to %s in one process", runtimeState.lib, abs)
		}
		return nil
	}
	if ort.IsInitialized() { // set up by other code in this process: use it as it is
		runtimeState.lib = abs
		return nil
	}
	if _, err := os.Stat(abs); err != nil {
		return fmt.Errorf("onnx runtime library not found at %s: run make setup, or point --ort-lib / %s at libonnxruntime.so", abs, ORTLibEnv)
	}
	ort.SetSharedLibraryPath(abs)
	if err := ort.InitializeEnvironment(ort.WithLogLevelError()); err != nil {
		return fmt.Errorf("initialise onnx runtime from %s: %w", abs, err)
	}
	runtimeState.lib = abs
	return nil
}

// ResolveORTLib picks the ONNX Runtime library: the configured path when set, else
// $MEDASSIST_ORT_LIB, else .cache/native/lib/libonnxruntime.so in the repository holding the
// executable (bin/medassist) or in the working directory or one of its parents. It returns an error
// that says to run `make setup` when none exists.
func ResolveORTLib(configured string) (string, error) {
	if configured != "" {
		return configured, nil
	}
	if p := os.Getenv(ORTLibEnv); p != "" {
		return p, nil
	}
	var tried []string
	for _, dir := range native.Roots() {
		p := filepath.Join(dir, defaultORTLib)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
		tried = append(tried, p)
	}
	return "", fmt.Errorf("onnx runtime library not found (tried %v): run make setup, or pass --ort-lib / set %s", tried, ORTLibEnv)
}
