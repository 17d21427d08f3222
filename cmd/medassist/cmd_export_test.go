package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/medassist/medassist/internal/testutil"
	"github.com/medassist/medassist/model"
)

func TestExportCommandWritesModelDir(t *testing.T) {
	src := testutil.Stories260K(t)
	out := filepath.Join(t.TempDir(), "onnx")
	if code := runMain([]string{"export", "--model", src, "--out", out, "--quantize", "int4", "--external-data", "always"}); code != 0 {
		t.Fatalf("export exited %d", code)
	}
	for _, f := range []string{"model.onnx", "model.onnx.data", model.ConfigFile, "tokenizer.json", model.GenerationConfigFile} {
		if st, err := os.Stat(filepath.Join(out, f)); err != nil || st.Size() == 0 {
			t.Errorf("%s missing or empty in the export dir: %v", f, err)
		}
	}
}

func TestExportCommandRejectsBadOptions(t *testing.T) {
	for _, args := range [][]string{
		{"export", "--out", t.TempDir()},                                         // no --model
		{"export", "--model", "m", "--out", "o", "--quantize", "int3"},           // unknown quantization
		{"export", "--model", "m", "--out", "o", "--dtype", "bfloat16"},          // unsupported dtype
		{"export", "--model", "m", "--out", "o", "--external-data", "sometimes"}, // unknown mode
	} {
		if code := runMain(args); code != 2 {
			t.Errorf("%v exited %d, want 2 (usage error)", args, code)
		}
	}
}
