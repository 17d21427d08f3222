package main

import (
	"bytes"
	"encoding/csv"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/medassist/medassist/internal/testutil"
	"github.com/medassist/medassist/model"
)

// tinyTrainModel writes a tiny random Llama (2 layers, hidden 32) with stories260K's tokenizer and
// chat template.
func tinyTrainModel(t *testing.T) string {
	t.Helper()
	tokDir := testutil.Stories260K(t)
	cfg, err := model.ParseConfig([]byte(`{"architectures":["LlamaForCausalLM"],"model_type":"llama","hidden_size":32,
"intermediate_size":64,"num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":2,"vocab_size":512,
"max_position_embeddings":512,"rms_norm_eps":1e-5,"bos_token_id":1,"eos_token_id":2,"tie_word_embeddings":true}`))
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "tiny")
	if err := model.WriteRandomModel(dir, cfg, model.F32, 5, 0); err != nil {
		t.Fatal(err)
	}
	if err := model.CopyModelFiles(tokDir, dir, model.TokenizerFiles); err != nil {
		t.Fatal(err)
	}
	return dir
}

const testSweep = `
defaults:
  max-examples: 20
  max-length: 128
  system-prompt: ""
  epochs: 2
  batch-size: 4
  grad-accum: 1
  warmup-steps: 0
variants:
  - name: still
    lr: 1e-9
    rank: 2
    targets: q_proj,v_proj
  - name: learns
    lr: 3e-2
    rank: 4
    alpha: 8
    targets: [q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj]
`

// TestTrainSweep runs a two-variant sweep end to end on a tiny random model: both runs train, the
// CSV has one row per variant with every configuration key, and the variant whose learning rate is
// large enough to move wins and is merged.
func TestTrainSweep(t *testing.T) {
	base := tinyTrainModel(t)
	cards := testutil.Flashcards(t)
	dir := t.TempDir()
	sweep := filepath.Join(dir, "sweep.yaml")
	os.WriteFile(sweep, []byte(testSweep), 0o644)
	out := filepath.Join(dir, "out")
	args := []string{"train", "--sweep", sweep, "--base", base, "--data", cards, "--out", out, "--seed", "3", "--backend", "go"}
	if code := runMain(args); code != 0 {
		t.Fatalf("train --sweep exited %d", code)
	}
	f, err := os.Open(filepath.Join(out, resultsFileName))
	if err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(f).ReadAll()
	f.Close()
	if err != nil || len(rows) != 3 {
		t.Fatalf("experiment_results.csv: %d rows, err %v; want header + 2", len(rows), err)
	}
	col := map[string]int{}
	for i, h := range rows[0] {
		col[h] = i
	}
	for _, f := range configFields(reflect.TypeOf(trainOptions{})) {
		if _, ok := col[f.Key]; !ok && !placementKey(f.Key) {
			t.Errorf("CSV lacks configuration column %s", f.Key)
		}
	}
	for _, c := range []string{"name", "val_ppl_epoch_1", "val_ppl_epoch_2", "best_val_ppl", "wall_seconds", "tokens_per_second", "winner"} {
		if _, ok := col[c]; !ok {
			t.Fatalf("CSV lacks column %s: %v", c, rows[0])
		}
	}
	ppl := map[string]float64{}
	for _, r := range rows[1:] {
		p, err := strconv.ParseFloat(r[col["best_val_ppl"]], 64)
		if err != nil || p <= 1 {
			t.Fatalf("%s: best_val_ppl %q", r[0], r[col["best_val_ppl"]])
		}
		ppl[r[0]] = p
		if r[col["seed"]] != "3" {
			t.Errorf("%s: seed %s, want the command line's 3", r[0], r[col["seed"]])
		}
		if tps, _ := strconv.ParseFloat(r[col["tokens_per_second"]], 64); tps <= 0 {
			t.Errorf("%s: tokens_per_second %q", r[0], r[col["tokens_per_second"]])
		}
		if want := strconv.FormatBool(r[0] == "learns"); r[col["winner"]] != want {
			t.Errorf("%s: winner = %s, want %s", r[0], r[col["winner"]], want)
		}
	}
	t.Logf("best validation perplexity: still %.3f, learns %.3f", ppl["still"], ppl["learns"])
	if !(ppl["learns"] < ppl["still"]) {
		t.Fatalf("learns (%.3f) should beat still (%.3f)", ppl["learns"], ppl["still"])
	}
	best, _ := os.ReadFile(filepath.Join(out, bestFileName))
	if !strings.HasPrefix(string(best), "learns\t") {
		t.Fatalf("best.txt = %q", best)
	}
	a, _ := os.ReadFile(filepath.Join(out, adapterDirName, model.AdapterWeightsFile))
	b, _ := os.ReadFile(filepath.Join(out, runsDirName, "learns", adapterDirName, model.AdapterWeightsFile))
	if len(a) == 0 || !bytes.Equal(a, b) {
		t.Fatal("OUT/adapter is not the winner's adapter")
	}
	if _, err := model.LoadConfig(filepath.Join(out, mergedDirName)); err != nil {
		t.Fatalf("merged model: %v", err)
	}
	for _, f := range []string{"tokenizer.json", model.TokenizerConfigFile} {
		if _, err := os.Stat(filepath.Join(out, mergedDirName, f)); err != nil {
			t.Errorf("merged model lacks %s", f)
		}
	}
	// A second run finds both runs finished and only re-selects the winner.
	if code := runMain(args); code != 0 {
		t.Fatalf("second train --sweep exited %d", code)
	}
}

// TestSweepAssets resolves the sweeps shipped in assets/sweeps: every key is a train flag and every
// variant validates.
func TestSweepAssets(t *testing.T) {
	paths, _ := filepath.Glob(filepath.Join(testutil.RepoRoot(), "assets", "sweeps", "*.yaml"))
	if len(paths) < 2 {
		t.Fatalf("found %d sweep files", len(paths))
	}
	for _, p := range paths {
		opts := defaultTrainOptions()
		opts.Train.Base, opts.Train.Out = "base-from-command-line", t.TempDir()
		vs, err := loadSweep(p, opts, nil)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		for _, v := range vs {
			o := v.Opts
			if filepath.Base(p) == "quick.yaml" { // the smoke run is deliberately smaller than the seed job
				continue
			}
			if o.Data.MaxExamples != 3000 || o.Data.MaxLength != 512 || o.Train.Epochs != 2 || o.Train.BatchSize != 2 || o.Train.GradAccum != 4 {
				t.Errorf("%s/%s: %+v", filepath.Base(p), v.Name, o)
			}
		}
		t.Logf("%s: %d variants", filepath.Base(p), len(vs))
	}
}

// TestLoadSweepPrecedence: sweep defaults < variant < flags given on the command line; unknown
// keys and reserved keys are refused.
func TestLoadSweepPrecedence(t *testing.T) {
	dir := t.TempDir()
	write := func(body string) string {
		p := filepath.Join(dir, "s.yaml")
		os.WriteFile(p, []byte(body), 0o644)
		return p
	}
	fs := newFlagSet(commands["train"])
	if err := fs.Parse([]string{"--epochs", "7"}); err != nil {
		t.Fatal(err)
	}
	opts := defaultTrainOptions()
	opts.Train.Base, opts.Train.Out, opts.Data.Path, opts.Train.Epochs = "b", dir, "d", 7
	vs, err := loadSweep(write("defaults: {lr: 0.01, epochs: 3, rank: 4}\nvariants:\n  - {name: a}\n  - {name: b, lr: 0.02, targets: \"q_proj, v_proj\"}\n"), opts, fs)
	if err != nil {
		t.Fatal(err)
	}
	a, b := vs[0].Opts, vs[1].Opts
	if a.Train.LR != 0.01 || b.Train.LR != 0.02 || a.Train.Rank != 4 || b.Train.Rank != 4 {
		t.Errorf("lr/rank: a %g/%d, b %g/%d", a.Train.LR, a.Train.Rank, b.Train.LR, b.Train.Rank)
	}
	if a.Train.Epochs != 7 || b.Train.Epochs != 7 {
		t.Errorf("--epochs 7 on the command line should win: %d, %d", a.Train.Epochs, b.Train.Epochs)
	}
	if !reflect.DeepEqual(b.Train.Targets, []string{"q_proj", "v_proj"}) || len(a.Train.Targets) != 7 {
		t.Errorf("targets: a %v, b %v", a.Train.Targets, b.Train.Targets)
	}
	if b.Train.Out != filepath.Join(dir, runsDirName, "b") {
		t.Errorf("out %s", b.Train.Out)
	}
	for body, want := range map[string]string{
		"variants:\n  - {name: a, rnak: 4}\n":            `unknown key "rnak"`,
		"variants:\n  - {name: a, out: x}\n":             `"out" cannot be set`,
		"variants:\n  - {name: a}\n  - {name: a}\n":      "must be unique",
		"variants:\n  - {name: a, lr: -1}\n":             "lr",
		"defaults: {lr: 0.1}\n":                          "no variants",
		"defaults: {lr: 0.1}\nvariant:\n  - {name: a}\n": "expected the keys defaults and variants",
	} {
		if _, err := loadSweep(write(body), opts, nil); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want %q", body, err, want)
		}
	}
}

// TestTrainCommand trains once on the tiny model: the contract's outputs are there, the merged
// model carries the trained adapter, and running the same command again resumes (nothing to do).
func TestTrainCommand(t *testing.T) {
	base := tinyTrainModel(t)
	out := filepath.Join(t.TempDir(), "out")
	args := []string{"train", "--base", base, "--data", testutil.Flashcards(t), "--out", out, "--max-examples", "12",
		"--max-length", "128", "--system-prompt", "", "--epochs", "1", "--batch-size", "4", "--grad-accum", "1",
		"--lr", "1e-2", "--warmup-steps", "0", "--rank", "2", "--targets", "q_proj,down_proj", "--backend", "go"}
	for run := 0; run < 2; run++ {
		if code := runMain(args); code != 0 {
			t.Fatalf("run %d: train exited %d", run, code)
		}
	}
	for _, p := range []string{
		"adapter/" + model.AdapterConfigFile, "adapter/" + model.AdapterWeightsFile, "metrics.csv", "checkpoints",
		"merged/" + model.ConfigFile, "merged/" + model.SafetensorsFile, "merged/tokenizer.json", "merged/" + model.TokenizerConfigFile,
	} {
		if _, err := os.Stat(filepath.Join(out, p)); err != nil {
			t.Errorf("missing OUT/%s", p)
		}
	}
	bw, err := model.OpenWeights(base)
	if err != nil {
		t.Fatal(err)
	}
	defer bw.Close()
	mw, err := model.OpenWeights(filepath.Join(out, mergedDirName))
	if err != nil {
		t.Fatal(err)
	}
	defer mw.Close()
	for _, n := range bw.Names() {
		a, _ := bw.Bytes(n)
		b, _ := mw.Bytes(n)
		targeted := strings.HasSuffix(n, "q_proj.weight") || strings.HasSuffix(n, "down_proj.weight")
		if bytes.Equal(a, b) == targeted {
			t.Errorf("%s: changed = %v, want %v", n, !bytes.Equal(a, b), targeted)
		}
	}
}
