package eval

import (
	"context"
	"math"
	"testing"

	"github.com/medassist/medassist/train/data"
)

const ig = data.IgnoreIndex

// TestAnswerNLLHandChecked: vocab of 3, logits chosen so that the softmax is easy by hand.
func TestAnswerNLLHandChecked(t *testing.T) {
	ln2, ln3 := math.Log(2), math.Log(3)
	logits := [][]float32{
		{0, 0, 0},                 // position 0 predicts token 1: uniform, p = 1/3
		{float32(ln2), 0, 0},      // position 1 predicts token 2: p(0) = 2/4
		{0, float32(ln3), 0},      // position 2 predicts token 3: p(1) = 3/5
		{100, 100, -100},          // position 3 (last) predicts nothing
		{float32(ln2), 0, 0},      // extra padded position: ignored
		{1e30, -1e30, float32(0)}, // extra: would be inf/nan if used
	}
	// Tokens 0 and 1 are the prompt; 2 and 3 are the answer.
	labels := []int32{ig, ig, 0, 1}
	n, err := AnswerNLL(logits, labels)
	if err != nil {
		t.Fatal(err)
	}
	want := -math.Log(2.0/4) - math.Log(3.0/5)
	if n.Tokens != 2 || n.Examples != 1 || math.Abs(n.Sum-want) > 1e-6 {
		t.Fatalf("got %+v, want sum %v over 2 tokens", n, want)
	}
	if ppl := n.Perplexity(); math.Abs(ppl-math.Exp(want/2)) > 1e-6 {
		t.Fatalf("perplexity %v, want %v", ppl, math.Exp(want/2))
	}
	// Uniform logits give perplexity = vocabulary size, whatever the labels.
	u, _ := AnswerNLL([][]float32{{5, 5, 5, 5}, {-1, -1, -1, -1}, {7, 7, 7, 7}}, []int32{ig, 3, 2})
	if math.Abs(u.Perplexity()-4) > 1e-9 {
		t.Fatalf("uniform perplexity %v, want 4", u.Perplexity())
	}
	// Large logits do not overflow.
	big, err := AnswerNLL([][]float32{{1000, 0}}, []int32{ig, 0})
	if err != nil || math.IsNaN(big.Sum) || big.Sum > 1e-12 {
		t.Fatalf("large logits: %+v %v", big, err)
	}
}

func TestAnswerNLLErrors(t *testing.T) {
	if _, err := AnswerNLL([][]float32{{0, 0}}, []int32{ig, 1, 1}); err == nil {
		t.Fatal("too few logit positions must be an error")
	}
	if _, err := AnswerNLL([][]float32{{0, 0}}, []int32{ig, 2}); err == nil {
		t.Fatal("a label outside the vocabulary must be an error")
	}
	if n := (NLL{}); !math.IsNaN(n.Perplexity()) {
		t.Fatal("no tokens must give NaN")
	}
}

// TestLogitsScorerPads checks the padding and the accumulation over examples with a forward
// function whose logits depend only on the tokens so far (as a causal LM's do).
func TestLogitsScorerPads(t *testing.T) {
	var shapes []int
	forward := func(ids [][]int) ([][][]float32, error) {
		shapes = append(shapes, len(ids[0]))
		out := make([][]float32, len(ids[0]))
		for i := range out {
			// favour token (ids[i]+1) % 3 by ln 2
			row := []float32{0, 0, 0}
			row[(ids[0][i]+1)%3] = float32(math.Log(2))
			out[i] = row
		}
		return [][][]float32{out}, nil
	}
	examples := []data.Example{
		{IDs: []int32{0, 1, 2}, Labels: []int32{ig, 1, 2}},               // both predicted tokens favoured: p = 1/2 each
		{IDs: []int32{0, 2, 2, 0, 1}, Labels: []int32{ig, ig, ig, 0, 1}}, // 2→0 favoured (1/2), 0→1 favoured (1/2)
	}
	unpadded, err := LogitsScorer{Forward: forward}.ScoreAnswers(context.Background(), examples)
	if err != nil {
		t.Fatal(err)
	}
	padded, err := LogitsScorer{Forward: forward, PadTo: 4, PadID: 0}.ScoreAnswers(context.Background(), examples)
	if err != nil {
		t.Fatal(err)
	}
	if want := []int{3, 5, 4, 8}; len(shapes) != 4 || shapes[2] != want[2] || shapes[3] != want[3] {
		t.Fatalf("forward shapes %v, want %v", shapes, want)
	}
	if unpadded != padded || unpadded.Tokens != 4 || unpadded.Examples != 2 || math.Abs(unpadded.Perplexity()-2) > 1e-6 {
		t.Fatalf("unpadded %+v, padded %+v: want 4 tokens at perplexity 2", unpadded, padded)
	}
}
