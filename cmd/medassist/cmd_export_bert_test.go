package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/medassist/medassist/internal/testutil"
	"github.com/medassist/medassist/model"
)

// A sentence-transformers BERT dir is recognised from its config.json and exported as an encoder
// with its tokenizer and pooling files.
func TestExportCommandWritesEncoderDir(t *testing.T) {
	src := testutil.MiniLM(t)
	out := filepath.Join(t.TempDir(), "onnx")
	if code := runMain([]string{"export", "--model", src, "--out", out, "--progress=false"}); code != 0 {
		t.Fatalf("export exited %d", code)
	}
	for _, f := range []string{"model.onnx", model.ConfigFile, "tokenizer.json", model.SentenceModulesFile,
		model.SentenceBertFile, "1_Pooling/config.json"} {
		if st, err := os.Stat(filepath.Join(out, f)); err != nil || st.Size() == 0 {
			t.Errorf("%s missing or empty in the export dir: %v", f, err)
		}
	}
	if code := runMain([]string{"export", "--model", src, "--out", t.TempDir(), "--quantize", "int8", "--progress=false"}); code == 0 {
		t.Error("a BERT encoder was exported with --quantize int8, which it does not implement")
	}
}
