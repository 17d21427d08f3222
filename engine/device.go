package engine

/*
#cgo LDFLAGS: -ldl
#include <dlfcn.h>
#include <stdlib.h>

static const char *preload(const char *path) {
	if (dlopen(path, RTLD_NOW | RTLD_GLOBAL) == NULL) return dlerror();
	return NULL;
}
*/
import "C"

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"unsafe"

	"github.com/medassist/medassist/internal/native"
)

// devicePlan is what createSession tries: CUDA first or not at all, and whether a CUDA failure is
// an error (device cuda) or a fallback to the CPU (auto, with a GPU present).
type devicePlan struct {
	tryCUDA, mustCUDA bool
	reason            string // why, for the log line
}

// planDevice decides from the configured device and whether the machine has an NVIDIA GPU. auto
// on a machine without one goes straight to the CPU: nothing to warn about.
func planDevice(device string, gpu bool, gpuWhy string) (devicePlan, error) {
	switch device {
	case DeviceCPU:
		return devicePlan{reason: "device cpu asked for"}, nil
	case DeviceCUDA:
		if !gpu {
			return devicePlan{}, fmt.Errorf("device cuda: %s on this machine; use --device auto or cpu", gpuWhy)
		}
		return devicePlan{tryCUDA: true, mustCUDA: true, reason: "device cuda asked for"}, nil
	}
	if !gpu {
		return devicePlan{reason: "device auto: " + gpuWhy}, nil
	}
	return devicePlan{tryCUDA: true, reason: "device auto: " + gpuWhy}, nil
}

// cudaLibraries are the NVIDIA libraries ONNX Runtime's CUDA provider links against or opens, in
// load order (a library's own dependencies first).
var cudaLibraries = []string{"libcudart.so", "libcublasLt.so", "libcublas.so", "libcurand.so", "libcufft.so", "libnvrtc.so", "libcudnn.so"}

// preloadCUDA loads the NVIDIA runtime libraries laid out beside the GPU build of ONNX Runtime
// (site-packages/nvidia/*/lib, see scripts/setup.sh) into the process, as the onnxruntime Python
// package does: the CUDA provider library has no search path of its own and then finds them
// already loaded. Nothing happens for an ONNX Runtime outside such a layout (e.g. a CUDA base image
// with the libraries on the system path).
func preloadCUDA(ortLib string) error {
	real, err := filepath.EvalSymlinks(ortLib)
	if err != nil {
		return err
	}
	nvidia := filepath.Join(filepath.Dir(real), "..", "..", "nvidia")
	if _, err := os.Stat(nvidia); err != nil {
		return nil
	}
	var errs []error
	for _, name := range cudaLibraries {
		matches, _ := filepath.Glob(filepath.Join(nvidia, "*", "lib", name+".*[0-9]"))
		slices.Sort(matches)
		for _, m := range matches {
			cs := C.CString(m)
			if msg := C.preload(cs); msg != nil {
				errs = append(errs, fmt.Errorf("load %s: %s", m, C.GoString(msg)))
			}
			C.free(unsafe.Pointer(cs))
		}
	}
	return errors.Join(errs...)
}

// gpuPresent is native.GPU, replaceable in tests.
var gpuPresent = native.GPU
