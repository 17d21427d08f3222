package export

import (
	"path/filepath"
	"testing"

	"github.com/medassist/medassist/internal/testutil"
)

// The tiny random models in testdata/export (tools/oracle/tiny_random.py) cover an untied head, a
// GQA ratio of 3, plain multi-head attention, and every rope_scaling kind the config accepts: none,
// linear, and llama3 with Llama 3.1's factors and with others.
var tinyModels = []string{"tiny-gqa3-untied-llama3", "tiny-mha-tied-linear", "tiny-gqa2-default", "tiny-mha-llama3-factors"}

func tinyDir(name string) string {
	return filepath.Join(testutil.RepoRoot(), "testdata", "export", name)
}

func TestTinyRandomModels(t *testing.T) {
	for _, name := range tinyModels {
		t.Run(name, func(t *testing.T) {
			dir := tinyDir(name)
			dec := openDecoder(t, exportModel(t, dir, DefaultOptions()))
			g := loadGolden(t, filepath.Join("testdata", "export", name, "golden.json"))
			c := g.Cases[0]
			logits, _ := dec.run(t, fullStep(c.IDs), nil)
			var worst float64
			for pos, want := range c.Logits {
				worst = max(worst, testutil.MaxAbsDiff(logits[0][pos], want))
			}
			t.Logf("%d positions, max |logit - transformers| = %.2g", len(c.IDs), worst)
			if worst > 1e-4 {
				t.Errorf("logits differ from transformers by %g (> 1e-4)", worst)
			}

			// KV cache vs full recompute, two left-padded rows of different lengths.
			_, diff := greedyCompare(t, dec, [][]int64{c.IDs[:7], c.IDs[:19]}, 12)
			t.Logf("batch 2 KV cache: max |cached - full| = %.2g", diff)
			if diff > 1e-5 {
				t.Errorf("KV-cache logits differ from a full recompute by %g (> 1e-5)", diff)
			}
		})
	}
}
