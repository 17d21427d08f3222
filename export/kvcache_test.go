package export

import (
	"testing"

	"github.com/medassist/medassist/generation"
	"github.com/medassist/medassist/internal/testutil"
)

// batch is a left-padded batch of token sequences, as a generation loop feeds the decoder:
// padding has mask 0, and positions count only real tokens (padding gets position 0).
type batch struct {
	ids, mask [][]int64
}

func leftPad(seqs [][]int64, pad int64) batch {
	longest := 0
	for _, s := range seqs {
		longest = max(longest, len(s))
	}
	var b batch
	for _, s := range seqs {
		n := longest - len(s)
		ids := make([]int64, 0, longest)
		mask := make([]int64, 0, longest)
		for i := 0; i < n; i++ {
			ids, mask = append(ids, pad), append(mask, 0)
		}
		for _, id := range s {
			ids, mask = append(ids, id), append(mask, 1)
		}
		b.ids, b.mask = append(b.ids, ids), append(b.mask, mask)
	}
	return b
}

// positions are cumsum(mask) - 1, with 0 for padding (what transformers' generate computes).
func positions(mask []int64) []int64 {
	pos := make([]int64, len(mask))
	var n int64
	for i, m := range mask {
		n += m
		if m == 1 {
			pos[i] = n - 1
		}
	}
	return pos
}

// fullPass is a forward over the whole batch with no cache.
func (b batch) fullPass() step {
	st := step{ids: b.ids, mask: b.mask}
	for _, m := range b.mask {
		st.pos = append(st.pos, positions(m))
	}
	return st
}

// greedyCompare decodes `steps` greedy tokens for each sequence with the KV cache, and at every
// step compares the cached logits with a full recompute of the whole sequence. It returns the new
// tokens of each row and the largest difference seen.
func greedyCompare(t *testing.T, dec *decoderSession, seqs [][]int64, steps int) ([][]int64, float64) {
	t.Helper()
	b := leftPad(seqs, 0)
	logits, cache := dec.run(t, b.fullPass(), nil)
	last := make([][]float32, len(seqs))
	for r := range last {
		last[r] = logits[r][len(b.ids[r])-1]
	}
	gen := make([][]int64, len(seqs))
	var worst float64
	for s := 0; s < steps; s++ {
		var next step
		for r := range seqs {
			tok := int64(generation.Argmax(last[r]))
			gen[r] = append(gen[r], tok)
			b.ids[r] = append(b.ids[r], tok)
			b.mask[r] = append(b.mask[r], 1)
			pos := positions(b.mask[r])
			next.ids = append(next.ids, []int64{tok})
			next.pos = append(next.pos, []int64{pos[len(pos)-1]})
			next.mask = append(next.mask, b.mask[r])
		}
		var stepLogits [][][]float32
		stepLogits, cache = dec.run(t, next, cache)
		full, _ := dec.run(t, b.fullPass(), nil)
		for r := range seqs {
			last[r] = stepLogits[r][0]
			worst = max(worst, testutil.MaxAbsDiff(last[r], full[r][len(b.ids[r])-1]))
		}
	}
	return gen, worst
}

func TestKVCacheMatchesFullRecompute(t *testing.T) {
	src := testutil.Stories260K(t)
	dec := openDecoder(t, exportModel(t, src, DefaultOptions()))
	g := loadGolden(t, "testdata/llama/stories260k.json")
	short, long := g.Cases[0].IDs, g.Cases[1].IDs

	t.Run("batch1", func(t *testing.T) {
		gen, diff := greedyCompare(t, dec, [][]int64{short}, 20)
		t.Logf("batch 1: 20 steps, max |cached - full| = %.2g", diff)
		if diff > 1e-5 {
			t.Errorf("KV-cache logits differ from a full recompute by %g (> 1e-5)", diff)
		}
		assertPrefix(t, gen[0], g.Cases[0].GreedyIDs)
	})
	t.Run("batch2_left_padded", func(t *testing.T) {
		gen, diff := greedyCompare(t, dec, [][]int64{short, long}, 20)
		t.Logf("batch 2 (left padding %d): 20 steps, max |cached - full| = %.2g", len(long)-len(short), diff)
		if diff > 1e-5 {
			t.Errorf("KV-cache logits differ from a full recompute by %g (> 1e-5)", diff)
		}
		// Padding must not change a row's result: both rows decode as they do alone.
		assertPrefix(t, gen[0], g.Cases[0].GreedyIDs)
		assertPrefix(t, gen[1], g.Cases[1].GreedyIDs)
	})
}

// assertPrefix checks that got equals the start of want.
func assertPrefix(t *testing.T, got, want []int64) {
	t.Helper()
	for i := range got {
		if i >= len(want) || got[i] != want[i] {
			t.Fatalf("token %d: got %v, want the start of %v", i, got, want)
		}
	}
}

func TestGreedyMatchesTransformers(t *testing.T) {
	src := testutil.Stories260K(t)
	dec := openDecoder(t, exportModel(t, src, DefaultOptions()))
	g := loadGolden(t, "testdata/llama/stories260k.json")
	for _, c := range g.Cases {
		gen := greedy(t, dec, c.IDs, len(c.GreedyIDs))
		if len(gen) != len(c.GreedyIDs) {
			t.Fatalf("%q: generated %d tokens, golden has %d", c.Prompt, len(gen), len(c.GreedyIDs))
		}
		for i := range gen {
			if gen[i] != c.GreedyIDs[i] {
				t.Fatalf("%q: token %d is %d, transformers generated %d\ngot  %v\nwant %v", c.Prompt, i, gen[i], c.GreedyIDs[i], gen, c.GreedyIDs)
			}
		}
	}
}

// greedy decodes n tokens with the KV cache (batch 1, stopping early at EOS id 2 like the golden).
func greedy(t *testing.T, dec *decoderSession, ids []int64, n int) []int64 {
	t.Helper()
	logits, cache := dec.run(t, fullStep(ids), nil)
	last := logits[0][len(ids)-1]
	mask := make([]int64, len(ids))
	for i := range mask {
		mask[i] = 1
	}
	var gen []int64
	eos := dec.cfg.EOSTokenIDs()
	for len(gen) < n {
		tok := int64(generation.Argmax(last))
		gen = append(gen, tok)
		if len(eos) > 0 && tok == int64(eos[0]) {
			break
		}
		mask = append(mask, 1)
		var out [][][]float32
		out, cache = dec.run(t, step{ids: [][]int64{{tok}}, mask: [][]int64{mask}, pos: [][]int64{{int64(len(mask) - 1)}}}, cache)
		last = out[0][0]
	}
	return gen
}
