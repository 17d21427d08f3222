// Package native locates what `make setup` installs into .cache/native (ONNX Runtime, the PJRT
// plugins) and tells whether this machine has an NVIDIA GPU. It loads nothing itself.
package native

import (
	"os"
	"path/filepath"
)

// DirEnv names the environment variable that overrides the native folder (as in scripts/setup.sh).
const DirEnv = "MEDASSIST_NATIVE_DIR"

// Paths inside the native folder, as scripts/setup.sh lays them out.
const (
	// CPUPlugin is XLA's CPU PJRT plugin.
	CPUPlugin = "pjrt/cpu/pjrt_c_api_cpu_plugin.so"
	// CUDASitePackages holds the CUDA PJRT plugin, the NVIDIA runtime libraries and the ONNX Runtime
	// GPU build laid out as one Python site-packages, so that the libraries' $ORIGIN/../../nvidia
	// search paths resolve.
	CUDASitePackages = "cuda/site-packages"
	// CUDAPlugin is XLA's CUDA PJRT plugin (from the jax-cuda13-pjrt or jax-cuda12-pjrt wheel): a
	// pattern, as the folder names the CUDA version.
	CUDAPlugin = CUDASitePackages + "/jax_plugins/xla_cuda*/xla_cuda_plugin.so"
)

// relDir is the native folder relative to a repository root.
var relDir = filepath.Join(".cache", "native")

// Find returns the absolute path of rel (a path inside the native folder, possibly a glob
// pattern) in the first native folder that has it, and the paths it tried. The folders are
// $MEDASSIST_NATIVE_DIR when set, else .cache/native under each of Roots.
func Find(rel string) (path string, tried []string) {
	for _, dir := range Dirs() {
		p := filepath.Join(dir, rel)
		if m, _ := filepath.Glob(p); len(m) > 0 {
			if abs, err := filepath.Abs(m[len(m)-1]); err == nil { // the newest CUDA if several
				return abs, tried
			}
			return m[len(m)-1], tried
		}
		tried = append(tried, p)
	}
	return "", tried
}

// Dirs are the native folders searched, in order (see Find).
func Dirs() []string {
	if d := os.Getenv(DirEnv); d != "" {
		return []string{d}
	}
	roots := Roots()
	dirs := make([]string, len(roots))
	for i, r := range roots {
		dirs[i] = filepath.Join(r, relDir)
	}
	return dirs
}

// Roots are the folders that may hold .cache/native: the executable's repository (its parent
// folder, as `make build` writes bin/medassist) and the working directory upwards.
func Roots() []string {
	var roots []string
	if exe, err := os.Executable(); err == nil {
		if exe, err = filepath.EvalSymlinks(exe); err == nil {
			roots = append(roots, filepath.Dir(filepath.Dir(exe)))
		}
	}
	if wd, err := os.Getwd(); err == nil {
		for d := wd; ; d = filepath.Dir(d) {
			roots = append(roots, d)
			if filepath.Dir(d) == d {
				break
			}
		}
	}
	return roots
}

// GPU reports whether an NVIDIA GPU is visible to this process, from the device files the driver
// creates (/dev/nvidia0, ...): cheap, and loads no library. reason says what was found, for logs.
func GPU() (found bool, reason string) {
	return gpuIn(devGlob)
}

var devGlob = "/dev/nvidia[0-9]*"

func gpuIn(glob string) (bool, string) {
	m, _ := filepath.Glob(glob)
	if len(m) == 0 {
		return false, "no NVIDIA GPU (no " + glob + " device)"
	}
	return true, "NVIDIA GPU found (" + m[0] + ")"
}
