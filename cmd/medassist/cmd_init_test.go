package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/medassist/medassist/model"
)

const initTestConfig = `{"architectures":["LlamaForCausalLM"],"model_type":"llama","hidden_size":32,"intermediate_size":48,
"num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":2,"vocab_size":64,"max_position_embeddings":128,
"rms_norm_eps":1e-5,"bos_token_id":1,"eos_token_id":2,"tie_word_embeddings":false,"torch_dtype":"bfloat16"}`

// initSource is a config dir with a tokenizer_config.json beside config.json.
func initSource(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range map[string]string{
		model.ConfigFile:          initTestConfig,
		model.TokenizerConfigFile: `{"bos_token":"<s>","eos_token":"</s>","chat_template":"{{ messages[0].content }}"}`,
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func runInitCommand(t *testing.T, args ...string) int {
	t.Helper()
	return runMain(append([]string{"init"}, args...))
}

func TestInitIsDeterministicPerSeed(t *testing.T) {
	src := initSource(t)
	tmp := t.TempDir()
	out := func(name string) string { return filepath.Join(tmp, name) }
	for _, c := range []struct{ dir, seed string }{{"a", "3"}, {"b", "3"}, {"c", "4"}} {
		if code := runInitCommand(t, "--from-config", src, "--random", "--seed", c.seed, "--out", out(c.dir)); code != 0 {
			t.Fatalf("init exited %d", code)
		}
	}
	read := func(dir, name string) []byte {
		b, err := os.ReadFile(filepath.Join(out(dir), name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	if !bytes.Equal(read("a", model.SafetensorsFile), read("b", model.SafetensorsFile)) {
		t.Fatal("the same seed wrote different weights")
	}
	if bytes.Equal(read("a", model.SafetensorsFile), read("c", model.SafetensorsFile)) {
		t.Fatal("different seeds wrote the same weights")
	}
	if !bytes.Equal(read("a", model.ConfigFile), read("c", model.ConfigFile)) {
		t.Fatal("config.json depends on the seed")
	}
	if got := read("a", model.TokenizerConfigFile); !bytes.Contains(got, []byte("chat_template")) {
		t.Fatalf("tokenizer_config.json not copied: %s", got)
	}
	cfg, err := model.LoadConfig(out("a"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.TorchDtype != "float32" || cfg.HiddenSize != 32 {
		t.Fatalf("config.json: %+v", cfg)
	}
	w, err := model.OpenWeights(out("a"))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if len(w.Names()) != len(cfg.TensorNames()) {
		t.Fatalf("%d tensors, want %d", len(w.Names()), len(cfg.TensorNames()))
	}
	norm, err := w.Float32(model.FinalNorm)
	if err != nil || norm[0] != 1 {
		t.Fatalf("final norm %v %v", norm, err)
	}
}

func TestInitDtypeAndShards(t *testing.T) {
	src := initSource(t)
	out := filepath.Join(t.TempDir(), "m")
	if code := runInitCommand(t, "--from-config", src, "--random", "--seed", "1", "--out", out,
		"--dtype", "bfloat16", "--max-shard-size", "8KB"); code != 0 {
		t.Fatalf("init exited %d", code)
	}
	shards, _ := filepath.Glob(filepath.Join(out, "model-*-of-*.safetensors"))
	if len(shards) < 2 {
		t.Fatalf("want several shards under 8KB, got %v", shards)
	}
	w, err := model.OpenWeights(out)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	info, _ := w.Info(model.EmbedTokens)
	if info.DType != model.BF16 {
		t.Fatalf("dtype %s", info.DType)
	}
	for _, s := range shards {
		st, _ := os.Stat(s)
		if st.Size() > 8000+4096 { // the data limit plus the header
			t.Fatalf("%s is %d bytes", s, st.Size())
		}
	}
}

func TestInitRejectsBadCommandLines(t *testing.T) {
	src := initSource(t)
	out := filepath.Join(t.TempDir(), "m")
	for _, args := range [][]string{
		{"--from-config", src, "--seed", "1", "--out", out},                          // no --random
		{"--from-config", src, "--random", "--out", out, "--dtype", "int8"},          // bad dtype
		{"--from-config", src, "--random", "--out", out, "--max-shard-size", "lots"}, // bad size
		{"--random", "--out", out},                                                   // no source
		{"--from-config", src, "--random", "--out", out, "extra"},                    // positional
	} {
		if code := runInitCommand(t, args...); code != 2 {
			t.Errorf("%v: exit %d, want 2 (usage)", args, code)
		}
	}
	if code := runInitCommand(t, "--from-config", t.TempDir(), "--random", "--out", out); code != 1 {
		t.Errorf("missing config.json: exit %d, want 1", code)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("a failed init left %s behind", out)
	}
}

func TestParseByteSize(t *testing.T) {
	for in, want := range map[string]int64{
		"2GB": 2_000_000_000, "2GiB": 2 << 30, "500MB": 500_000_000, "10kib": 10240, "123": 123,
		"0": 0, "1.5GB": 1_500_000_000, " 7 MB ": 7_000_000, "64B": 64,
	} {
		if got, err := parseByteSize(in); err != nil || got != want {
			t.Errorf("parseByteSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "GB", "-1GB", "2XB", "lots"} {
		if _, err := parseByteSize(bad); err == nil {
			t.Errorf("parseByteSize(%q) accepted", bad)
		}
	}
}
