package train

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/gobackend"
	"github.com/gomlx/go-xla/compute/xla"

	"github.com/medassist/medassist/internal/native"
)

// Backend choice. A spec is one of:
//
//   - "auto" (the commands' default): the CUDA PJRT plugin when an NVIDIA GPU is visible and the
//     plugin loads, else XLA's CPU PJRT plugin, else pure Go. `make setup` installs the plugins
//     into .cache/native (see internal/native); one log line says which backend runs and why.
//   - "" or "go": GoMLX's pure-Go backend (SIMD matrix products with GOEXPERIMENT=simd), all cores,
//     one op at a time. Nothing to install; the automatic last resort.
//   - "xla:cpu", "xla:cuda": the plugin `make setup` installed; an error when it is missing.
//   - "xla:/abs/path/pjrt_plugin.so": XLA through that PJRT plugin. Plugins are never downloaded:
//     the path must exist.
//
// The environment variable GOMLX_BACKEND is not consulted: the configuration says which backend runs.
const (
	BackendAuto = "auto"
	BackendGo   = "go"
	BackendCPU  = xlaPrefix + "cpu"
	BackendCUDA = xlaPrefix + "cuda"
	xlaPrefix   = "xla:"
	backendDoc  = `"auto" (CUDA plugin, else XLA CPU plugin, else pure Go), "go", "xla:cpu", "xla:cuda" or "xla:/abs/path/to/pjrt_plugin.so"`
)

// validBackend checks a backend spec without loading anything.
func validBackend(spec string) bool {
	switch spec {
	case "", BackendAuto, BackendGo, BackendCPU, BackendCUDA:
		return true
	}
	path, ok := strings.CutPrefix(spec, xlaPrefix)
	return ok && filepath.IsAbs(path)
}

// BackendChoice is the backend a spec resolved to, and why.
type BackendChoice struct {
	Name   string // "go", "xla:cpu", "xla:cuda" or "xla:/abs/path"
	Plugin string // the PJRT plugin's path ("" for pure Go)
	Reason string
}

func (c BackendChoice) String() string { return c.Name + " (" + c.Reason + ")" }

// NewBackend opens the backend named by spec (see above) without logging.
func NewBackend(spec string) (compute.Backend, error) {
	b, _, err := OpenBackend(spec, nil)
	return b, err
}

// OpenBackend opens the backend named by spec and logs one line saying which and why.
func OpenBackend(spec string, log *slog.Logger) (compute.Backend, BackendChoice, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	b, choice, err := openBackend(spec)
	if err != nil {
		return nil, choice, err
	}
	attrs := []any{"backend", choice.Name, "reason", choice.Reason}
	if choice.Plugin != "" {
		attrs = append(attrs, "plugin", choice.Plugin)
	}
	log.Info("gomlx backend", attrs...)
	return b, choice, nil
}

func openBackend(spec string) (compute.Backend, BackendChoice, error) {
	switch spec {
	case "", BackendGo:
		b, err := newGoBackend()
		return b, BackendChoice{Name: BackendGo, Reason: "asked for"}, err
	case BackendAuto:
		return autoBackend()
	case BackendCPU, BackendCUDA:
		rel := native.CPUPlugin
		if spec == BackendCUDA {
			rel = native.CUDAPlugin
		}
		path, tried := native.Find(rel)
		if path == "" {
			return nil, BackendChoice{}, fmt.Errorf("backend %q: plugin not installed (tried %s): run make setup (GPU=1 for the CUDA plugin)", spec, strings.Join(tried, ", "))
		}
		b, err := newXLABackend(path)
		if err != nil {
			return nil, BackendChoice{}, fmt.Errorf("backend %q: %w", spec, err)
		}
		return b, BackendChoice{Name: spec, Plugin: path, Reason: "asked for"}, nil
	}
	path, ok := strings.CutPrefix(spec, xlaPrefix)
	if !ok {
		return nil, BackendChoice{}, fmt.Errorf("backend %q: must be %s", spec, backendDoc)
	}
	if !filepath.IsAbs(path) {
		return nil, BackendChoice{}, fmt.Errorf("backend %q: give the PJRT plugin as an absolute path, e.g. xla:/opt/pjrt/xla_cuda_plugin.so", spec)
	}
	if _, err := os.Stat(path); err != nil {
		return nil, BackendChoice{}, fmt.Errorf("backend %q: PJRT plugin not found: %w", spec, err)
	}
	b, err := newXLABackend(path)
	if err != nil {
		return nil, BackendChoice{}, fmt.Errorf("backend %q: %w", spec, err)
	}
	return b, BackendChoice{Name: spec, Plugin: path, Reason: "asked for"}, nil
}

// autoBackend tries the CUDA plugin (only when a GPU is visible), then the CPU plugin, then pure Go.
// A plugin that is missing or fails to load is passed over; the reason names what was skipped.
func autoBackend() (compute.Backend, BackendChoice, error) {
	var skipped []string
	gpu, gpuWhy := native.GPU()
	if gpu {
		path, _ := native.Find(native.CUDAPlugin)
		if path == "" {
			skipped = append(skipped, gpuWhy+" but no CUDA plugin installed (GPU=1 make setup)")
		} else if b, err := newXLABackend(path); err != nil {
			skipped = append(skipped, fmt.Sprintf("CUDA plugin failed: %v", err))
		} else {
			return b, BackendChoice{Name: BackendCUDA, Plugin: path, Reason: gpuWhy}, nil
		}
	} else {
		skipped = append(skipped, gpuWhy)
	}
	if path, _ := native.Find(native.CPUPlugin); path == "" {
		skipped = append(skipped, "no XLA CPU plugin installed (make setup)")
	} else if b, err := newXLABackend(path); err != nil {
		skipped = append(skipped, fmt.Sprintf("XLA CPU plugin failed: %v", err))
	} else {
		return b, BackendChoice{Name: BackendCPU, Plugin: path, Reason: strings.Join(skipped, "; ")}, nil
	}
	b, err := newGoBackend()
	if err != nil {
		return nil, BackendChoice{}, errors.Join(fmt.Errorf("backend auto: %s", strings.Join(skipped, "; ")), err)
	}
	return b, BackendChoice{Name: BackendGo, Reason: strings.Join(skipped, "; ")}, nil
}

// newXLABackend loads a PJRT plugin by absolute path; nothing is downloaded.
func newXLABackend(path string) (compute.Backend, error) {
	xla.EnableAutoInstall(false)
	b, err := xla.New(path)
	if err != nil {
		return nil, fmt.Errorf("%w (is the plugin built for this machine and go-xla version?)", err)
	}
	return b, nil
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
