package model

import (
	"math"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// The large-model tests load a big model (MEDASSIST_LARGE_MODEL=DIR) and check that the process's
// peak resident memory stays below 1.3× the weights' size: the mapped file is the only copy. They
// are skipped unless the variable is set. `make test-large` makes a TinyLlama-shaped random model
// (4.4 GB, once, under out/) and runs each test in a process of its own (peak RSS is per process).

// TestLargeModelFloat32 converts every tensor to float32, one at a time.
func TestLargeModelFloat32(t *testing.T) {
	dir := largeModelDir(t)
	fileBytes := weightFileBytes(t, dir)
	w, err := OpenWeights(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	var elems int64
	var sumSq float64
	for _, n := range w.Names() {
		v, err := w.Float32(n)
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range v {
			sumSq += float64(x) * float64(x)
		}
		elems += int64(len(v))
	}
	t.Logf("%d tensors, %d elements, rms %.4g", len(w.Names()), elems, math.Sqrt(sumSq/float64(elems)))
	checkPeakRSS(t, fileBytes)
}

// TestLargeModelTouchBytes reads every byte of every tensor through the zero-copy views and keeps
// them all mapped: the worst case, with the whole file resident.
func TestLargeModelTouchBytes(t *testing.T) {
	dir := largeModelDir(t)
	fileBytes := weightFileBytes(t, dir)
	w, err := OpenWeights(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	var sum uint64
	var n int64
	for _, name := range w.Names() {
		b, err := w.Bytes(name)
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range b {
			sum += uint64(x)
		}
		n += int64(len(b))
	}
	if n == 0 || sum == 0 {
		t.Fatal("no data read")
	}
	t.Logf("%d tensors, %d bytes read", len(w.Names()), n)
	checkPeakRSS(t, fileBytes)
}

func largeModelDir(t *testing.T) string {
	dir := os.Getenv("MEDASSIST_LARGE_MODEL")
	if dir == "" {
		t.Skip("set MEDASSIST_LARGE_MODEL=DIR to load a large model")
	}
	return dir
}

func checkPeakRSS(t *testing.T, fileBytes int64) {
	t.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	peak := ru.Maxrss * 1024
	ratio := float64(peak) / float64(fileBytes)
	t.Logf("weight files %d bytes, peak RSS %d bytes (%.3f×)", fileBytes, peak, ratio)
	if ratio >= 1.3 {
		t.Fatalf("peak RSS %.3f× the weights' size, want < 1.3×", ratio)
	}
}

func weightFileBytes(t *testing.T, dir string) int64 {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.safetensors"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no safetensors files in %s", dir)
	}
	var total int64
	for _, f := range files {
		st, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		total += st.Size()
	}
	return total
}
