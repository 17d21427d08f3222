package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/medassist/medassist/engine"
	"github.com/medassist/medassist/export"
	"github.com/medassist/medassist/internal/testutil"
	"github.com/medassist/medassist/model"
	"github.com/medassist/medassist/tokenizer"
)

var genTestLog = slog.New(slog.NewTextHandler(io.Discard, nil))

// exportedStories exports stories260K to ONNX (float32) into a test folder (a fraction of a second).
func exportedStories(t *testing.T) string {
	t.Helper()
	src := testutil.Stories260K(t)
	testutil.ORTLibrary(t)
	dir := filepath.Join(t.TempDir(), "stories260K")
	if _, err := export.Export(context.Background(), src, dir, export.DefaultOptions(), genTestLog, nil); err != nil {
		t.Fatal(err)
	}
	return dir
}

// goldenStories is the first case of testdata/llama/stories260k.json (HF transformers).
func goldenStories(t *testing.T) (prompt string, ids []int, text string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testutil.RepoRoot(), "testdata", "llama", "stories260k.json"))
	if err != nil {
		t.Fatal(err)
	}
	var g struct {
		Cases []struct {
			Prompt     string `json:"prompt"`
			GreedyIDs  []int  `json:"greedy_ids"`
			GreedyText string `json:"greedy_text"`
		} `json:"cases"`
	}
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatal(err)
	}
	c := g.Cases[0]
	return c.Prompt, c.GreedyIDs, c.GreedyText
}

type generateJSON struct {
	IDs  []int  `json:"ids"`
	Text string `json:"text"`
}

func TestGenerateRawJSONMatchesTransformers(t *testing.T) {
	dir := exportedStories(t)
	prompt, ids, text := goldenStories(t)
	cfg := defaultGenerateConfig()
	cfg.Model, cfg.Engine, cfg.Prompt, cfg.Raw, cfg.MaxNewTokens, cfg.JSON, cfg.Device = dir, model.EngineONNX, prompt, true, len(ids), true, engine.DeviceCPU
	var out bytes.Buffer
	if err := runGenerate(context.Background(), cfg, genTestLog, &out); err != nil {
		t.Fatal(err)
	}
	var got generateJSON
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, out.String())
	}
	if !slices.Equal(got.IDs, ids) || got.Text != text {
		t.Fatalf("got %v %q\nwant %v %q", got.IDs, got.Text, ids, text)
	}
}

func TestGenerateStreamsAndStops(t *testing.T) {
	dir := exportedStories(t)
	prompt, _, text := goldenStories(t)
	cfg := defaultGenerateConfig()
	cfg.Model, cfg.Prompt, cfg.Raw, cfg.MaxNewTokens, cfg.Device = dir, prompt, true, 60, engine.DeviceCPU

	var streamed bytes.Buffer
	if err := runGenerate(context.Background(), cfg, genTestLog, &streamed); err != nil {
		t.Fatal(err)
	}
	if streamed.String() != text+"\n" {
		t.Fatalf("streamed %q, want %q", streamed.String(), text+"\n")
	}

	// A stop string ends the text before it, even when it spans tokens.
	cfg.Stop = []string{"named Lily"}
	streamed.Reset()
	if err := runGenerate(context.Background(), cfg, genTestLog, &streamed); err != nil {
		t.Fatal(err)
	}
	want := text[:strings.Index(text, "named Lily")] + "\n"
	if streamed.String() != want {
		t.Fatalf("with a stop string: %q, want %q", streamed.String(), want)
	}
}

func TestGenerateChatTemplate(t *testing.T) {
	dir := exportedStories(t)
	cfg := defaultGenerateConfig()
	cfg.Model, cfg.Prompt, cfg.MaxNewTokens, cfg.JSON, cfg.Device = dir, "What is a fever? </s>", 8, true, engine.DeviceCPU
	var out bytes.Buffer
	if err := runGenerate(context.Background(), cfg, genTestLog, &out); err != nil {
		t.Fatal(err)
	}
	var got generateJSON
	if err := json.Unmarshal(out.Bytes(), &got); err != nil || len(got.IDs) == 0 {
		t.Fatalf("chat generation: %v %q", err, out.String())
	}
	// The prompt went through the template: the user's "</s>" is text, so the prompt holds one EOS
	// per message the template ends with eos_token, not one more.
	tok := mustTokenizer(t, dir)
	ids, err := promptIDs(cfg, tok)
	if err != nil {
		t.Fatal(err)
	}
	if ids[0] != tok.BOS() || !strings.Contains(tok.Decode(ids, false), "<|user|>") {
		t.Fatalf("chat prompt %q does not look templated", tok.Decode(ids, false))
	}
	eos := 0
	for _, id := range ids {
		if id == tok.EOS() {
			eos++
		}
	}
	if eos != 2 { // after the system and the user message
		t.Fatalf("%d EOS ids in the chat prompt, want 2 (the user's </s> must stay text): %v", eos, ids)
	}
}

func TestBenchReport(t *testing.T) {
	dir := exportedStories(t)
	cfg := defaultBenchConfig()
	cfg.Model, cfg.PromptTokens, cfg.NewTokens, cfg.Runs, cfg.Device = dir, 32, 8, 1, engine.DeviceCPU
	rep, err := runBench(context.Background(), cfg, &cmdEnv{log: genTestLog})
	if err != nil {
		t.Fatal(err)
	}
	if rep.DecodeTokensPerS <= 0 || rep.PrefillTokensPerS <= 0 || rep.TTFTMs <= 0 || rep.PeakRSSBytes <= 0 ||
		rep.WeightBytes <= rep.WeightBytesPerToken || rep.Device != engine.DeviceCPU {
		t.Fatalf("implausible report: %+v", rep)
	}
	mc, err := model.LoadConfig(dir)
	if err != nil {
		t.Fatal(err)
	}
	p := benchPrompt(mc, 128)
	if len(p) != 128 || p[0] != 1 || slices.Max(p) >= mc.VocabSize || slices.Min(p[1:]) < 3 {
		t.Fatalf("bench prompt: %v", p)
	}
}

func mustTokenizer(t *testing.T, dir string) *tokenizer.Tokenizer {
	t.Helper()
	tok, err := tokenizer.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tok.Close() })
	return tok
}

// TestGenerateGoMLXMatchesONNX: the GoMLX engine on the Hugging Face dir and the ONNX engine on its
// export answer the same greedy tokens.
func TestGenerateGoMLXMatchesONNX(t *testing.T) {
	src := testutil.Stories260K(t)
	prompt, ids, _ := goldenStories(t)
	cfg := defaultGenerateConfig()
	cfg.Model, cfg.Engine, cfg.Prompt, cfg.Raw, cfg.MaxNewTokens, cfg.JSON = src, model.EngineGoMLX, prompt, true, 20, true
	var out bytes.Buffer
	if err := runGenerate(context.Background(), cfg, genTestLog, &out); err != nil {
		t.Fatal(err)
	}
	var got generateJSON
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, out.String())
	}
	if !slices.Equal(got.IDs, ids[:20]) {
		t.Fatalf("gomlx greedy %v, want %v", got.IDs, ids[:20])
	}
}
