package main

import (
	"path/filepath"
	"testing"

	"github.com/medassist/medassist/internal/testutil"
	"github.com/medassist/medassist/serve"
)

// prepare exports a local Hugging Face folder into the model dir with a stamp, as serve would at start.
func TestPrepareCommandStampsExport(t *testing.T) {
	src := testutil.Stories260K(t)
	dir := filepath.Join(t.TempDir(), "model")
	if code := runMain([]string{"prepare", "--model-id", src, "--model-dir", dir, "--quantize", "int8"}); code != 0 {
		t.Fatalf("prepare exited %d", code)
	}
	st, err := serve.ReadStamp(dir)
	if err != nil {
		t.Fatal(err)
	}
	if st.ModelID != src || st.Quantize != "int8" {
		t.Errorf("stamp %+v", st)
	}
	if code := runMain([]string{"prepare", "--model-id", src, "--model-dir", dir, "--quantize", "int3"}); code != 2 {
		t.Errorf("prepare --quantize int3 exited %d, want 2 (usage error)", code)
	}
}
