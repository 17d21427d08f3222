package export

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/medassist/medassist/internal/testutil"
)

// golden is testdata/llama/<model>.json, written by tools/oracle/llama_golden.py from
// Hugging Face transformers.
type golden struct {
	Cases []struct {
		Prompt    string      `json:"prompt"`
		IDs       []int64     `json:"ids"`
		Logits    [][]float32 `json:"logits"`
		GreedyIDs []int64     `json:"greedy_ids"`
	} `json:"cases"`
}

func loadGolden(t testing.TB, rel string) *golden {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testutil.RepoRoot(), rel))
	if err != nil {
		t.Fatal(err)
	}
	var g golden
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatalf("%s: %v", rel, err)
	}
	return &g
}

var quietLog = slog.New(slog.NewTextHandler(io.Discard, nil))

// exportModel exports dir with opt into a fresh temporary dir and returns it.
func exportModel(t testing.TB, dir string, opt Options) string {
	t.Helper()
	out := t.TempDir()
	if _, err := Export(context.Background(), dir, out, opt, quietLog, nil); err != nil {
		t.Fatalf("export %s: %v", dir, err)
	}
	return out
}

func TestStories260KLogitsMatchTransformers(t *testing.T) {
	src := testutil.Stories260K(t)
	dec := openDecoder(t, exportModel(t, src, DefaultOptions()))
	g := loadGolden(t, "testdata/llama/stories260k.json")
	for _, c := range g.Cases {
		logits, _ := dec.run(t, fullStep(c.IDs), nil)
		var worst float64
		for pos, want := range c.Logits {
			worst = max(worst, testutil.MaxAbsDiff(logits[0][pos], want))
		}
		t.Logf("%q: %d positions, max |logit - transformers| = %.2g", c.Prompt, len(c.IDs), worst)
		if worst > 1e-4 {
			t.Errorf("%q: logits differ from transformers by %g (> 1e-4)", c.Prompt, worst)
		}
	}
}

// fullStep is a batch-1 forward over ids with no past.
func fullStep(ids []int64) step {
	mask := make([]int64, len(ids))
	pos := make([]int64, len(ids))
	for i := range ids {
		mask[i], pos[i] = 1, int64(i)
	}
	return step{ids: [][]int64{ids}, mask: [][]int64{mask}, pos: [][]int64{pos}}
}
