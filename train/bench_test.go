package train

import (
	"context"
	"encoding/json"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/medassist/medassist/internal/testutil"
	"github.com/medassist/medassist/model"
	"github.com/medassist/medassist/tokenizer"
	"github.com/medassist/medassist/train/data"
)

// Benchmarks behind bench/train.sh. They are heavy (minutes), run with -benchtime 1x, and write
// their numbers as JSON into $MEDASSIST_BENCH_OUT (default: a temporary dir).

func benchOut(b *testing.B) string {
	dir := os.Getenv("MEDASSIST_BENCH_OUT")
	if dir == "" {
		dir = b.TempDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	return dir
}

func writeJSON(b *testing.B, path string, v any) {
	buf, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(path, append(buf, '\n'), 0o644); err != nil {
		b.Fatal(err)
	}
}

// prepareFlashcards tokenizes the shared flashcards with the model in dir's tokenizer and chat
// template: the seed job's data (3,000 examples, 90/10 split, max length 512).
func prepareFlashcards(b *testing.B, dir string, maxExamples int) *data.Dataset {
	tok, err := tokenizer.Load(dir)
	if err != nil {
		b.Fatal(err)
	}
	defer tok.Close()
	tpl, err := model.LoadChatTemplate(dir)
	if err != nil {
		b.Fatal(err)
	}
	cfg := data.DefaultConfig()
	cfg.Path = testutil.Flashcards(b)
	cfg.MaxExamples = maxExamples
	ds, err := data.Prepare(cfg, tok, tpl, nil)
	if err != nil {
		b.Fatal(err)
	}
	return ds
}

// BenchmarkStoriesFlashcards is the stories260K fine-tuning job: 3,000 flashcards, 2 epochs,
// batch 2, grad-accum 4, r 16, alpha 32, all seven targets, lr 2e-3, cosine, warmup 10.
// It writes dataset.json (the prepared examples, for the PyTorch oracle) and gomlx.json.
func BenchmarkStoriesFlashcards(b *testing.B) {
	dir := testutil.Stories260K(b)
	outDir := benchOut(b)
	examples := 3000
	if v, err := strconv.Atoi(os.Getenv("MEDASSIST_BENCH_EXAMPLES")); err == nil && v > 0 {
		examples = v // a smaller smoke run
	}
	ds := prepareFlashcards(b, dir, examples)
	writeJSON(b, filepath.Join(outDir, "dataset.json"), map[string]any{"train": ds.Train, "val": ds.Val})

	cfg := storiesJob(dir, filepath.Join(outDir, "gomlx-run"))
	if err := os.RemoveAll(cfg.Out); err != nil {
		b.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	b.ResetTimer()
	res, err := Run(context.Background(), cfg, ds, log)
	if err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	last := res.ValPerplexity[len(res.ValPerplexity)-1]
	drop := 100 * (1 - last/res.BaseValPerplexity)
	b.ReportMetric(res.TokensPerSecond, "tokens/s")
	b.ReportMetric(drop, "%ppl-drop")
	writeJSON(b, filepath.Join(outDir, "gomlx.json"), map[string]any{
		"engine": "gomlx", "backend": res.Backend, "train_examples": len(ds.Train), "val_examples": len(ds.Val),
		"base_val_perplexity": res.BaseValPerplexity, "val_perplexity": res.ValPerplexity,
		"best_perplexity": res.BestPerplexity, "perplexity_drop_pct": drop,
		"wall_time_s": res.WallTime.Seconds(), "tokens_per_s": res.TokensPerSecond, "steps": res.Steps,
		"gomaxprocs": runtime.GOMAXPROCS(0), "hyperparameters": cfg,
	})
	b.Logf("val perplexity %.2f → %v (−%.1f%%), %v, %.0f tokens/s", res.BaseValPerplexity, res.ValPerplexity, drop,
		res.WallTime.Round(time.Second), res.TokensPerSecond)
}

// storiesJob is the stories260K job's configuration.
func storiesJob(base, out string) Config {
	cfg := DefaultConfig()
	cfg.Base, cfg.Out = base, out
	cfg.Rank, cfg.Alpha, cfg.Dropout = 16, 32, 0.05
	cfg.LR, cfg.WarmupSteps, cfg.Schedule = 2e-3, 10, ScheduleCosine
	cfg.BatchSize, cfg.GradAccum, cfg.Epochs = 2, 4, 2
	cfg.CheckpointEvery = 100
	if b := os.Getenv("MEDASSIST_BENCH_BACKEND"); b != "" { // see NewBackend; unset: auto
		cfg.Backend = b
	}
	return cfg
}

// BenchmarkTinyLlamaStep times LoRA optimizer steps on a TinyLlama-shaped model
// ($MEDASSIST_TINYLLAMA_DIR, default out/bench/models/tinyllama-random in the repository; bench/train.sh
// makes it with medassist init --random):
// one micro-batch of 1×512 tokens, and one of 2 × the seed job's mean padded length, each followed
// by the AdamW update; the projection of the seed job's wall time uses the second.
func BenchmarkTinyLlamaStep(b *testing.B) {
	dir := os.Getenv("MEDASSIST_TINYLLAMA_DIR")
	if dir == "" {
		dir = filepath.Join(testutil.RepoRoot(), "out", "bench", "models", "tinyllama-random")
	}
	if _, err := os.Stat(filepath.Join(dir, model.ConfigFile)); err != nil {
		b.Skipf("no TinyLlama-shaped model at %s (make it with: bench/lib.sh random_tinyllama %s)", dir, dir)
	}
	outDir := benchOut(b)
	// Token statistics of the seed job come from TinyLlama's tokenizer on the flashcards.
	ds := prepareFlashcards(b, testutil.TinyLlamaConfig(b), 3000)
	width := meanPaddedWidth(ds.Train, 2)

	backend, err := NewBackend(os.Getenv("MEDASSIST_BENCH_BACKEND"))
	if err != nil {
		b.Fatal(err)
	}
	t0 := time.Now()
	s, err := openSession(backend, dir)
	if err != nil {
		b.Fatal(err)
	}
	load := time.Since(t0)
	cfg := DefaultConfig()
	s.adapter = cfg.adapter()
	if err := initAdapters(s.store, s.cfg, s.adapter, 1); err != nil {
		b.Fatal(err)
	}
	if err := s.store.SetRNGStateFromSeed(1); err != nil {
		b.Fatal(err)
	}
	opt, err := newOptimizer(s, cfg.Dropout, 0, 1)
	if err != nil {
		b.Fatal(err)
	}
	timeStep := func(rows, n int) (first, second time.Duration) {
		exs := make([]data.Example, rows)
		for i := range exs {
			exs[i] = fakeExample(n, s.cfg.VocabSize, i)
		}
		bt := makeBatch(exs, seqBucket)
		for k := range 2 {
			t := time.Now()
			if _, err := opt.Step(bt, 1/float32(bt.targets)); err != nil {
				b.Fatal(err)
			}
			if _, err := opt.Apply(k+1, 1e-4); err != nil {
				b.Fatal(err)
			}
			if k == 0 {
				first = time.Since(t)
			} else {
				second = time.Since(t)
			}
		}
		return first, second
	}
	b.ResetTimer()
	c512, s512 := timeStep(1, 512)
	cMean, sMean := timeStep(2, width)
	b.StopTimer()

	micro := (len(ds.Train) + 1) / 2 * cfg.Epochs
	projected := time.Duration(micro) * sMean
	b.ReportMetric(s512.Seconds(), "s/step@1x512")
	writeJSON(b, filepath.Join(outDir, "tinyllama_step.json"), map[string]any{
		"model": dir, "params": s.store.NumParameters(), "load_s": load.Seconds(),
		"step_1x512_s": s512.Seconds(), "first_step_1x512_s": c512.Seconds(),
		"mean_padded_width": width, "step_2xmean_s": sMean.Seconds(), "first_step_2xmean_s": cMean.Seconds(),
		"seed_job_micro_steps": micro, "seed_job_projected_s": projected.Seconds(),
		"train_examples": len(ds.Train), "mean_tokens": meanTokens(ds.Train),
	})
	b.Logf("TinyLlama-shaped LoRA step: 1×512 %v (first, with compile: %v); 2×%d %v; seed job (%d micro-steps) ≈ %v",
		s512.Round(time.Millisecond), c512.Round(time.Millisecond), width, sMean.Round(time.Millisecond), micro, projected.Round(time.Minute))
}

// fakeExample is n tokens (all labelled) of arbitrary ids below vocab.
func fakeExample(n, vocab, salt int) data.Example {
	ex := data.Example{IDs: make([]int32, n), Labels: make([]int32, n)}
	for i := range ex.IDs {
		ex.IDs[i] = int32(3 + (i*31+salt*17)%(vocab-3))
		ex.Labels[i] = ex.IDs[i]
	}
	return ex
}

// meanPaddedWidth is the mean padded width of consecutive micro-batches of rows examples after
// a shuffle (the sorted order would understate padding).
func meanPaddedWidth(exs []data.Example, rows int) int {
	perm := rand.New(rand.NewPCG(1, 1)).Perm(len(exs))
	total, n := 0, 0
	for lo := 0; lo < len(perm); lo += rows {
		w := 0
		for _, k := range perm[lo:min(lo+rows, len(perm))] {
			w = max(w, len(exs[k].IDs))
		}
		total += (w + seqBucket - 1) / seqBucket * seqBucket
		n++
	}
	return (total/n + seqBucket - 1) / seqBucket * seqBucket
}

func meanTokens(exs []data.Example) float64 {
	t := 0
	for _, e := range exs {
		t += len(e.IDs)
	}
	return float64(t) / float64(len(exs))
}
