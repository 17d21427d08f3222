package export

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/medassist/medassist/internal/testutil"
)

// flashcardIDs is testdata/export/flashcards_stories260k.json (tools/oracle/flashcard_ppl.py):
// the first 200 flashcards rendered as "Question: ...\nAnswer: ..." and tokenized, with the
// perplexity transformers gives them in float32.
type flashcardIDs struct {
	Cards      int       `json:"cards"`
	Tokens     int       `json:"tokens"`
	Perplexity float64   `json:"perplexity"`
	IDs        [][]int64 `json:"ids"`
}

// perplexity is exp(mean NLL) over every token after the first, pooled over the sequences.
func perplexity(t *testing.T, dec *decoderSession, seqs [][]int64) float64 {
	t.Helper()
	var nll float64
	var n int
	for _, ids := range seqs {
		logits, _ := dec.run(t, fullStep(ids), nil)
		for pos := 0; pos+1 < len(ids); pos++ {
			nll -= logSoftmaxAt(logits[0][pos], int(ids[pos+1]))
			n++
		}
	}
	return math.Exp(nll / float64(n))
}

func logSoftmaxAt(logits []float32, target int) float64 {
	m := math.Inf(-1)
	for _, v := range logits {
		m = max(m, float64(v))
	}
	var sum float64
	for _, v := range logits {
		sum += math.Exp(float64(v) - m)
	}
	return float64(logits[target]) - m - math.Log(sum)
}

// Weight-only quantization must cost little perplexity on medical text: at most +2% for int8 and
// +15% for int4 over float32, with the default options (symmetric blocks of 32, head quantized,
// accuracy_level 4). Perplexity counts every token after BOS, questions and answers alike.
func TestQuantizedPerplexity(t *testing.T) {
	src := testutil.Stories260K(t)
	b, err := os.ReadFile(filepath.Join(testutil.RepoRoot(), "testdata", "export", "flashcards_stories260k.json"))
	if err != nil {
		t.Fatal(err)
	}
	var fc flashcardIDs
	if err := json.Unmarshal(b, &fc); err != nil {
		t.Fatal(err)
	}
	variants := []struct {
		name  string
		quant Quantization
		limit float64 // allowed ratio to float32
	}{
		{"float32", QuantNone, 0},
		{"int8", QuantInt8, 1.02},
		{"int4", QuantInt4, 1.15},
	}
	// The three exports are scored in parallel (one ONNX Runtime thread each).
	ppl := make([]float64, len(variants))
	t.Run("score", func(t *testing.T) {
		for i, v := range variants {
			t.Run(v.name, func(t *testing.T) {
				t.Parallel()
				opt := DefaultOptions()
				opt.Quantize = v.quant
				ppl[i] = perplexity(t, openDecoder(t, exportModel(t, src, opt)), fc.IDs)
			})
		}
	})
	if t.Failed() {
		return
	}
	for i, v := range variants {
		ratio := ppl[i] / ppl[0]
		t.Logf("%-7s perplexity %.3f (%+.2f%% vs float32; transformers float32: %.3f) over %d tokens of %d cards",
			v.name, ppl[i], 100*(ratio-1), fc.Perplexity, fc.Tokens, fc.Cards)
		if v.limit > 0 && ratio > v.limit {
			t.Errorf("%s perplexity %.3f is %+.2f%% over float32 (%.3f); allowed %+.0f%%",
				v.name, ppl[i], 100*(ratio-1), ppl[0], 100*(v.limit-1))
		}
	}
	if d := math.Abs(ppl[0]/fc.Perplexity - 1); d > 1e-4 {
		t.Errorf("float32 perplexity %.4f differs from transformers' %.4f by %.2g (relative)", ppl[0], fc.Perplexity, d)
	}
}
