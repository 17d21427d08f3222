package native

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestFindHonoursTheNativeDirVariable(t *testing.T) {
	dir := t.TempDir()
	t.Setenv(DirEnv, dir)
	if p, tried := Find(CPUPlugin); p != "" || len(tried) != 1 || tried[0] != filepath.Join(dir, CPUPlugin) {
		t.Fatalf("empty dir: found %q, tried %v", p, tried)
	}
	want := filepath.Join(dir, CPUPlugin)
	if err := os.MkdirAll(filepath.Dir(want), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(want, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if p, _ := Find(CPUPlugin); p != want {
		t.Fatalf("found %q, want %q", p, want)
	}
}

func TestDirsSearchUpwardsWithoutTheVariable(t *testing.T) {
	t.Setenv(DirEnv, "")
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	// The working directory (internal/native) and the repository root two levels up are both searched.
	dirs := strings.Join(Dirs(), "\n")
	for _, d := range []string{wd, filepath.Dir(filepath.Dir(wd))} {
		if !strings.Contains(dirs, filepath.Join(d, ".cache", "native")) {
			t.Errorf("%s not searched: %v", d, dirs)
		}
	}
}

func TestGPUDetectionFromDeviceFiles(t *testing.T) {
	dir := t.TempDir()
	glob := filepath.Join(dir, "nvidia[0-9]*")
	if found, why := gpuIn(glob); found || !strings.Contains(why, "no NVIDIA GPU") {
		t.Fatalf("no device files: %v %q", found, why)
	}
	if err := os.WriteFile(filepath.Join(dir, "nvidiactl"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if found, _ := gpuIn(glob); found {
		t.Fatal("nvidiactl alone is not a GPU")
	}
	if err := os.WriteFile(filepath.Join(dir, "nvidia0"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if found, why := gpuIn(glob); !found || !strings.Contains(why, "nvidia0") {
		t.Fatalf("nvidia0: %v %q", found, why)
	}
}
