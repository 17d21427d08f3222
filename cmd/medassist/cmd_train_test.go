package main

import (
	"bytes"
	"encoding/csv"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/spf13/pflag"

	"github.com/medassist/medassist/eval"
	"github.com/medassist/medassist/internal/config"
	"github.com/medassist/medassist/internal/testutil"
	"github.com/medassist/medassist/model"
	"github.com/medassist/medassist/train"
	"github.com/medassist/medassist/train/data"
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
	args := []string{"train", "--sweep", sweep, "--base", base, "--data", cards, "--out", out, "--seed", "3"}
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
	// Each run's summary carries its split, typed, for eval.
	sum, ok, err := eval.ReadTrainSummary(filepath.Join(out, runsDirName, "learns"))
	if err != nil || !ok || sum.Split == nil {
		t.Fatalf("summary of learns: %+v, %v, %v", sum, ok, err)
	}
	if want := (data.Split{MaxLength: 128, MaxExamples: 20, ValFraction: 0.1, Seed: 3}); *sum.Split != want {
		t.Errorf("recorded split %+v, want %+v", *sum.Split, want)
	}
	if want, _ := data.FileSHA256(cards); sum.DataSHA256 != want || want == "" {
		t.Errorf("recorded data sha256 %q, want %q", sum.DataSHA256, want)
	}
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
// variant validates; base and data come from the command line.
func TestSweepAssets(t *testing.T) {
	paths, _ := filepath.Glob(filepath.Join(testutil.RepoRoot(), "assets", "sweeps", "*.yaml"))
	if len(paths) < 2 {
		t.Fatalf("found %d sweep files", len(paths))
	}
	fs := newFlagSet(commands["train"])
	if err := fs.Parse([]string{"--base", "base-from-command-line", "--data", "data-from-command-line"}); err != nil {
		t.Fatal(err)
	}
	for _, p := range paths {
		vs, err := loadSweep(p, t.TempDir(), "", fs, nil)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		for _, v := range vs {
			o := v.Opts
			if o.Train.Base != "base-from-command-line" || o.Data.Path != "data-from-command-line" {
				t.Errorf("%s/%s: base %q, data %q: want the command line's", filepath.Base(p), v.Name, o.Train.Base, o.Data.Path)
			}
			if filepath.Base(p) == "quick.yaml" { // the smoke run is deliberately smaller than the seed job
				continue
			}
			if strings.HasSuffix(p, "-cpu.yaml") { // the seed job on a CPU-sized subset: ~1,000 training examples, one epoch
				if n := o.Data.MaxExamples - int(math.Round(float64(o.Data.MaxExamples)*o.Data.ValFraction)); n != 1000 || o.Train.Epochs != 1 {
					t.Errorf("%s/%s: %d training examples, %d epochs", filepath.Base(p), v.Name, n, o.Train.Epochs)
				}
				continue
			}
			if o.Data.MaxExamples != 3000 || o.Data.MaxLength != 512 || o.Train.Epochs != 2 || o.Train.BatchSize != 2 || o.Train.GradAccum != 4 {
				t.Errorf("%s/%s: %+v", filepath.Base(p), v.Name, o)
			}
		}
		t.Logf("%s: %d variants", filepath.Base(p), len(vs))
	}
}

// TestConfigPrecedence is the one precedence order, over every layer a train variant has: flag
// defaults < the sweep's defaults < the variant < --config < MEDASSIST_* < flags. Each case sets lr in
// some layers (each layer its own value); the highest layer's value must win.
func TestConfigPrecedence(t *testing.T) {
	value := map[string]string{"sweep": "0.01", "variant": "0.02", "file": "0.03", "env": "0.04", "flag": "0.05"}
	for _, tc := range []struct {
		layers []string
		want   float64
	}{
		{nil, train.DefaultConfig().LR},
		{[]string{"sweep"}, 0.01},
		{[]string{"sweep", "variant"}, 0.02},
		{[]string{"sweep", "variant", "file"}, 0.03},
		{[]string{"variant", "file", "env"}, 0.04},
		{[]string{"sweep", "env"}, 0.04},
		{[]string{"sweep", "variant", "file", "env", "flag"}, 0.05},
		{[]string{"file", "flag"}, 0.05},
	} {
		name := strings.Join(tc.layers, "<")
		if name == "" {
			name = "defaults"
		}
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			set := map[string]bool{}
			for _, l := range tc.layers {
				set[l] = true
			}
			sweep := "defaults: {epochs: 3}\nvariants:\n  - {name: a}\n  - {name: b, rank: 4}\n"
			if set["sweep"] {
				sweep = "defaults: {epochs: 3, lr: " + value["sweep"] + "}\nvariants:\n  - {name: a}\n  - {name: b, rank: 4}\n"
			}
			if set["variant"] {
				sweep = strings.Replace(sweep, "{name: a}", "{name: a, lr: "+value["variant"]+"}", 1)
			}
			sweepPath, configPath := filepath.Join(dir, "sweep.yaml"), ""
			writeTestFile(t, sweepPath, sweep)
			if set["file"] {
				configPath = filepath.Join(dir, "config.yaml")
				writeTestFile(t, configPath, "train:\n  lr: "+value["file"]+"\n")
			}
			if set["env"] {
				t.Setenv("MEDASSIST_LR", value["env"])
			}
			args := []string{"--base", "b", "--data", "d", "--out", dir}
			if set["flag"] {
				args = append(args, "--lr", value["flag"])
			}
			fs := newFlagSet(commands["train"])
			if err := fs.Parse(args); err != nil {
				t.Fatal(err)
			}
			vs, err := loadSweep(sweepPath, dir, configPath, fs, nil)
			if err != nil {
				t.Fatal(err)
			}
			if got := vs[0].Opts.Train.LR; got != tc.want {
				t.Errorf("lr %g, want %g", got, tc.want)
			}
			if vs[0].Opts.Train.Epochs != 3 || vs[1].Opts.Train.Rank != 4 || vs[0].Opts.Train.Rank != train.DefaultConfig().Rank {
				t.Errorf("the sweep's other values: a %+v, b %+v", vs[0].Opts.Train, vs[1].Opts.Train)
			}
			// Without a sweep the same layers, less the sweep's, give the same order.
			if !set["sweep"] && !set["variant"] {
				opts := defaultTrainOptions()
				if err := config.Load(&opts, "train", configPath, fs); err != nil {
					t.Fatal(err)
				}
				if opts.Train.LR != tc.want {
					t.Errorf("train without a sweep: lr %g, want %g", opts.Train.LR, tc.want)
				}
			}
		})
	}
}

// TestLoadSweep: lists split like the flag, each variant goes to OUT/runs/NAME, and unknown,
// reserved and input keys are refused.
func TestLoadSweep(t *testing.T) {
	dir := t.TempDir()
	write := func(body string) string {
		p := filepath.Join(dir, "s.yaml")
		writeTestFile(t, p, body)
		return p
	}
	fs := newFlagSet(commands["train"])
	if err := fs.Parse([]string{"--base", "b", "--data", "d"}); err != nil {
		t.Fatal(err)
	}
	vs, err := loadSweep(write("defaults: {lr: 0.01}\nvariants:\n  - {name: a}\n  - {name: b, targets: \"q_proj, v_proj\"}\n"), dir, "", fs, nil)
	if err != nil {
		t.Fatal(err)
	}
	a, b := vs[0].Opts, vs[1].Opts
	if !reflect.DeepEqual(b.Train.Targets, []string{"q_proj", "v_proj"}) || len(a.Train.Targets) != 7 {
		t.Errorf("targets: a %v, b %v", a.Train.Targets, b.Train.Targets)
	}
	if b.Train.Out != filepath.Join(dir, runsDirName, "b") || b.Sweep != "" {
		t.Errorf("out %s, sweep %q", b.Train.Out, b.Sweep)
	}
	for body, want := range map[string]string{
		"variants:\n  - {name: a, rnak: 4}\n":                   `unknown key "rnak"`,
		"variants:\n  - {name: a, out: x}\n":                    `"out" cannot be set`,
		"defaults: {data: x.jsonl}\nvariants:\n  - {name: a}\n": `"data" cannot be set in a sweep (give it with --data)`,
		"variants:\n  - {name: a, base: m}\n":                   `"base" cannot be set in a sweep`,
		"variants:\n  - {name: a}\n  - {name: a}\n":             "must be unique",
		"variants:\n  - {name: a, lr: -1}\n":                    "lr",
		"defaults: {lr: 0.1}\n":                                 "no variants",
		"defaults: {lr: 0.1}\nvariant:\n  - {name: a}\n":        "expected the keys defaults and variants",
	} {
		if _, err := loadSweep(write(body), dir, "", fs, nil); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want %q", body, err, want)
		}
	}
}

func writeTestFile(t *testing.T, path, body string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestTrainCommand trains once on the tiny model: the contract's outputs are there, the merged
// model carries the trained adapter, and running the same command again resumes (nothing to do).
func TestTrainCommand(t *testing.T) {
	base := tinyTrainModel(t)
	out := filepath.Join(t.TempDir(), "out")
	args := []string{"train", "--base", base, "--data", testutil.Flashcards(t), "--out", out, "--max-examples", "12",
		"--max-length", "128", "--system-prompt", "", "--epochs", "1", "--batch-size", "4", "--grad-accum", "1",
		"--lr", "1e-2", "--warmup-steps", "0", "--rank", "2", "--targets", "q_proj,down_proj"}
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

// TestEveryFlagHasHelp: flags declared from config structs (help tags, or train's help table) all
// say what they do.
func TestEveryFlagHasHelp(t *testing.T) {
	for name, c := range commands {
		newFlagSet(c).VisitAll(func(f *pflag.Flag) {
			if strings.TrimSpace(f.Usage) == "" {
				t.Errorf("medassist %s --%s has no help", name, f.Name)
			}
		})
	}
}
