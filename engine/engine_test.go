package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/medassist/medassist/export"
	"github.com/medassist/medassist/generation"
	"github.com/medassist/medassist/internal/native"
	"github.com/medassist/medassist/internal/testutil"
	"github.com/medassist/medassist/tokenizer"
)

const eos = 2 // stories260K's </s>

func greedy(prompt []int, n int) generation.Request {
	return generation.Request{PromptIDs: prompt, MaxNewTokens: n, StopIDs: []int{eos}}
}

// TestGreedyMatchesTransformers: the tokenizer's ids, the full-pass logits and 60 greedy tokens
// of every golden prompt equal Hugging Face transformers'.
func TestGreedyMatchesTransformers(t *testing.T) {
	e := openStories(t)
	tok, err := tokenizer.Load(exportStories(t, export.DefaultOptions()))
	if err != nil {
		t.Fatal(err)
	}
	defer tok.Close()
	for _, c := range loadGolden(t).Cases {
		t.Run(c.Prompt, func(t *testing.T) {
			ids := tok.Encode(c.Prompt, true)
			if !slices.Equal(ids, c.IDs) {
				t.Fatalf("tokenizer: %v, golden %v", ids, c.IDs)
			}
			logits, err := e.Forward([][]int{ids})
			if err != nil {
				t.Fatal(err)
			}
			var worst float64
			for p, row := range c.Logits {
				want := make([]float32, len(row))
				for i, v := range row {
					want[i] = float32(v)
				}
				worst = max(worst, testutil.MaxAbsDiff(logits[0][p], want))
			}
			if worst > 1e-4 {
				t.Fatalf("logits differ from transformers by %.2e (limit 1e-4)", worst)
			}
			var streamed []int
			res, err := e.Generate(context.Background(), greedy(ids, len(c.GreedyIDs)), func(id int) error {
				streamed = append(streamed, id)
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(res.IDs, c.GreedyIDs) {
				t.Fatalf("greedy ids\n got %v\nwant %v\n got text %q", res.IDs, c.GreedyIDs, tok.Decode(res.IDs, true))
			}
			if !slices.Equal(streamed, res.IDs) || res.Finish != generation.FinishLength || res.PromptTokens != len(ids) {
				t.Fatalf("streamed %d ids, finish %q, prompt tokens %d", len(streamed), res.Finish, res.PromptTokens)
			}
			if res.TTFT <= 0 || res.Duration < res.TTFT {
				t.Fatalf("TTFT %v, duration %v", res.TTFT, res.Duration)
			}
			t.Logf("logits max diff %.2e; %q", worst, tok.Decode(res.IDs, true))
		})
	}
}

// cachedVersusRecompute decodes greedily through a Batch and, at every step, compares each row's
// cached logits with a full recompute of that row alone (no cache, no padding).
func cachedVersusRecompute(t *testing.T, e *Engine, prompts [][]int, steps int, limit float64) float64 {
	t.Helper()
	ctx := context.Background()
	b, err := e.NewBatch(len(prompts), 8) // small on purpose: the cache must grow on the way
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	seqs := make([][]int, len(prompts))
	for r := range prompts {
		seqs[r] = slices.Clone(prompts[r])
	}
	logits, err := b.Append(ctx, prompts)
	if err != nil {
		t.Fatal(err)
	}
	var worst float64
	for step := 0; step <= steps; step++ {
		next := make([]int, len(seqs))
		for r, s := range seqs {
			full, err := e.Forward([][]int{s})
			if err != nil {
				t.Fatal(err)
			}
			want := full[0][len(s)-1]
			d := testutil.MaxAbsDiff(logits[r], want)
			if d > limit {
				t.Fatalf("row %d step %d (length %d): cached logits differ from recompute by %.2e (limit %.0e)", r, step, len(s), d, limit)
			}
			worst = max(worst, d)
			next[r] = generation.Argmax(want)
			seqs[r] = append(seqs[r], next[r])
		}
		if step < steps {
			if logits, err = b.Decode(ctx, next); err != nil {
				t.Fatal(err)
			}
		}
	}
	return worst
}

func TestCachedDecodeEqualsRecompute(t *testing.T) {
	e := openStories(t)
	g := loadGolden(t)
	t.Run("batch1", func(t *testing.T) {
		worst := cachedVersusRecompute(t, e, [][]int{g.Cases[0].IDs}, 40, 1e-5)
		t.Logf("max |cached - recompute| = %.2e over 41 steps", worst)
	})
	t.Run("batch2 left-padded", func(t *testing.T) {
		// 5 and 17 prompt tokens: the first row starts with 12 padding positions.
		worst := cachedVersusRecompute(t, e, [][]int{g.Cases[0].IDs, g.Cases[1].IDs}, 40, 1e-5)
		t.Logf("max |cached - recompute| = %.2e over 41 steps", worst)
	})
	t.Run("chunked prefill", func(t *testing.T) {
		chunked, err := Open(Config{ModelDir: exportStories(t, export.DefaultOptions()), ORTLib: testutil.ORTLibrary(t),
			Device: DeviceCPU, IntraOpThreads: 1, PrefillChunk: 3}, quiet) // the 17-token prompt runs in 6 calls
		if err != nil {
			t.Fatal(err)
		}
		defer chunked.Close()
		// Chunks sum the attention in another order than one pass: a few float32 ulps of a logit.
		worst := cachedVersusRecompute(t, chunked, [][]int{g.Cases[1].IDs, g.Cases[2].IDs}, 10, 5e-5)
		t.Logf("max |cached - recompute| = %.2e", worst)
	})
}

// TestForwardLeftPadding: a padded batch row gives the same logits as the row alone.
func TestForwardLeftPadding(t *testing.T) {
	e := openStories(t)
	g := loadGolden(t)
	short, long := g.Cases[0].IDs, g.Cases[2].IDs
	both, err := e.Forward([][]int{short, long})
	if err != nil {
		t.Fatal(err)
	}
	for r, s := range [][]int{short, long} {
		alone, err := e.Forward([][]int{s})
		if err != nil {
			t.Fatal(err)
		}
		if len(both[r]) != len(s) {
			t.Fatalf("row %d: %d positions, want %d", r, len(both[r]), len(s))
		}
		for p := range s {
			if d := testutil.MaxAbsDiff(both[r][p], alone[0][p]); d > 1e-5 {
				t.Fatalf("row %d position %d: padded batch differs by %.2e", r, p, d)
			}
		}
	}
}

func TestGenerateBatchEqualsSingle(t *testing.T) {
	e := openStories(t)
	g := loadGolden(t)
	var reqs []generation.Request
	for _, c := range g.Cases {
		reqs = append(reqs, greedy(c.IDs, 30))
	}
	reqs[1].MaxNewTokens = 7 // rows end at different times
	streams := make([][]int, len(reqs))
	res, err := e.GenerateBatch(context.Background(), reqs, func(row, id int) error {
		streams[row] = append(streams[row], id)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range reqs {
		want := g.Cases[i].GreedyIDs[:r.MaxNewTokens]
		if !slices.Equal(res[i].IDs, want) || !slices.Equal(streams[i], want) {
			t.Fatalf("row %d: batch %v (streamed %v), alone %v", i, res[i].IDs, streams[i], want)
		}
		if res[i].Finish != generation.FinishLength {
			t.Fatalf("row %d finish %q", i, res[i].Finish)
		}
	}
}

func TestStops(t *testing.T) {
	e := openStories(t)
	c := loadGolden(t).Cases[0]
	ctx := context.Background()

	// A stop id ends generation before it: neither emitted nor returned.
	req := greedy(c.IDs, 60)
	req.StopIDs = []int{c.GreedyIDs[4]}
	res, err := e.Generate(ctx, req, func(int) error { return nil })
	if err != nil || res.Finish != generation.FinishStop || !slices.Equal(res.IDs, c.GreedyIDs[:4]) {
		t.Fatalf("stop id: %v %q %v", res.IDs, res.Finish, err)
	}

	// ErrStop from emit (a stop string matched) ends with the token kept.
	n := 0
	res, err = e.Generate(ctx, greedy(c.IDs, 60), func(int) error {
		if n++; n == 3 {
			return generation.ErrStop
		}
		return nil
	})
	if err != nil || res.Finish != generation.FinishStop || !slices.Equal(res.IDs, c.GreedyIDs[:3]) {
		t.Fatalf("ErrStop: %v %q %v", res.IDs, res.Finish, err)
	}

	// Any other emit error is returned.
	boom := errors.New("client gone")
	res, err = e.Generate(ctx, greedy(c.IDs, 60), func(int) error { return boom })
	if !errors.Is(err, boom) || len(res.IDs) != 1 {
		t.Fatalf("emit error: %v, %d ids", err, len(res.IDs))
	}

	// The model's context (512 positions) caps MaxNewTokens.
	long := slices.Repeat([]int{300}, 510)
	res, err = e.Generate(ctx, generation.Request{PromptIDs: long, MaxNewTokens: 50}, func(int) error { return nil })
	if err != nil || len(res.IDs) != 2 || res.Finish != generation.FinishLength {
		t.Fatalf("context limit: %d ids, %q, %v", len(res.IDs), res.Finish, err)
	}
	if _, err := e.Generate(ctx, generation.Request{PromptIDs: slices.Repeat([]int{300}, 512), MaxNewTokens: 1}, nil); err == nil {
		t.Fatal("a prompt as long as the context was accepted")
	}
	if _, err := e.Generate(ctx, generation.Request{PromptIDs: []int{1, 9999}, MaxNewTokens: 1}, nil); err == nil ||
		!strings.Contains(err.Error(), "vocabulary") {
		t.Fatalf("out-of-vocabulary id: %v", err)
	}
}

func TestCancellation(t *testing.T) {
	e := openStories(t)
	c := loadGolden(t).Cases[0]

	// Cancelled while emitting the 5th token: nothing after it.
	ctx, cancel := context.WithCancel(context.Background())
	var got []int
	res, err := e.Generate(ctx, greedy(c.IDs, 60), func(id int) error {
		got = append(got, id)
		if len(got) == 5 {
			cancel()
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) || res.Finish != generation.FinishCancelled {
		t.Fatalf("err %v, finish %q", err, res.Finish)
	}
	if len(got) != 5 || !slices.Equal(res.IDs, c.GreedyIDs[:5]) {
		t.Fatalf("after cancel at 5: streamed %d, result %v", len(got), res.IDs)
	}

	// Already cancelled: no token at all.
	res, err = e.Generate(ctx, greedy(c.IDs, 60), func(int) error { t.Fatal("emitted after cancel"); return nil })
	if !errors.Is(err, context.Canceled) || len(res.IDs) != 0 || res.Finish != generation.FinishCancelled {
		t.Fatalf("pre-cancelled: %v %v %q", err, res.IDs, res.Finish)
	}

	// A deadline in the middle of generation.
	ctx, cancel = context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	res, err = e.Generate(ctx, greedy([]int{1}, 100000), func(int) error { time.Sleep(time.Millisecond); return nil })
	if !errors.Is(err, context.DeadlineExceeded) || res.Finish != generation.FinishCancelled || len(res.IDs) == 0 {
		t.Fatalf("deadline: %v %q after %d tokens", err, res.Finish, len(res.IDs))
	}
}

// TestConcurrentGenerateEqualsSequential: 4 goroutines sharing one session, each with its own
// cache, produce what sequential calls produce (run with -race).
func TestConcurrentGenerateEqualsSequential(t *testing.T) {
	e := openStories(t)
	g := loadGolden(t)
	prompts := [][]int{g.Cases[0].IDs, g.Cases[1].IDs, g.Cases[2].IDs, {1, 317}}
	want := make([][]int, len(prompts))
	for i, p := range prompts {
		res, err := e.Generate(context.Background(), greedy(p, 40), func(int) error { return nil })
		if err != nil {
			t.Fatal(err)
		}
		want[i] = res.IDs
	}
	got := make([][]int, len(prompts))
	var wg sync.WaitGroup
	errs := make([]error, len(prompts))
	for round := range 3 {
		for i, p := range prompts {
			wg.Go(func() {
				res, err := e.Generate(context.Background(), greedy(p, 40), func(int) error { return nil })
				got[i], errs[i] = res.IDs, err
			})
		}
		wg.Wait()
		for i := range prompts {
			if errs[i] != nil || !slices.Equal(got[i], want[i]) {
				t.Fatalf("round %d prompt %d: concurrent %v (err %v), sequential %v", round, i, got[i], errs[i], want[i])
			}
		}
	}
}

func TestSeededSamplingReproducible(t *testing.T) {
	e := openStories(t)
	c := loadGolden(t).Cases[0]
	run := func(seed int64) []int {
		req := greedy(c.IDs, 40)
		req.Sampling = generation.Sampling{Temperature: 0.9, TopK: 40, TopP: 0.95, RepetitionPenalty: 1.1, Seed: seed}
		res, err := e.Generate(context.Background(), req, func(int) error { return nil })
		if err != nil {
			t.Fatal(err)
		}
		return res.IDs
	}
	a, b, other := run(7), run(7), run(8)
	if !slices.Equal(a, b) {
		t.Fatalf("same seed differs:\n%v\n%v", a, b)
	}
	if slices.Equal(a, other) || slices.Equal(a, c.GreedyIDs[:len(a)]) {
		t.Fatalf("seed 8 or greedy gave the same tokens as seed 7: %v", a)
	}
}

// TestQuantizedAndHalfExports: float16 (a float16 KV cache) and int8/int4 (MatMulNBits) exports run
// through the same engine, with the KV cache still matching a full recompute, and logits near fp32.
func TestQuantizedAndHalfExports(t *testing.T) {
	ref := openStories(t)
	c := loadGolden(t).Cases[1]
	refLogits, err := ref.Forward([][]int{c.IDs})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		dtype   string
		quant   export.Quantization
		contrib bool
		kv      int32
		tol     float64
	}{
		{"float16", export.QuantNone, false, elemFloat16, 0.1},
		// Loose bounds: the quantization's accuracy is the exporter's to test (perplexity); here a
		// wrong graph or cache would be off by far more.
		{"float32", export.QuantInt8, false, elemFloat, 1},
		{"float32", export.QuantInt4, false, elemFloat, 8}, // 4-bit weights of a 260K-parameter model are rough
		// The fused com.microsoft graph (GroupQueryAttention etc.) has the same inputs and outputs.
		{"float32", export.QuantNone, true, elemFloat, 1e-4},
	}
	for _, tc := range cases {
		name := tc.dtype + "-" + string(tc.quant)
		if tc.contrib {
			name += "-contrib"
		}
		t.Run(name, func(t *testing.T) {
			opt := export.DefaultOptions()
			opt.DType, opt.Quantize, opt.Contrib = tc.dtype, tc.quant, tc.contrib
			e := openExport(t, opt)
			if e.lay.kvElem != tc.kv {
				t.Fatalf("kv cache type %s, want %s", elemName(e.lay.kvElem), elemName(tc.kv))
			}
			got, err := e.Forward([][]int{c.IDs})
			if err != nil {
				t.Fatal(err)
			}
			var worst float64
			for p := range c.IDs {
				worst = max(worst, testutil.MaxAbsDiff(got[0][p], refLogits[0][p]))
			}
			if worst > tc.tol {
				t.Fatalf("logits differ from float32 by %.3f (limit %v)", worst, tc.tol)
			}
			cached := cachedVersusRecomputeTol(t, e, [][]int{c.IDs}, 10)
			t.Logf("vs float32: %.4f; cached vs recompute: %.2e", worst, cached)
		})
	}
}

// cachedVersusRecomputeTol is cachedVersusRecompute for quantized and float16 graphs.
func cachedVersusRecomputeTol(t *testing.T, e *Engine, prompts [][]int, steps int) float64 {
	t.Helper()
	b, err := e.NewBatch(len(prompts), 64)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	seq := slices.Clone(prompts[0])
	logits, err := b.Append(context.Background(), prompts)
	if err != nil {
		t.Fatal(err)
	}
	var worst float64
	// MatMulNBits picks kernels by the number of rows, so one-token and full-sequence passes round
	// differently; a float16 cache also rounds differently from the one-pass recompute.
	limit := 1e-4
	if e.lay.kvElem == elemFloat16 {
		limit = 1e-2
	}
	for range steps {
		full, err := e.Forward([][]int{seq})
		if err != nil {
			t.Fatal(err)
		}
		d := testutil.MaxAbsDiff(logits[0], full[0][len(seq)-1])
		if d > limit {
			t.Fatalf("length %d: cached differs from recompute by %.2e (limit %v)", len(seq), d, limit)
		}
		worst = max(worst, d)
		next := generation.Argmax(full[0][len(seq)-1])
		seq = append(seq, next)
		if logits, err = b.Decode(context.Background(), []int{next}); err != nil {
			t.Fatal(err)
		}
	}
	return worst
}

func TestOpenErrors(t *testing.T) {
	lib := testutil.ORTLibrary(t)
	dir := exportStories(t, export.DefaultOptions())

	if _, err := Open(Config{ModelDir: t.TempDir(), ORTLib: lib}, quiet); err == nil || !strings.Contains(err.Error(), "export") {
		t.Fatalf("empty dir: %v", err)
	}
	if _, err := Open(Config{ModelDir: dir, ORTLib: lib, Device: "tpu"}, quiet); err == nil || !strings.Contains(err.Error(), "one of auto, cpu, cuda") {
		t.Fatalf("bad device: %v", err)
	}
	if _, err := Open(Config{ModelDir: filepath.Dir(testutil.Stories260K(t)) + "/stories260K", ORTLib: lib}, quiet); err == nil ||
		!strings.Contains(err.Error(), "medassist export") {
		t.Fatalf("an HF dir (no model.onnx): %v", err)
	}
	if err := InitRuntime(filepath.Join(t.TempDir(), "libonnxruntime.so")); err == nil || !strings.Contains(err.Error(), "make setup") {
		// Either it is not there ("run make setup") or the runtime is already up from another library.
		if err == nil || !strings.Contains(err.Error(), "already initialised") {
			t.Fatalf("missing library: %v", err)
		}
	}
}

// TestDeviceSelection: with the CPU-only library, cuda fails with advice, and auto falls back
// with exactly one warning line naming the CPU.
func TestDeviceSelection(t *testing.T) {
	lib := testutil.ORTLibrary(t)
	dir := exportStories(t, export.DefaultOptions())
	open := func(device string) (*Engine, string, error) {
		var logs logBuffer
		e, err := Open(Config{ModelDir: dir, ORTLib: lib, Device: device}, slog.New(slog.NewTextHandler(&logs, nil)))
		return e, logs.String(), err
	}
	oneLine := func(t *testing.T, out, level, provider string) {
		t.Helper()
		if strings.Count(out, "\n") != 1 || !strings.Contains(out, "level="+level) || !strings.Contains(out, provider) {
			t.Fatalf("want one %s line naming %s, got:\n%s", level, provider, out)
		}
	}

	e, out, err := open(DeviceCPU)
	if err != nil {
		t.Fatal(err)
	}
	e.Close()
	oneLine(t, out, "INFO", "CPUExecutionProvider")

	if gpu, _ := gpuPresent(); gpu {
		t.Skip("this machine has an NVIDIA GPU: the no-GPU cases do not apply")
	}
	t.Run("no GPU", func(t *testing.T) {
		// auto: quietly the CPU, saying why; cuda: one sentence.
		e, out, err := open(DeviceAuto)
		if err != nil {
			t.Fatal(err)
		}
		defer e.Close()
		oneLine(t, out, "INFO", "CPUExecutionProvider")
		if e.Device() != DeviceCPU || !strings.Contains(out, "no NVIDIA GPU") {
			t.Fatalf("auto: device %q, log:\n%s", e.Device(), out)
		}
		_, _, err = open(DeviceCUDA)
		if err == nil || !strings.Contains(err.Error(), "no NVIDIA GPU") || !strings.Contains(err.Error(), "--device auto or cpu") ||
			strings.Count(err.Error(), ". ") > 0 {
			t.Fatalf("cuda without a GPU: want one sentence, got %v", err)
		}
	})
	t.Run("GPU without a working CUDA provider", func(t *testing.T) {
		// As on a GPU machine whose ONNX Runtime lacks the CUDA provider: auto warns and runs on the
		// CPU, cuda fails with the provider's error.
		gpuPresent = func() (bool, string) { return true, "NVIDIA GPU found (test)" }
		t.Cleanup(func() { gpuPresent = native.GPU })
		e, out, err := open(DeviceAuto)
		if err != nil {
			t.Fatal(err)
		}
		defer e.Close()
		if e.Device() == DeviceCUDA {
			t.Skipf("a CUDA build of ONNX Runtime is installed; log: %s", out)
		}
		oneLine(t, out, "WARN", "CPUExecutionProvider")
		if _, _, err := open(DeviceCUDA); err == nil || !strings.Contains(err.Error(), "--device cpu") {
			t.Fatalf("cuda without the CUDA provider: %v", err)
		}
		// The engine still works after the fallback.
		res, err := e.Generate(context.Background(), greedy([]int{1, 403}, 3), func(int) error { return nil })
		if err != nil || len(res.IDs) != 3 {
			t.Fatalf("generate after fallback: %v %v", res.IDs, err)
		}
	})
}

func TestClosedEngine(t *testing.T) {
	lib := testutil.ORTLibrary(t)
	e, err := Open(Config{ModelDir: exportStories(t, export.DefaultOptions()), ORTLib: lib, Device: DeviceCPU}, quiet)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if err := e.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := e.Generate(context.Background(), greedy([]int{1}, 2), func(int) error { return nil }); !errors.Is(err, ErrClosed) {
		t.Fatalf("generate on a closed engine: %v", err)
	}
}

func TestGraphIO(t *testing.T) {
	dir := exportStories(t, export.DefaultOptions())
	gio, err := readGraphIO(filepath.Join(dir, ModelFile))
	if err != nil {
		t.Fatal(err)
	}
	k := gio.Inputs["past_key_values.4.key"]
	if k.Elem != elemFloat || fmt.Sprint(k.Dims) != "[batch_size 4 past_sequence_length 8]" {
		t.Fatalf("past_key_values.4.key: %+v", k)
	}
	if l := gio.Outputs["logits"]; l.Elem != elemFloat || fmt.Sprint(l.Dims) != "[batch_size sequence_length 512]" {
		t.Fatalf("logits: %+v", l)
	}
	if len(gio.Inputs) != 13 || len(gio.Outputs) != 11 {
		t.Fatalf("%d inputs, %d outputs; want 13 and 11", len(gio.Inputs), len(gio.Outputs))
	}
	if _, err := readGraphIO(filepath.Join(dir, "config.json")); err == nil {
		t.Fatal("config.json read as ONNX")
	}
}

func TestBatchRejectsBadInput(t *testing.T) {
	e := openStories(t)
	b, err := e.NewBatch(2, 16)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx := context.Background()
	for _, seqs := range [][][]int{{{1, -1}, {1}}, {{1}}, {{}, {}}, {{1, 512}, {1}}} {
		if _, err := b.Append(ctx, seqs); err == nil {
			t.Errorf("Append(%v) accepted", seqs)
		}
	}
	// The rejected calls left the batch usable.
	logits, err := b.Append(ctx, [][]int{{1, 403}, {1}})
	if err != nil || len(logits[0]) != 512 || len(logits[1]) != 512 || b.Len() != 2 {
		t.Fatalf("after bad input: %v, len %d", err, b.Len())
	}
}
