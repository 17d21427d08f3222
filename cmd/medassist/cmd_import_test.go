package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/medassist/medassist/engine"
	"github.com/medassist/medassist/export"
	"github.com/medassist/medassist/generation"
	"github.com/medassist/medassist/internal/testutil"
	"github.com/medassist/medassist/model"
)

// smolGolden is testdata/gguf/smollm2.json (tools/oracle/gguf_golden.py: transformers loading
// SmolLM2-135M-Instruct.Q4_1.gguf with gguf_file=..., float32).
type smolGolden struct {
	Config struct {
		HiddenSize        int     `json:"hidden_size"`
		IntermediateSize  int     `json:"intermediate_size"`
		NumHiddenLayers   int     `json:"num_hidden_layers"`
		NumAttentionHeads int     `json:"num_attention_heads"`
		NumKeyValueHeads  int     `json:"num_key_value_heads"`
		VocabSize         int     `json:"vocab_size"`
		MaxPositions      int     `json:"max_position_embeddings"`
		RMSNormEps        float64 `json:"rms_norm_eps"`
		TieWordEmbeddings bool    `json:"tie_word_embeddings"`
		BOSTokenID        int     `json:"bos_token_id"`
		EOSTokenID        int     `json:"eos_token_id"`
	} `json:"config"`
	RopeTheta float64 `json:"rope_theta"`
	Tensors   map[string]struct {
		Shape  []int  `json:"shape"`
		SHA256 string `json:"sha256"`
	} `json:"tensors"`
	Logits []struct {
		Prompt    string `json:"prompt"`
		IDs       []int  `json:"ids"`
		Positions []struct {
			IDs    []int     `json:"ids"`
			Values []float32 `json:"values"`
			Argmax int       `json:"argmax"`
		} `json:"positions"`
	} `json:"logits"`
	Greedy []struct {
		Kind      string `json:"kind"`
		Prompt    string `json:"prompt"`
		PromptIDs []int  `json:"prompt_ids"`
		IDs       []int  `json:"ids"`
		Text      string `json:"text"`
	} `json:"greedy"`
}

// logitTolerance is the largest |Δ| allowed between ONNX Runtime's and transformers' float32 logits.
const logitTolerance = 1e-4

// TestImportSmolLM2 imports the real SmolLM2 GGUF once, exports it to ONNX once, and checks every
// stage against transformers loading the same file: weights bit for bit, config, logits to 1e-4,
// and greedy continuations of raw and chat prompts through both engines.
func TestImportSmolLM2(t *testing.T) {
	file := testutil.SmolLM2GGUF(t)
	ortLib := testutil.ORTLibrary(t)
	var g smolGolden
	b, err := os.ReadFile(filepath.Join(testutil.RepoRoot(), "testdata", "gguf", "smollm2.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	hfDir, onnxDir := filepath.Join(root, "hf"), filepath.Join(root, "onnx")
	devNull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer devNull.Close()
	cfg := defaultImportConfig()
	cfg.Out = hfDir
	start := time.Now()
	if err := runImport(context.Background(), file, cfg, &cmdEnv{log: genTestLog, stdout: devNull}); err != nil {
		t.Fatal(err)
	}
	t.Logf("import: %v", time.Since(start).Round(time.Millisecond))

	t.Run("weights", func(t *testing.T) { checkImportedWeights(t, hfDir, &g) })
	t.Run("config", func(t *testing.T) { checkImportedConfig(t, hfDir, &g) })
	// Each engine run loads the model anew (seconds each), so each engine takes a few of the cases:
	// GoMLX the first 12 tokens of a chat prompt on the imported dir (its pure-Go decoding is the
	// slow part of this test), ONNX Runtime a raw and a chat prompt on its export.
	t.Run("gomlx-greedy", func(t *testing.T) { checkGreedy(t, hfDir, model.EngineGoMLX, &g, "chat", 1, 12) })

	start = time.Now()
	if _, err := export.Export(context.Background(), hfDir, onnxDir, export.DefaultOptions(), genTestLog, nil); err != nil {
		t.Fatal(err)
	}
	t.Logf("export: %v", time.Since(start).Round(time.Millisecond))
	t.Run("onnx-logits", func(t *testing.T) { checkLogits(t, onnxDir, ortLib, &g) })
	t.Run("onnx-greedy", func(t *testing.T) {
		checkGreedy(t, onnxDir, model.EngineONNX, &g, "raw", 0, 0)
		checkGreedy(t, onnxDir, model.EngineONNX, &g, "chat", 0, 0)
	})
}

func checkImportedWeights(t *testing.T, dir string, g *smolGolden) {
	w, err := model.OpenWeights(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if len(w.Names()) != len(g.Tensors) {
		t.Errorf("%d tensors, transformers has %d", len(w.Names()), len(g.Tensors))
	}
	for name, want := range g.Tensors {
		info, ok := w.Info(name)
		if !ok {
			t.Errorf("%s missing", name)
			continue
		}
		data, err := w.Bytes(name)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(data)
		if info.DType != model.F32 || !slices.Equal(info.Shape, want.Shape) || hex.EncodeToString(sum[:]) != want.SHA256 {
			t.Errorf("%s: %s%v sha256 %x, transformers F32%v %s", name, info.DType, info.Shape, sum[:6], want.Shape, want.SHA256[:12])
		}
		w.Release(name)
	}
}

func checkImportedConfig(t *testing.T, dir string, g *smolGolden) {
	c, err := model.LoadConfig(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := g.Config
	if c.HiddenSize != want.HiddenSize || c.IntermediateSize != want.IntermediateSize || c.NumHiddenLayers != want.NumHiddenLayers ||
		c.NumAttentionHeads != want.NumAttentionHeads || c.NumKeyValueHeads != want.NumKeyValueHeads || c.VocabSize != want.VocabSize ||
		c.MaxPositionEmbeddings != want.MaxPositions || c.TieWordEmbeddings != want.TieWordEmbeddings || c.RopeTheta != g.RopeTheta ||
		*c.BOSTokenID != want.BOSTokenID || !slices.Equal(c.EOSTokenIDs(), []int{want.EOSTokenID}) ||
		float32(c.RMSNormEps) != float32(want.RMSNormEps) {
		t.Errorf("config %+v\ntransformers %+v rope_theta %g", *c, want, g.RopeTheta)
	}
	if _, err := model.LoadChatTemplate(dir); err != nil {
		t.Errorf("chat template: %v", err)
	}
}

func checkLogits(t *testing.T, dir, ortLib string, g *smolGolden) {
	e, err := engine.Open(engine.Config{ModelDir: dir, ORTLib: ortLib, Device: engine.DeviceCPU}, genTestLog)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	tok := mustTokenizer(t, dir)
	worst := 0.0
	for _, c := range g.Logits {
		if ids := tok.Encode(c.Prompt, true); !slices.Equal(ids, c.IDs) {
			t.Errorf("%q tokenizes to %v, transformers %v", c.Prompt, ids, c.IDs)
		}
		out, err := e.Forward([][]int{c.IDs})
		if err != nil {
			t.Fatal(err)
		}
		for p, want := range c.Positions {
			row := out[0][p]
			got := make([]float32, len(want.IDs))
			for i, id := range want.IDs {
				got[i] = row[id]
			}
			d := testutil.MaxAbsDiff(got, want.Values)
			worst = max(worst, d)
			if d > logitTolerance || generation.Argmax(row) != want.Argmax {
				t.Errorf("%q position %d: max |Δ| %.3g, argmax %d (transformers %d)", c.Prompt, p, d, generation.Argmax(row), want.Argmax)
			}
		}
	}
	t.Logf("logits: max |Δ| %.3g against transformers over %d prompts", worst, len(g.Logits))
}

// checkGreedy runs `medassist generate` (greedy) with the engine on dir for the golden case number
// i of a kind (raw or chat) and compares the prompt ids, the new ids and the text with
// transformers' generate; n > 0 compares the first n new tokens (a greedy prefix) only.
func checkGreedy(t *testing.T, dir, engineKind string, g *smolGolden, kind string, i, n int) {
	tok := mustTokenizer(t, dir)
	var cases []int
	for k, c := range g.Greedy {
		if c.Kind == kind {
			cases = append(cases, k)
		}
	}
	if i >= len(cases) {
		t.Fatalf("no %s case %d in the golden file", kind, i)
	}
	for _, c := range g.Greedy[cases[i] : cases[i]+1] {
		cfg := defaultGenerateConfig()
		cfg.Model, cfg.Engine, cfg.Prompt, cfg.Raw, cfg.SystemPrompt = dir, engineKind, c.Prompt, c.Kind == "raw", ""
		wantIDs, wantText := c.IDs, c.Text
		if k := slices.Index(wantIDs, g.Config.EOSTokenID); k >= 0 {
			wantIDs = wantIDs[:k+1] // generate stops at EOS; transformers pads after it
		}
		if n > 0 && n < len(wantIDs) {
			wantIDs, wantText = wantIDs[:n], tok.Decode(wantIDs[:n], true)
		}
		cfg.MaxNewTokens, cfg.Temperature, cfg.JSON, cfg.ORT.Device = len(wantIDs), 0, true, engine.DeviceCPU
		ids, err := promptIDs(cfg, tok)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(ids, c.PromptIDs) {
			t.Errorf("%s prompt %q: ids %v, transformers %v", c.Kind, c.Prompt, ids, c.PromptIDs)
		}
		var out bytes.Buffer
		if err := runGenerate(context.Background(), cfg, genTestLog, &out); err != nil {
			t.Fatal(err)
		}
		var got generateJSON
		if err := json.Unmarshal(out.Bytes(), &got); err != nil {
			t.Fatalf("output is not JSON: %v\n%s", err, out.String())
		}
		if !slices.Equal(got.IDs, wantIDs) || strings.TrimSpace(got.Text) != strings.TrimSpace(wantText) {
			t.Errorf("%s %s %q:\n got %v %q\nwant %v %q", engineKind, c.Kind, c.Prompt, got.IDs, got.Text, wantIDs, wantText)
		}
	}
}
