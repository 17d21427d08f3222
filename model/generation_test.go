package model

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/medassist/medassist/internal/testutil"
)

func TestLoadGenerationConfigTinyLlama(t *testing.T) {
	g, err := LoadGenerationConfig(testutil.TinyLlamaConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	// generation_config.json: bos 1, eos 2, pad 0, max_length 2048; the rest are HF defaults.
	if g.BOSTokenID != 1 || !slices.Equal(g.EOSTokenIDs, []int{2}) || g.PadTokenID != 0 || g.MaxLength != 2048 {
		t.Fatalf("%+v", g)
	}
	if g.Temperature != 1 || g.TopP != 1 || g.TopK != 50 || g.RepetitionPenalty != 1 || g.DoSample {
		t.Fatalf("defaults: %+v", g)
	}
	if !g.IsEOS(2) || g.IsEOS(1) {
		t.Fatal("IsEOS")
	}
}

func writeModelJSON(t *testing.T, dir, name, body string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

const tinyConfigJSON = `{"model_type":"llama","hidden_size":16,"intermediate_size":24,"num_hidden_layers":2,
"num_attention_heads":4,"num_key_value_heads":2,"vocab_size":40,"max_position_embeddings":64,
"bos_token_id":5,"eos_token_id":[6,7],"initializer_range":0.5,"tie_word_embeddings":false,"custom_key":"kept"}`

func TestGenerationConfigFallsBackToConfig(t *testing.T) {
	dir := t.TempDir()
	writeModelJSON(t, dir, ConfigFile, tinyConfigJSON)
	g, err := LoadGenerationConfig(dir) // no generation_config.json
	if err != nil {
		t.Fatal(err)
	}
	if g.BOSTokenID != 5 || !slices.Equal(g.EOSTokenIDs, []int{6, 7}) || g.PadTokenID != 6 || g.MaxLength != 64 {
		t.Fatalf("%+v", g)
	}
	writeModelJSON(t, dir, GenerationConfigFile, `{"eos_token_id":9,"temperature":0.7,"top_p":0.9,"top_k":0,"do_sample":true,"max_new_tokens":12,"repetition_penalty":1.1}`)
	g, err = LoadGenerationConfig(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(g.EOSTokenIDs, []int{9}) || g.PadTokenID != 9 || g.BOSTokenID != 5 || g.Temperature != 0.7 ||
		g.TopP != 0.9 || g.TopK != 0 || !g.DoSample || g.MaxNewTokens != 12 || g.RepetitionPenalty != 1.1 {
		t.Fatalf("%+v", g)
	}
	writeModelJSON(t, dir, GenerationConfigFile, `{"top_p":1.5,"temperature":-1}`)
	if _, err := LoadGenerationConfig(dir); err == nil || !strings.Contains(err.Error(), "top_p") || !strings.Contains(err.Error(), "temperature") {
		t.Fatalf("bad ranges: %v", err)
	}
	writeModelJSON(t, dir, GenerationConfigFile, `{`)
	if _, err := LoadGenerationConfig(dir); err == nil || !strings.Contains(err.Error(), "bad JSON") {
		t.Fatalf("bad JSON: %v", err)
	}
}

func TestCopyModelFilesSkipsAbsent(t *testing.T) {
	src, dst := t.TempDir(), filepath.Join(t.TempDir(), "out")
	writeModelJSON(t, src, "tokenizer.json", `{"x":1}`)
	writeModelJSON(t, src, GenerationConfigFile, `{}`)
	if err := CopyModelFiles(src, dst, TokenizerFiles); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(dst)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if !slices.Equal(names, []string{GenerationConfigFile, "tokenizer.json"}) {
		t.Fatalf("copied %v", names)
	}
	if b, _ := os.ReadFile(filepath.Join(dst, "tokenizer.json")); string(b) != `{"x":1}` {
		t.Fatalf("content %q", b)
	}
	if err := CopyModelFiles(src, src, TokenizerFiles); err != nil { // onto itself: a no-op
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(src, "tokenizer.json")); string(b) != `{"x":1}` {
		t.Fatalf("copy onto itself changed the file: %q", b)
	}
}

// StopIDs: generation_config.json, else config.json, else the tokenizer's EOS; a malformed file is
// an error that names it.
func TestStopIDs(t *testing.T) {
	const noEOSConfig = `{"hidden_size":16,"intermediate_size":24,"num_hidden_layers":1,"num_attention_heads":4,"vocab_size":40}`
	for _, tc := range []struct {
		name       string
		config     string // "" = no config.json
		genConfig  string // "" = no generation_config.json
		tokEOS     int
		want       []int
		errMention string
	}{
		{"generation_config first", tinyConfigJSON, `{"eos_token_id":[9,3]}`, 1, []int{9, 3}, ""},
		{"config.json when generation_config lacks eos", tinyConfigJSON, `{"temperature":0.5}`, 1, []int{6, 7}, ""},
		{"config.json when generation_config is missing", tinyConfigJSON, "", 1, []int{6, 7}, ""},
		{"tokenizer last", noEOSConfig, `{}`, 4, []int{4}, ""},
		{"no files, tokenizer", "", "", 4, []int{4}, ""},
		{"nothing anywhere", noEOSConfig, "", -1, nil, "no eos_token_id"},
		{"malformed generation_config", tinyConfigJSON, `{"eos_token_id":`, 1, nil, GenerationConfigFile},
		{"eos of the wrong type", tinyConfigJSON, `{"eos_token_id":"2"}`, 1, nil, GenerationConfigFile},
		{"bad value in generation_config", tinyConfigJSON, `{"top_p":2}`, 1, nil, GenerationConfigFile},
		{"malformed config.json", `{"hidden_size":`, "", 1, nil, ConfigFile},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if tc.config != "" {
				writeModelJSON(t, dir, ConfigFile, tc.config)
			}
			if tc.genConfig != "" {
				writeModelJSON(t, dir, GenerationConfigFile, tc.genConfig)
			}
			got, err := StopIDs(dir, tc.tokEOS)
			if tc.errMention != "" {
				if err == nil || !strings.Contains(err.Error(), tc.errMention) {
					t.Fatalf("got %v, %v; want an error mentioning %q", got, err, tc.errMention)
				}
				return
			}
			if err != nil || !slices.Equal(got, tc.want) {
				t.Fatalf("got %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}

func TestResolveEngine(t *testing.T) {
	hf, exported := t.TempDir(), t.TempDir()
	writeModelJSON(t, exported, OnnxModelFile, "onnx")
	for _, tc := range []struct{ kind, dir, want string }{
		{EngineAuto, hf, EngineGoMLX},
		{EngineAuto, exported, EngineONNX},
		{EngineGoMLX, exported, EngineGoMLX},
		{EngineONNX, hf, EngineONNX},
	} {
		if got := ResolveEngine(tc.kind, tc.dir); got != tc.want {
			t.Errorf("ResolveEngine(%q, %s) = %q, want %q", tc.kind, tc.dir, got, tc.want)
		}
	}
}
