package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/medassist/medassist/internal/testutil"
	"github.com/medassist/medassist/model"
)

// A model dir laid out as transformers ≥ 4.43 saves it — the chat template in chat_template.jinja,
// none in tokenizer_config.json — chats with the same prompt as the original layout, instead of
// reporting that the model has no chat format.
func TestGenerateReadsChatTemplateJinja(t *testing.T) {
	src := testutil.Stories260K(t)
	dir := t.TempDir()
	if err := model.CopyModelFiles(src, dir, append([]string{model.ConfigFile, model.SafetensorsFile}, model.TokenizerFiles...)); err != nil {
		t.Fatal(err)
	}
	var tc map[string]any
	b, err := os.ReadFile(filepath.Join(src, model.TokenizerConfigFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &tc); err != nil {
		t.Fatal(err)
	}
	source, ok := tc["chat_template"].(string)
	if !ok || source == "" {
		t.Fatalf("%s has no chat_template string", src)
	}
	delete(tc, "chat_template")
	b, _ = json.Marshal(tc)
	for name, data := range map[string][]byte{model.TokenizerConfigFile: b, model.ChatTemplateFile: []byte(source)} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	cfg := defaultGenerateConfig()
	cfg.Engine, cfg.Prompt, cfg.MaxNewTokens, cfg.Temperature, cfg.JSON = model.EngineGoMLX, "What is a fever?", 4, 0, true
	prompts := map[string][]int{}
	for name, d := range map[string]string{"original": src, "jinja": dir} {
		cfg.Model = d
		ids, err := promptIDs(cfg, mustTokenizer(t, d))
		if err != nil {
			t.Fatalf("%s layout: %v", name, err)
		}
		prompts[name] = ids
	}
	if !slices.Equal(prompts["original"], prompts["jinja"]) {
		t.Fatalf("chat prompt from chat_template.jinja %v differs from tokenizer_config.json's %v", prompts["jinja"], prompts["original"])
	}
	cfg.Model = dir
	var out bytes.Buffer
	if err := runGenerate(context.Background(), cfg, genTestLog, &out); err != nil {
		t.Fatal(err)
	}
	var got generateJSON
	if err := json.Unmarshal(out.Bytes(), &got); err != nil || len(got.IDs) == 0 {
		t.Fatalf("generate on a chat_template.jinja dir: %v %q", err, out.String())
	}
}
