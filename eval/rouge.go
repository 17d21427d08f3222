// Package eval measures a model: teacher-forced perplexity on answer tokens, ROUGE of greedy answers
// against references, base versus fine-tuned, and the reports written from them.
package eval

import (
	"regexp"
	"strings"
)

// Score is precision, recall and F1 of one ROUGE variant.
type Score struct {
	Precision float64 `json:"precision"`
	Recall    float64 `json:"recall"`
	F1        float64 `json:"f1"`
}

// Rouge holds ROUGE-1, ROUGE-2 and ROUGE-L (sentence-level LCS) of one prediction against one reference.
type Rouge struct {
	Rouge1 Score `json:"rouge1"`
	Rouge2 Score `json:"rouge2"`
	RougeL Score `json:"rougeL"`
}

var nonAlnum = regexp.MustCompile(`[^a-z0-9]+`)

// RougeTokens tokenizes as Google's rouge-score does without stemming: lowercase, every run of
// characters other than ASCII letters and digits becomes a separator.
func RougeTokens(text string) []string {
	return strings.Fields(nonAlnum.ReplaceAllString(strings.ToLower(text), " "))
}

// ComputeRouge scores prediction against reference (the argument order of rouge-score is target, prediction).
func ComputeRouge(reference, prediction string) Rouge {
	ref, pred := RougeTokens(reference), RougeTokens(prediction)
	return Rouge{Rouge1: rougeN(ref, pred, 1), Rouge2: rougeN(ref, pred, 2), RougeL: rougeL(ref, pred)}
}

func ngrams(tokens []string, n int) map[string]int {
	m := map[string]int{}
	for i := 0; i+n <= len(tokens); i++ {
		m[strings.Join(tokens[i:i+n], " ")]++
	}
	return m
}

func rougeN(ref, pred []string, n int) Score {
	r, p := ngrams(ref, n), ngrams(pred, n)
	overlap, refTotal, predTotal := 0, 0, 0
	for g, c := range r {
		overlap += min(c, p[g])
		refTotal += c
	}
	for _, c := range p {
		predTotal += c
	}
	return score(float64(overlap)/float64(max(predTotal, 1)), float64(overlap)/float64(max(refTotal, 1)))
}

func rougeL(ref, pred []string) Score {
	if len(ref) == 0 || len(pred) == 0 {
		return Score{}
	}
	lcs := lcsLength(ref, pred)
	return score(float64(lcs)/float64(len(pred)), float64(lcs)/float64(len(ref)))
}

// lcsLength is the length of the longest common subsequence, in O(len(a)·len(b)) time and O(len(b)) space.
func lcsLength(a, b []string) int {
	prev, cur := make([]int, len(b)+1), make([]int, len(b)+1)
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			if a[i-1] == b[j-1] {
				cur[j] = prev[j-1] + 1
			} else {
				cur[j] = max(prev[j], cur[j-1])
			}
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

func score(p, r float64) Score {
	f := 0.0
	if p+r > 0 {
		f = 2 * p * r / (p + r)
	}
	return Score{Precision: p, Recall: r, F1: f}
}

// MeanRouge averages scores field by field (rouge-score's BootstrapAggregator reports the same mid value
// without resampling).
func MeanRouge(scores []Rouge) Rouge {
	var m Rouge
	if len(scores) == 0 {
		return m
	}
	add := func(dst *Score, s Score) {
		dst.Precision += s.Precision
		dst.Recall += s.Recall
		dst.F1 += s.F1
	}
	for _, s := range scores {
		add(&m.Rouge1, s.Rouge1)
		add(&m.Rouge2, s.Rouge2)
		add(&m.RougeL, s.RougeL)
	}
	n := float64(len(scores))
	for _, s := range []*Score{&m.Rouge1, &m.Rouge2, &m.RougeL} {
		s.Precision /= n
		s.Recall /= n
		s.F1 /= n
	}
	return m
}
