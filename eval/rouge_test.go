package eval

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/medassist/medassist/internal/testutil"
)

type goldenScore struct{ Precision, Recall, F1 float64 }

// TestRougeMatchesRougeScore compares every pair with Google's rouge-score (tools/oracle/rouge_golden.py).
func TestRougeMatchesRougeScore(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(testutil.RepoRoot(), "testdata", "eval", "rouge_golden.json"))
	if err != nil {
		t.Fatal(err)
	}
	var g struct {
		Cases []struct {
			Reference, Prediction string
			Rouge1                goldenScore `json:"rouge1"`
			Rouge2                goldenScore `json:"rouge2"`
			RougeL                goldenScore `json:"rougeL"`
		}
	}
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatal(err)
	}
	if len(g.Cases) < 200 {
		t.Fatalf("golden set has %d pairs, want >= 200", len(g.Cases))
	}
	worst := 0.0
	for i, c := range g.Cases {
		got := ComputeRouge(c.Reference, c.Prediction)
		for _, pair := range []struct {
			name string
			got  Score
			want goldenScore
		}{{"rouge1", got.Rouge1, c.Rouge1}, {"rouge2", got.Rouge2, c.Rouge2}, {"rougeL", got.RougeL, c.RougeL}} {
			for _, d := range []float64{pair.got.Precision - pair.want.Precision, pair.got.Recall - pair.want.Recall, pair.got.F1 - pair.want.F1} {
				worst = math.Max(worst, math.Abs(d))
				if math.Abs(d) > 1e-6 {
					t.Fatalf("pair %d %s: got %+v, want %+v\nref=%q\npred=%q", i, pair.name, pair.got, pair.want, c.Reference, c.Prediction)
				}
			}
		}
	}
	t.Logf("%d pairs, max abs difference %.3g", len(g.Cases), worst)
}

func TestRougeHandChecked(t *testing.T) {
	r := ComputeRouge("the cat sat on the mat", "the cat on the mat")
	// unigrams: overlap 5 of pred 5, ref 6; bigrams: "the cat","on the","the mat" = 3 of pred 4, ref 5; LCS 5.
	if r.Rouge1.Precision != 1 || math.Abs(r.Rouge1.Recall-5.0/6) > 1e-12 {
		t.Fatalf("rouge1 %+v", r.Rouge1)
	}
	if math.Abs(r.Rouge2.Precision-0.75) > 1e-12 || math.Abs(r.Rouge2.Recall-0.6) > 1e-12 {
		t.Fatalf("rouge2 %+v", r.Rouge2)
	}
	if r.RougeL.Precision != 1 || math.Abs(r.RougeL.Recall-5.0/6) > 1e-12 {
		t.Fatalf("rougeL %+v", r.RougeL)
	}
	if z := ComputeRouge("", "x"); z.RougeL != (Score{}) || z.Rouge1.F1 != 0 {
		t.Fatalf("empty reference must score 0: %+v", z)
	}
}
