package train

import (
	"bytes"
	"context"
	"log/slog"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/medassist/medassist/internal/native"
	"github.com/medassist/medassist/internal/testutil"
)

func TestValidBackend(t *testing.T) {
	for spec, want := range map[string]bool{
		"": true, "auto": true, "go": true, "xla:cpu": true, "xla:cuda": true, "xla:/opt/p.so": true,
		"xla:p.so": false, "cuda": false, "xla:": false,
	} {
		if got := validBackend(spec); got != want {
			t.Errorf("validBackend(%q) = %v, want %v", spec, got, want)
		}
	}
}

// TestAutoBackendFallsBackToGo: with no plugin installed, auto is pure Go and one log line says why.
func TestAutoBackendFallsBackToGo(t *testing.T) {
	t.Setenv(native.DirEnv, t.TempDir())
	var logs bytes.Buffer
	b, choice, err := OpenBackend(BackendAuto, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Finalize()
	if choice.Name != BackendGo || !strings.Contains(choice.Reason, "no XLA CPU plugin installed") {
		t.Fatalf("choice %+v", choice)
	}
	if out := logs.String(); strings.Count(out, "\n") != 1 || !strings.Contains(out, "backend=go") || !strings.Contains(out, "make setup") {
		t.Fatalf("want one line naming the backend and why, got:\n%s", out)
	}
	if _, _, err := OpenBackend(BackendCPU, nil); err == nil || !strings.Contains(err.Error(), "make setup") {
		t.Fatalf("xla:cpu without the plugin: %v", err)
	}
}

// TestAutoBackendTakesTheCPUPlugin: with the XLA CPU plugin installed (make setup) and no GPU,
// auto runs XLA on the CPU, and scores a model as pure Go does.
func TestAutoBackendTakesTheCPUPlugin(t *testing.T) {
	plugin, tried := native.Find(native.CPUPlugin)
	if plugin == "" {
		testutil.Missing(t, "XLA CPU plugin not installed (make setup); tried %v", tried)
	}
	if gpu, _ := native.GPU(); gpu {
		t.Skip("this machine has an NVIDIA GPU: auto prefers the CUDA plugin")
	}
	t.Setenv(native.DirEnv, filepath.Dir(filepath.Dir(filepath.Dir(plugin))))
	b, choice, err := OpenBackend(BackendAuto, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Finalize()
	if choice.Name != BackendCPU || choice.Plugin != plugin || !strings.Contains(choice.Reason, "no NVIDIA GPU") {
		t.Fatalf("choice %+v", choice)
	}
	examples := synthDataset(3, 0, 8).Val
	var ppl [2]float64
	for i, spec := range []string{BackendGo, BackendCPU} {
		if ppl[i], err = Perplexity(context.Background(), trainTestdata("tiny"), "", examples, spec); err != nil {
			t.Fatalf("%s: %v", spec, err)
		}
	}
	t.Logf("perplexity: go %.6f, xla:cpu %.6f", ppl[0], ppl[1])
	if math.Abs(ppl[0]-ppl[1]) > 1e-4*ppl[0] {
		t.Fatalf("perplexity: go %.6f, xla:cpu %.6f", ppl[0], ppl[1])
	}
}
