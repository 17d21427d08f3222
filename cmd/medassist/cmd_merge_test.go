package main

import (
	"math"
	"path/filepath"
	"testing"

	"github.com/medassist/medassist/internal/testutil"
	"github.com/medassist/medassist/model"
)

// TestMergeCommand merges the HF PEFT adapter in testdata/merge through the command line and
// compares with PEFT's merge_and_unload.
func TestMergeCommand(t *testing.T) {
	td := filepath.Join(testutil.RepoRoot(), "testdata", "merge")
	out := filepath.Join(t.TempDir(), "merged")
	if code := runMain([]string{"merge", "--base", filepath.Join(td, "base"), "--adapter", filepath.Join(td, "rslora", "adapter"), "--out", out}); code != 0 {
		t.Fatalf("merge exited %d", code)
	}
	got, err := model.OpenWeights(out)
	if err != nil {
		t.Fatal(err)
	}
	defer got.Close()
	want, err := model.OpenWeights(filepath.Join(td, "rslora", "merged"))
	if err != nil {
		t.Fatal(err)
	}
	defer want.Close()
	for _, n := range want.Names() {
		g, err := got.Float32(n)
		if err != nil {
			t.Fatal(err)
		}
		w, _ := want.Float32(n)
		for i := range w {
			if math.Abs(float64(g[i]-w[i])) > 1e-5 {
				t.Fatalf("%s[%d] = %g, PEFT %g", n, i, g[i], w[i])
			}
		}
	}
	if code := runMain([]string{"merge", "--base", filepath.Join(td, "base"), "--out", out}); code != 2 {
		t.Fatalf("merge without --adapter exited %d, want 2 (usage)", code)
	}
}
