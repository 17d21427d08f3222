package train

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/gobackend"
	"github.com/gomlx/go-xla/compute/xla"
)

// Backend choice, one rule: pure Go on the CPU unless a PJRT plugin is named.
//
//   - "" or "go": GoMLX's pure-Go backend (SIMD matrix products with GOEXPERIMENT=simd), all cores,
//     one op at a time. Nothing to install; what runs on this project's CPU machines.
//   - "xla:/abs/path/pjrt_plugin.so": XLA through that PJRT plugin, e.g. the CUDA plugin
//     (xla_cuda_plugin.so from the jax-cuda12-pjrt wheel) on a GPU machine. Plugins are never
//     downloaded: the path must exist.
//
// The environment variable GOMLX_BACKEND is not consulted: the configuration says which backend runs.
const (
	BackendGo  = "go"
	xlaPrefix  = "xla:"
	backendDoc = `"go" (pure Go, CPU) or "xla:/abs/path/to/pjrt_plugin.so"`
)

// validBackend checks a backend spec without loading anything.
func validBackend(spec string) bool {
	if spec == "" || spec == BackendGo {
		return true
	}
	path, ok := strings.CutPrefix(spec, xlaPrefix)
	return ok && filepath.IsAbs(path)
}

// NewBackend opens the backend named by spec (see the rule above).
func NewBackend(spec string) (compute.Backend, error) {
	switch {
	case spec == "" || spec == BackendGo:
		return newGoBackend()
	case strings.HasPrefix(spec, xlaPrefix):
		path := strings.TrimPrefix(spec, xlaPrefix)
		if !filepath.IsAbs(path) {
			return nil, fmt.Errorf("backend %q: give the PJRT plugin as an absolute path, e.g. xla:/opt/pjrt/xla_cuda_plugin.so", spec)
		}
		if _, err := os.Stat(path); err != nil {
			return nil, fmt.Errorf("backend %q: PJRT plugin not found: %w", spec, err)
		}
		xla.EnableAutoInstall(false)
		b, err := xla.New(path)
		if err != nil {
			return nil, fmt.Errorf("backend %q: %w (is the plugin built for this machine and go-xla version?)", spec, err)
		}
		return b, nil
	}
	return nil, fmt.Errorf("backend %q: must be %s", spec, backendDoc)
}

// goBackendConfig runs one op at a time, each op using every core inside (matrix products, ...).
// The default (ops in parallel over a bounded worker pool) deadlocks once several parallel ops wait
// for workers inside their own fan-out (seen on a TinyLlama-sized step on 2 cores); sequential ops
// were as fast on this project's models. "parallelism=N" would also print to stdout, which
// `generate --json` owns.
const goBackendConfig = "ops_sequential"

func newGoBackend() (compute.Backend, error) {
	return gobackend.New(goBackendConfig)
}
