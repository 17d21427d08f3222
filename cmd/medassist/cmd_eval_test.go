package main

import (
	"encoding/json"
	"encoding/xml"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/medassist/medassist/assets"
	"github.com/medassist/medassist/eval"
	"github.com/medassist/medassist/internal/testutil"
	"github.com/medassist/medassist/train/data"
)

// runMedassist runs the built binary and returns its stdout; it fails the test on a non-zero exit.
func runMedassist(t *testing.T, bin string, args ...string) string {
	t.Helper()
	cmd := exec.Command(bin, args...)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("medassist %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String()
}

// TestEvalCommand evaluates stories260K against itself: the base side runs the HF-layout dir on
// GoMLX, the "fine-tuned" side the same weights exported to ONNX (engine auto picks each), so the
// two perplexities must agree (cross-engine parity) and so must the greedy answers.
func TestEvalCommand(t *testing.T) {
	stories, cards := testutil.Stories260K(t), testutil.Flashcards(t)
	t.Setenv("MEDASSIST_ORT_LIB", testutil.ORTLibrary(t))
	bin := buildMedassist(t)
	dir := t.TempDir()
	onnxDir := filepath.Join(dir, "onnx")
	runMedassist(t, bin, "export", "--model", stories, "--out", onnxDir)

	trainDir := filepath.Join(dir, "run")
	if err := os.MkdirAll(trainDir, 0o755); err != nil {
		t.Fatal(err)
	}
	// The run's summary: its split, which eval must re-make (--data-max-examples 80 below).
	split := data.DefaultSplit()
	split.MaxExamples = 80
	cardsSum, err := data.FileSHA256(cards)
	if err != nil {
		t.Fatal(err)
	}
	sumJSON, _ := json.Marshal(eval.TrainSummary{Split: &split, DataSHA256: cardsSum})
	writeTestFile(t, filepath.Join(trainDir, eval.TrainSummaryFile), string(sumJSON))
	metrics := "step,epoch,train_loss,val_loss,val_perplexity\n1,0.5,5.4,,\n2,1,5.1,4.9,134.3\n3,1.5,4.8,,\n4,2,4.6,4.5,90.0\n"
	if err := os.WriteFile(filepath.Join(trainDir, eval.MetricsFile), []byte(metrics), 0o644); err != nil {
		t.Fatal(err)
	}
	out, report := filepath.Join(dir, "results", eval.ResultsFile), filepath.Join(dir, "report")
	stdout := runMedassist(t, bin, "eval", "--model", onnxDir, "--base", stories, "--data", cards,
		"--data-max-examples", "80", "--max-examples", "4", "--max-new-tokens", "8",
		"--out", out, "--report", report, "--train-dir", trainDir)
	if !strings.Contains(stdout, "perplexity change") {
		t.Errorf("summary line: %q", stdout)
	}

	var r map[string]any
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"model", "base", "data", "n_examples", "perplexity", "rouge", "samples", "manual_prompts", "timings"} {
		if _, ok := r[key]; !ok {
			t.Errorf("results lack %q", key)
		}
	}
	res, err := eval.ReadResults(out)
	if err != nil {
		t.Fatal(err)
	}
	if res.Engines.FineTuned != "onnx/cpu" || res.Engines.Base == nil || *res.Engines.Base != "gomlx" {
		t.Errorf("engines %+v: want onnx/cpu (exported dir) and gomlx (HF dir)", res.Engines)
	}
	if res.NExamples != 4 || len(res.Samples) != 4 || res.Split.ValExamples != 8 || res.Split.ScoredExamples != 8 {
		t.Errorf("n_examples %d, samples %d, split %+v", res.NExamples, len(res.Samples), res.Split)
	}
	if want := len(assets.EvalPrompts()); len(res.Manual) != want || want < 10 {
		t.Errorf("%d manual prompts, want the %d built-in ones (at least 10)", len(res.Manual), want)
	}
	base, fine := *res.Perplexity.Base, res.Perplexity.FineTuned
	rel := math.Abs(base-fine) / fine
	t.Logf("perplexity gomlx %.6f, onnx %.6f (relative difference %.2g)", base, fine, rel)
	if rel > 1e-3 || math.Abs(*res.Perplexity.ChangePct) > 0.1 {
		t.Errorf("the same weights on two engines: perplexity %v vs %v (change %v%%)", base, fine, *res.Perplexity.ChangePct)
	}
	for i, s := range res.Samples {
		if s.Question == "" || s.Reference == "" || s.Base == nil {
			t.Fatalf("sample %d incomplete: %+v", i, s)
		}
		if *s.Base != s.FineTuned {
			t.Errorf("sample %d: greedy answers differ between engines: %q vs %q", i, *s.Base, s.FineTuned)
		}
	}

	for _, name := range []string{eval.ReportFile, eval.PlotLoss, eval.PlotEpochPerplexity, eval.PlotRouge, eval.PlotPerplexity} {
		path := filepath.Join(report, name)
		b, err := os.ReadFile(path)
		if err != nil {
			t.Errorf("report file: %v", err)
			continue
		}
		if strings.HasSuffix(name, ".svg") {
			var doc struct{ XMLName xml.Name }
			if err := xml.Unmarshal(b, &doc); err != nil || doc.XMLName.Local != "svg" {
				t.Errorf("%s is not an SVG document: %v", name, err)
			}
		}
	}
}

// TestEvalOutHelp: the --out help names the file eval writes into a dir (the help is a struct tag,
// which cannot refer to eval.ResultsFile).
func TestEvalOutHelp(t *testing.T) {
	if u := newFlagSet(commands["eval"]).Lookup("out").Usage; !strings.Contains(u, eval.ResultsFile) {
		t.Errorf("--out help %q does not name %s", u, eval.ResultsFile)
	}
}

func TestEvalCommandUsage(t *testing.T) {
	bin := buildMedassist(t)
	cmd := exec.Command(bin, "eval", "--data", "x.jsonl", "--out", "r.json", "--engine", "tpu")
	outb, err := cmd.CombinedOutput()
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() != 2 {
		t.Fatalf("exit %v, want 2 (usage error)\n%s", err, outb)
	}
	for _, want := range []string{"model", "engine = tpu"} {
		if !strings.Contains(string(outb), want) {
			t.Errorf("usage error does not name %q:\n%s", want, outb)
		}
	}
}

// TestUseTrainSplit: with --train-dir, eval scores the split the run recorded; settings left unset
// take the run's values, settings given that differ are refused, and a run without a recorded split
// (or without a summary) is refused.
func TestUseTrainSplit(t *testing.T) {
	dir := t.TempDir()
	recorded := data.Split{MaxLength: 256, MaxExamples: 3000, ValFraction: 0.2, Seed: 7, SystemPrompt: "Be brief."}
	b, _ := json.Marshal(eval.TrainSummary{BaseValPPL: 115.7, Split: &recorded})
	writeTestFile(t, filepath.Join(dir, eval.TrainSummaryFile), string(b))
	newCfg := func() evalConfig {
		cfg := defaultEvalConfig()
		cfg.Model, cfg.Data, cfg.Out, cfg.TrainDir = "m", "d.jsonl", "o.json", dir
		return cfg
	}
	cfg := newCfg()
	if err := useTrainSplit(&cfg, nil); err != nil {
		t.Fatal(err)
	}
	if cfg.split() != recorded {
		t.Errorf("split %+v, want the run's %+v", cfg.split(), recorded)
	}
	cfg = newCfg()
	cfg.MaxLength, cfg.Seed = 256, 7 // given, and equal to the run's
	if err := useTrainSplit(&cfg, map[string]bool{"max-length": true, "seed": true}); err != nil || cfg.split() != recorded {
		t.Errorf("settings equal to the run's: %v, %+v", err, cfg.split())
	}
	cfg = newCfg()
	cfg.DataMaxExamples, cfg.Seed = 80, 8
	err := useTrainSplit(&cfg, map[string]bool{"data-max-examples": true, "seed": true, "max-length": false})
	if err == nil || !strings.Contains(err.Error(), "max-examples 3000 (not 80), seed 7 (not 8)") {
		t.Errorf("another split: %v", err)
	}
	if _, ok := err.(usageError); !ok {
		t.Errorf("a refused split is a usage error, got %T", err)
	}

	// The run's flashcard file: the same bytes under another path pass, other bytes are refused.
	cards, same, other := filepath.Join(dir, "cards.jsonl"), filepath.Join(dir, "copy.jsonl"), filepath.Join(dir, "other.jsonl")
	writeTestFile(t, cards, `{"input": "q", "output": "a"}`+"\n")
	writeTestFile(t, same, `{"input": "q", "output": "a"}`+"\n")
	writeTestFile(t, other, `{"input": "q2", "output": "a2"}`+"\n")
	sum, err := data.FileSHA256(cards)
	if err != nil {
		t.Fatal(err)
	}
	b, _ = json.Marshal(eval.TrainSummary{Split: &recorded, DataSHA256: sum})
	writeTestFile(t, filepath.Join(dir, eval.TrainSummaryFile), string(b))
	cfg = newCfg()
	cfg.Data = same
	if err := useTrainSplit(&cfg, nil); err != nil {
		t.Errorf("the run's flashcards under another path: %v", err)
	}
	cfg = newCfg()
	cfg.Data = other
	if err := useTrainSplit(&cfg, nil); err == nil || !strings.Contains(err.Error(), "another flashcard file") {
		t.Errorf("other flashcards: %v", err)
	}

	writeTestFile(t, filepath.Join(dir, eval.TrainSummaryFile), `{"base_val_ppl": 115.7, "config": {"seed": "7"}}`)
	cfg = newCfg()
	if err := useTrainSplit(&cfg, nil); err == nil || !strings.Contains(err.Error(), "records no data split") {
		t.Errorf("a summary without a split: %v", err)
	}
	cfg = newCfg()
	cfg.TrainDir = t.TempDir()
	if err := useTrainSplit(&cfg, nil); err == nil || !strings.Contains(err.Error(), "not a finished medassist train run") {
		t.Errorf("a dir without a summary: %v", err)
	}
}

// TestEvalRefusesOtherSplit: a split setting from the environment or the --config file counts as
// given, and eval stops before opening any model when it differs from the run's.
func TestEvalRefusesOtherSplit(t *testing.T) {
	dir := t.TempDir()
	b, _ := json.Marshal(eval.TrainSummary{Split: &data.Split{MaxLength: 512, MaxExamples: 160, ValFraction: 0.1, Seed: 42}})
	writeTestFile(t, filepath.Join(dir, eval.TrainSummaryFile), string(b))
	args := []string{"eval", "--model", filepath.Join(dir, "missing-model"), "--data", "d.jsonl", "--out", filepath.Join(dir, "r.json"), "--train-dir", dir}
	t.Run("env", func(t *testing.T) {
		t.Setenv("MEDASSIST_SEED", "43")
		if code := runMain(args); code != 2 {
			t.Errorf("exit %d, want 2 (refused split)", code)
		}
	})
	t.Run("config", func(t *testing.T) {
		cfgFile := filepath.Join(dir, "c.yaml")
		writeTestFile(t, cfgFile, "eval:\n  data-max-examples: 3000\n")
		if code := runMain(append(args, "--config", cfgFile)); code != 2 {
			t.Errorf("exit %d, want 2 (refused split)", code)
		}
	})
}
