package train

import (
	"context"
	"encoding/json"
	"github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	mlmodel "github.com/gomlx/gomlx/ml/model"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/medassist/medassist/generation"

	"github.com/medassist/medassist/internal/testutil"
)

type llamaGolden struct {
	Model     string `json:"model"`
	NewTokens int    `json:"new_tokens"`
	Cases     []struct {
		Prompt    string      `json:"prompt"`
		IDs       []int32     `json:"ids"`
		Logits    [][]float64 `json:"logits"`
		GreedyIDs []int       `json:"greedy_ids"`
	} `json:"cases"`
}

func loadLlamaGolden(t *testing.T) *llamaGolden {
	t.Helper()
	return readLlamaGolden(t, filepath.Join(testutil.RepoRoot(), "testdata", "llama", "stories260k.json"))
}

func readLlamaGolden(t *testing.T, path string) *llamaGolden {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("golden logits (make them with tools/oracle/llama_golden.py): %v", err)
	}
	var g llamaGolden
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatal(err)
	}
	return &g
}

// TestStoriesLogitsMatchTransformers compares every logit of three prompts with HF transformers.
func TestStoriesLogitsMatchTransformers(t *testing.T) {
	dir := testutil.Stories260K(t)
	golden := loadLlamaGolden(t)
	s := testSession(t, dir)
	for _, c := range golden.Cases {
		_, worst := logitsDiff(t, s, c.IDs, c.Logits)
		t.Logf("%q: %d positions, max |Δlogit| = %.2g", c.Prompt, len(c.Logits), worst)
		if worst > 1e-4 {
			t.Errorf("%q: logits differ from transformers by up to %g (want ≤ 1e-4)", c.Prompt, worst)
		}
	}
}

// logitsDiff runs ids through the session's forward pass and returns the logits [pos][vocab] and
// their largest difference from want.
func logitsDiff(t *testing.T, s *session, ids []int32, want [][]float64) ([][]float32, float64) {
	t.Helper()
	got, err := sessionLogits(s, [][]int32{ids})
	if err != nil {
		t.Fatal(err)
	}
	worst := 0.0
	for pos, row := range want {
		for v, w := range row {
			worst = math.Max(worst, math.Abs(float64(got[0][pos][v])-w))
		}
	}
	return got[0], worst
}

func testSession(t *testing.T, dir string) *session {
	t.Helper()
	b, err := NewBackend("")
	if err != nil {
		t.Fatal(err)
	}
	s, err := openSession(b, dir)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestStoriesGreedyMatchesTransformers decodes each golden prompt greedily with the GoMLX engine.
func TestStoriesGreedyMatchesTransformers(t *testing.T) {
	dir := testutil.Stories260K(t)
	golden := loadLlamaGolden(t)
	gen, err := OpenGenerator(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range golden.Cases {
		prompt := make([]int, len(c.IDs))
		for i, id := range c.IDs {
			prompt[i] = int(id)
		}
		var streamed []int
		res, err := gen.Generate(context.Background(), generation.Request{
			PromptIDs: prompt, MaxNewTokens: golden.NewTokens, StopIDs: []int{2},
		}, func(id int) error { streamed = append(streamed, id); return nil })
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(res.IDs, c.GreedyIDs) || !slices.Equal(streamed, c.GreedyIDs) {
			t.Errorf("%q: greedy ids\n got %v\nwant %v", c.Prompt, res.IDs, c.GreedyIDs)
		}
	}
}

// TestDecodeWithCacheMatchesRecompute checks the key/value cache: the logits of each decode step
// equal those of a full forward pass over the sequence so far.
func TestDecodeWithCacheMatchesRecompute(t *testing.T) {
	dir := testutil.Stories260K(t)
	golden := loadLlamaGolden(t)
	gen, err := OpenGenerator(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := golden.Cases[1]
	worst := cachedVsRecomputed(t, gen.(*generator), c.IDs, c.GreedyIDs[:12])
	t.Logf("12 decode steps: max |Δlogit| cached vs recomputed = %.2g", worst)
	if worst > 1e-4 {
		t.Errorf("cached decoding differs from recomputation by %g", worst)
	}
}

// cachedVsRecomputed feeds ids, then each of next, through the generator's cache and returns the
// largest difference between the logits of each step and those of a full forward pass over the
// sequence so far.
func cachedVsRecomputed(t *testing.T, g *generator, ids []int32, next []int) float64 {
	t.Helper()
	prompt := toInts(ids)
	seq, logits, err := g.start(prompt, len(prompt)+len(next))
	if err != nil {
		t.Fatal(err)
	}
	defer seq.close()
	worst := 0.0
	for _, id := range next {
		full := make([]int32, len(seq.ids))
		for i, id := range seq.ids {
			full[i] = int32(id)
		}
		ref, err := sessionLogits(g.s, [][]int32{full})
		if err != nil {
			t.Fatal(err)
		}
		worst = math.Max(worst, testutil.MaxAbsDiff(ref[0][len(full)-1], logits))
		if logits, err = seq.next(id); err != nil {
			t.Fatal(err)
		}
	}
	return worst
}

// sessionLogits runs the forward pass on a batch of equal-length sequences and returns
// [b][s][vocab].
func sessionLogits(s *session, ids [][]int32) ([][][]float32, error) {
	b, n := len(ids), len(ids[0])
	flat := make([]int32, 0, b*n)
	for _, row := range ids {
		flat = append(flat, row...)
	}
	fwd := func(_ *mlmodel.Scope, ids *graph.Node) *graph.Node {
		defer releaseVJPs(ids.Graph())
		return buildLlama(s.store, ids.Graph(), s.cfg, s.adapter, nil).Forward(ids)
	}
	out, err := mlmodel.CallOnce(s.backend, s.store, fwd, tensors.FromFlatDataAndDimensions(flat, b, n))
	if err != nil {
		return nil, err
	}
	v := s.cfg.VocabSize
	data := tensors.MustCopyFlatData[float32](out)
	res := make([][][]float32, b)
	for i := range res {
		res[i] = make([][]float32, n)
		for j := range n {
			res[i][j] = data[(i*n+j)*v : (i*n+j+1)*v]
		}
	}
	return res, nil
}

// TestTinyRandomLogitsMatchTransformers runs the tiny random models of testdata/export (one per
// rope_scaling kind the config accepts, tools/oracle/tiny_random.py) through the GoMLX forward.
func TestTinyRandomLogitsMatchTransformers(t *testing.T) {
	for _, name := range []string{"tiny-gqa2-default", "tiny-mha-tied-linear", "tiny-gqa3-untied-llama3", "tiny-mha-llama3-factors"} {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join(testutil.RepoRoot(), "testdata", "export", name)
			golden := readLlamaGolden(t, filepath.Join(dir, "golden.json"))
			s := testSession(t, dir)
			t.Logf("rope_scaling %+v", s.cfg.RopeScaling)
			c := golden.Cases[0]
			got, worst := logitsDiff(t, s, c.IDs, c.Logits)
			t.Logf("%d positions, max |Δlogit| = %.2g", len(c.Logits), worst)
			if worst > 1e-4 {
				t.Errorf("logits differ from transformers by up to %g (want ≤ 1e-4)", worst)
			}
			gen, err := OpenGenerator(dir, nil)
			if err != nil {
				t.Fatal(err)
			}
			// The cached path (rotary rows gathered at the cache position) on the prompt's first 9
			// tokens, then the next 12 ids.
			cached := cachedVsRecomputed(t, gen.(*generator), c.IDs[:9], toInts(c.IDs[9:21]))
			t.Logf("12 cached decode steps: max |Δlogit| cached vs recomputed = %.2g", cached)
			if cached > 1e-4 {
				t.Errorf("cached decoding differs from recomputation by %g", cached)
			}
			if s.cfg.RopeScaling == nil {
				return
			}
			// The golden must tell the scaling apart: without it the logits are far off.
			unscaled := *s.cfg
			unscaled.RopeScaling = nil
			s.cfg = &unscaled
			plain, err := sessionLogits(s, [][]int32{c.IDs})
			if err != nil {
				t.Fatal(err)
			}
			if d := testutil.MaxAbsDiff(plain[0][len(c.IDs)-1], got[len(c.IDs)-1]); d < 1e-3 {
				t.Errorf("dropping rope_scaling changes the last logits by only %g: the golden does not test it", d)
			}
		})
	}
}

func toInts(ids []int32) []int {
	out := make([]int, len(ids))
	for i, id := range ids {
		out[i] = int(id)
	}
	return out
}
