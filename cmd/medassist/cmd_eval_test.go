package main

import (
	"encoding/json"
	"encoding/xml"
	"log/slog"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/medassist/medassist/eval"
	"github.com/medassist/medassist/internal/testutil"
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
	if len(res.Manual) != 10 {
		t.Errorf("%d manual prompts, want the 10 built-in ones", len(res.Manual))
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

// TestAdoptTrainSplit: split settings left at their defaults take the training run's recorded
// values; a flag given on the command line wins.
func TestAdoptTrainSplit(t *testing.T) {
	dir := t.TempDir()
	summary := `{"base_val_ppl": 115.7, "config": {"max-examples": "3000", "max-length": "256", "seed": "7", "val-fraction": "0.2", "system-prompt": "Be brief.", "lr": "0.002"}}`
	if err := os.WriteFile(filepath.Join(dir, eval.TrainSummaryFile), []byte(summary), 0o644); err != nil {
		t.Fatal(err)
	}
	fs := newFlagSet(commands["eval"])
	if err := fs.Parse([]string{"--max-length", "512"}); err != nil {
		t.Fatal(err)
	}
	cfg := defaultEvalConfig()
	cfg.Model, cfg.Data, cfg.Out, cfg.TrainDir = "m", "d.jsonl", "o.json", dir
	if err := adoptTrainSplit(&cfg, fs, evalQuietLog()); err != nil {
		t.Fatal(err)
	}
	if cfg.DataMaxExamples != 3000 || cfg.Seed != 7 || cfg.ValFraction != 0.2 || cfg.SystemPrompt != "Be brief." {
		t.Errorf("recorded split not adopted: %+v", cfg)
	}
	if cfg.MaxLength != 512 {
		t.Errorf("max-length %d: the flag given must win over the run's 256", cfg.MaxLength)
	}
	if err := os.WriteFile(filepath.Join(dir, eval.TrainSummaryFile), []byte(`{"config": {"seed": "x"}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg = defaultEvalConfig()
	cfg.Model, cfg.Data, cfg.Out, cfg.TrainDir = "m", "d.jsonl", "o.json", dir
	if err := adoptTrainSplit(&cfg, fs, evalQuietLog()); err == nil || !strings.Contains(err.Error(), "seed") {
		t.Errorf("a bad recorded seed: %v", err)
	}
}

func evalQuietLog() *slog.Logger { return slog.New(slog.DiscardHandler) }
