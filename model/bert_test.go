package model

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/medassist/medassist/internal/testutil"
)

func TestDetectArchitecture(t *testing.T) {
	for _, c := range []struct {
		config string
		want   Architecture
	}{
		{`{"model_type":"bert","architectures":["BertModel"]}`, ArchBert},
		{`{"architectures":["BertForMaskedLM"]}`, ArchBert},
		{`{"model_type":"llama"}`, ArchLlama},
		{`{"hidden_size":8}`, ArchLlama},
	} {
		dir := t.TempDir()
		writeModelJSON(t, dir, ConfigFile, c.config)
		if got, err := DetectArchitecture(dir); err != nil || got != c.want {
			t.Errorf("%s: %q, %v; want %q", c.config, got, err, c.want)
		}
	}
	dir := t.TempDir()
	writeModelJSON(t, dir, ConfigFile, `{"model_type":"gpt2"}`)
	if _, err := DetectArchitecture(dir); err == nil {
		t.Error("model_type gpt2 accepted")
	}
}

func TestMiniLMConfigs(t *testing.T) {
	dir := testutil.MiniLM(t)
	cfg, err := LoadBertConfig(dir)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.HiddenSize != 384 || cfg.NumHiddenLayers != 6 || cfg.HeadDim() != 32 || len(cfg.TensorNames()) != 5+6*16 {
		t.Errorf("config %+v, %d tensors", cfg, len(cfg.TensorNames()))
	}
	st, err := LoadSentenceConfig(dir)
	if err != nil {
		t.Fatal(err)
	}
	if st.MaxSeqLength != 256 || st.Pooling != PoolMean || !st.Normalize || st.Dim != 384 {
		t.Errorf("sentence config %+v, want max 256, mean pooling, normalised, 384", st)
	}
	if arch, err := DetectArchitecture(dir); err != nil || arch != ArchBert {
		t.Errorf("DetectArchitecture = %q, %v", arch, err)
	}
}

func TestLoadSentenceConfigErrors(t *testing.T) {
	if _, err := LoadSentenceConfig(t.TempDir()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("dir without modules.json: %v, want ErrNotExist", err)
	}
	dir := t.TempDir()
	writeModelJSON(t, dir, SentenceModulesFile, `[{"path":"","type":"sentence_transformers.models.Transformer"},
		{"path":"1_Pooling","type":"sentence_transformers.models.Pooling"},{"path":"2_Dense","type":"sentence_transformers.models.Dense"}]`)
	writeModelJSON(t, dir, SentenceBertFile, `{"max_seq_length":128}`)
	if err := os.MkdirAll(filepath.Join(dir, "1_Pooling"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeModelJSON(t, dir, "1_Pooling/config.json", `{"word_embedding_dimension":8,"pooling_mode_max_tokens":true}`)
	_, err := LoadSentenceConfig(dir)
	if err == nil || errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Dense module and max pooling: %v, want an error naming them", err)
	}
	t.Log(err)
}
