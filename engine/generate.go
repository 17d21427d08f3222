package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/medassist/medassist/generation"
)

var _ generation.Generator = (*Engine)(nil)

// Generate continues one prompt (see generation.Generator): prefill, then one decode step per
// token with the sequence's own KV cache, until a stop id, ErrStop from emit, MaxNewTokens, the
// model's context length, or the end of ctx (checked before every step; a long prefill is also
// interrupted inside ONNX Runtime).
func (e *Engine) Generate(ctx context.Context, req generation.Request, emit func(id int) error) (generation.Result, error) {
	one := func(_, id int) error { return nil }
	if emit != nil {
		one = func(_, id int) error { return emit(id) }
	}
	results, err := e.GenerateBatch(ctx, []generation.Request{req}, one)
	if len(results) == 0 {
		return generation.Result{}, err
	}
	return results[0], err
}

// GenerateBatch runs several requests in lock step through one batch (left-padded prompts, shared
// ONNX Runtime calls); each row samples with its own settings and ends on its own. emit receives
// the row index with each token; ErrStop from it ends that row only. The results are in request
// order. On cancellation every unfinished row ends with FinishCancelled and ctx's error is returned.
func (e *Engine) GenerateBatch(ctx context.Context, reqs []generation.Request, emit func(row, id int) error) ([]generation.Result, error) {
	start := time.Now()
	if emit == nil {
		emit = func(int, int) error { return nil }
	}
	if len(reqs) == 0 {
		return nil, errors.New("generate: no requests")
	}
	seqs := make([]*generation.Sequence, len(reqs))
	capacity := 0
	for i, r := range reqs {
		s, err := generation.NewSequence(r, e.MaxPositions(), e.lay.vocab)
		if err != nil {
			return nil, fmt.Errorf("generate: request %d: %w", i, err)
		}
		seqs[i] = s
		capacity = max(capacity, s.Capacity())
	}
	b, err := e.NewBatch(len(reqs), capacity)
	if err != nil {
		return nil, err
	}
	defer b.Close()

	prompts := make([][]int, len(reqs))
	for i, r := range reqs {
		prompts[i] = r.PromptIDs
	}
	results := make([]generation.Result, len(reqs))
	logits, err := b.Append(ctx, prompts)
	for step := 0; err == nil; step++ {
		if err = ctx.Err(); err != nil { // cancelled: no further token
			break
		}
		next := make([]int, len(seqs))
		live := 0
		for i, s := range seqs {
			next[i] = padID
			if s.Done() {
				continue
			}
			id, done, emitErr := s.Next(logits[i], func(id int) error { return emit(i, id) })
			if step == 0 {
				results[i].TTFT = time.Since(start)
			}
			if emitErr != nil {
				err = emitErr
				break
			}
			if !done {
				next[i] = id
				live++
			}
		}
		if err != nil || live == 0 {
			break
		}
		logits, err = b.Decode(ctx, next)
	}
	for i, s := range seqs {
		if ctx.Err() != nil {
			s.Cancel()
		}
		s.Result(&results[i])
		results[i].Duration = time.Since(start)
	}
	if err != nil && ctx.Err() != nil {
		err = ctx.Err()
	}
	return results, err
}

// Forward returns the logits of every position of every sequence, [row][position][vocab], computed
// in one pass with no cache (for perplexity and for checking the cache). Rows may differ in length:
// shorter rows are left-padded inside the call and their logits cover only their own tokens.
func (e *Engine) Forward(ids [][]int) ([][][]float32, error) {
	if len(ids) == 0 {
		return nil, errors.New("forward: no sequences")
	}
	longest := 0
	for _, s := range ids {
		longest = max(longest, len(s))
	}
	if longest == 0 {
		return nil, errors.New("forward: empty sequences")
	}
	b, err := e.NewBatch(len(ids), longest)
	if err != nil {
		return nil, err
	}
	defer b.Close()
	padded := make([][]int, len(ids))
	for r, s := range ids {
		padded[r] = slices.Concat(slices.Repeat([]int{padID}, longest-len(s)), s)
	}
	v := e.lay.vocab
	all := make([]float32, len(ids)*longest*v)
	if _, err := b.step(context.Background(), padded, all); err != nil {
		return nil, fmt.Errorf("forward: %w", err)
	}
	out := make([][][]float32, len(ids))
	for r, s := range ids {
		pad := longest - len(s)
		out[r] = make([][]float32, len(s))
		for p := range s {
			at := (r*longest + pad + p) * v
			out[r][p] = all[at : at+v : at+v]
		}
	}
	return out, nil
}
