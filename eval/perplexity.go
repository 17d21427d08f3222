package eval

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"

	"github.com/medassist/medassist/train/data"
)

// NLL accumulates the teacher-forced negative log-likelihood (in nats) of answer tokens.
type NLL struct {
	Sum      float64 // summed -log p(token | tokens before it)
	Tokens   int     // answer tokens scored
	Examples int     // examples scored
}

// Add merges another accumulation into n.
func (n *NLL) Add(o NLL) {
	n.Sum += o.Sum
	n.Tokens += o.Tokens
	n.Examples += o.Examples
}

// Mean is the mean NLL per answer token (the cross-entropy loss); NaN when nothing was scored.
func (n NLL) Mean() float64 {
	if n.Tokens == 0 {
		return math.NaN()
	}
	return n.Sum / float64(n.Tokens)
}

// Perplexity is exp(mean NLL over answer tokens).
func (n NLL) Perplexity() float64 { return math.Exp(n.Mean()) }

// AnswerNLL scores one example from the logits of a causal LM run on its ids: logits[i] is the
// output at position i, the distribution of token i+1. Every position with a label other than
// data.IgnoreIndex (the answer and its end-of-turn token) counts; position 0 has no prediction.
func AnswerNLL(logits [][]float32, labels []int32) (NLL, error) {
	var n NLL
	if len(labels) > 0 && len(logits) < len(labels)-1 {
		return n, fmt.Errorf("answer nll: %d positions of logits for %d tokens", len(logits), len(labels))
	}
	for i := 1; i < len(labels); i++ {
		target := int(labels[i])
		if labels[i] == data.IgnoreIndex {
			continue
		}
		row := logits[i-1]
		if target < 0 || target >= len(row) {
			return n, fmt.Errorf("answer nll: label %d at position %d is outside the vocabulary (%d logits)", target, i, len(row))
		}
		n.Sum += logSumExp(row) - float64(row[target])
		n.Tokens++
	}
	n.Examples = 1
	return n, nil
}

// logSumExp is log Σ exp(x), computed in float64 around the maximum so that it cannot overflow.
func logSumExp(x []float32) float64 {
	m := math.Inf(-1)
	for _, v := range x {
		m = max(m, float64(v))
	}
	if math.IsInf(m, 0) {
		return m
	}
	s := 0.0
	for _, v := range x {
		s += math.Exp(float64(v) - m)
	}
	return m + math.Log(s)
}

// Scorer computes the teacher-forced NLL of examples' answer tokens.
type Scorer interface {
	ScoreAnswers(ctx context.Context, examples []data.Example) (NLL, error)
}

// ForwardFunc runs a causal LM on a batch of equal-length sequences and returns the logits
// [batch][position][vocab] (engine.Engine.Forward has this shape).
type ForwardFunc func(ids [][]int) ([][][]float32, error)

// LogitsScorer scores with any engine that returns logits, one example per forward pass, the NLL
// computed here (AnswerNLL).
type LogitsScorer struct {
	Forward ForwardFunc
	// PadTo, when > 0, right-pads each sequence with PadID to a multiple of PadTo tokens, so that
	// engines that compile one program per shape (GoMLX) see few shapes. With a causal mask the
	// padding does not change the logits of the real positions.
	PadTo int
	PadID int
	// Log, when set, gets a progress line every progressEvery examples.
	Log *slog.Logger
}

// ScoreAnswers implements Scorer.
func (s LogitsScorer) ScoreAnswers(ctx context.Context, examples []data.Example) (NLL, error) {
	var total NLL
	if s.Forward == nil {
		return total, errors.New("logits scorer: no forward function")
	}
	for i, ex := range examples {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		ids := make([]int, len(ex.IDs), paddedLen(len(ex.IDs), s.PadTo))
		for j, id := range ex.IDs {
			ids[j] = int(id)
		}
		for len(ids) < cap(ids) {
			ids = append(ids, s.PadID)
		}
		logits, err := s.Forward([][]int{ids})
		if err != nil {
			return total, fmt.Errorf("example %d: %w", i, err)
		}
		if len(logits) != 1 {
			return total, fmt.Errorf("example %d: forward returned %d rows for 1", i, len(logits))
		}
		n, err := AnswerNLL(logits[0], ex.Labels)
		if err != nil {
			return total, fmt.Errorf("example %d: %w", i, err)
		}
		total.Add(n)
		if s.Log != nil && (i+1)%progressEvery == 0 {
			s.Log.Info("scoring validation answers", "done", i+1, "of", len(examples), "perplexity_so_far", round3(total.Perplexity()))
		}
	}
	return total, nil
}

// PerplexityScorer adapts an engine that reports only the perplexity of a set of examples
// (train.Perplexity); the NLL sum is recovered as ln(perplexity) × the answer tokens counted here.
type PerplexityScorer func(ctx context.Context, examples []data.Example) (float64, error)

// ScoreAnswers implements Scorer.
func (f PerplexityScorer) ScoreAnswers(ctx context.Context, examples []data.Example) (NLL, error) {
	ppl, err := f(ctx, examples)
	if err != nil {
		return NLL{}, err
	}
	n := NLL{Tokens: PredictedTokens(examples), Examples: len(examples)}
	n.Sum = math.Log(ppl) * float64(n.Tokens)
	return n, nil
}

// PredictedTokens counts the labelled tokens that a causal LM predicts (every labelled position
// but the first of a sequence, which nothing precedes).
func PredictedTokens(examples []data.Example) int {
	n := 0
	for _, ex := range examples {
		for i := 1; i < len(ex.Labels); i++ {
			if ex.Labels[i] != data.IgnoreIndex {
				n++
			}
		}
	}
	return n
}

func paddedLen(n, multiple int) int {
	if multiple <= 0 {
		return n
	}
	return (n + multiple - 1) / multiple * multiple
}
