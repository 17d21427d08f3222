package train

import (
	"math"
	"testing"

	"github.com/gomlx/gomlx/core/tensors"
	"github.com/medassist/medassist/internal/testutil"
	"github.com/medassist/medassist/model"
	"github.com/medassist/medassist/train/data"
)

// TestChunkedAttentionMatchesOneBlock checks the blocked causal attention that sequences longer than
// attnChunk take (chunkedCausal) against the one-block computation that the transformers and PEFT
// goldens pin (they are all shorter than a block): the logits of a 300-token sequence, and the LoRA
// gradients of a micro-batch of 300 and 261 tokens, with non-zero B so that every adapter tensor has
// a gradient.
func TestChunkedAttentionMatchesOneBlock(t *testing.T) {
	dir := testutil.Stories260K(t)
	cfg, err := model.LoadConfig(dir)
	if err != nil {
		t.Fatal(err)
	}
	exs := []data.Example{fakeExample(300, cfg.VocabSize, 1), fakeExample(261, cfg.VocabSize, 2)}
	if len(exs[0].IDs) <= attnChunk {
		t.Fatalf("the test sequence (%d tokens) must be longer than one block (%d)", len(exs[0].IDs), attnChunk)
	}
	run := func(chunk int) ([]float32, map[string][]float32) {
		defer func(c int) { attnChunk = c }(attnChunk)
		attnChunk = chunk
		s := testSession(t, dir)
		s.adapter = &Adapter{Rank: 4, Alpha: 8, Targets: model.Projections}
		if err := initAdapters(s.store, s.cfg, s.adapter, 1); err != nil {
			t.Fatal(err)
		}
		for _, name := range adapterNames(s.cfg, s.adapter) {
			v := s.store.GetVariable(loraPath(name))
			vals := tensors.MustCopyFlatData[float32](v.MustValue())
			for i := range vals {
				vals[i] = float32(math.Sin(float64(i+len(name)))) * 0.05
			}
			if err := v.SetValue(tensors.FromFlatDataAndDimensions(vals, v.Shape().Dimensions...)); err != nil {
				t.Fatal(err)
			}
		}
		logits, err := sessionLogits(s, [][]int32{exs[0].IDs})
		if err != nil {
			t.Fatal(err)
		}
		var flat []float32
		for _, row := range logits[0] {
			flat = append(flat, row...)
		}
		opt, err := newOptimizer(s, 0, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		b := makeBatch(exs, seqBucket)
		if _, err := opt.Step(b, 1/float32(b.targets)); err != nil {
			t.Fatal(err)
		}
		grads := map[string][]float32{}
		for _, name := range opt.names {
			grads[name] = tensors.MustCopyFlatData[float32](opt.variable(accScope + "/" + name).MustValue())
		}
		return flat, grads
	}
	blockedLogits, blockedGrads := run(attnChunk)
	oneLogits, oneGrads := run(math.MaxInt32)

	// Sums over fewer keys round differently: the tolerance is relative to the largest logit.
	if d, m := testutil.MaxAbsDiff(blockedLogits, oneLogits), maxAbs(oneLogits); m == 0 || d > 1e-5*m {
		t.Errorf("logits of blocked attention differ from one block by up to %g (largest logit %g)", d, m)
	} else {
		t.Logf("logits: max |Δ| %.2g, largest logit %.3g, %d values", d, m, len(oneLogits))
	}
	worst, scale := 0.0, 0.0
	for name, g := range oneGrads {
		worst = math.Max(worst, testutil.MaxAbsDiff(blockedGrads[name], g))
		scale = math.Max(scale, maxAbs(g))
	}
	if scale == 0 || worst > 1e-5*scale {
		t.Errorf("LoRA gradients of blocked attention differ from one block by up to %g (largest gradient %g)", worst, scale)
	} else {
		t.Logf("gradients: max |Δ| %.2g, largest gradient %.2g, %d tensors", worst, scale, len(oneGrads))
	}
}

func maxAbs(a []float32) float64 {
	m := 0.0
	for _, v := range a {
		m = math.Max(m, math.Abs(float64(v)))
	}
	return m
}
