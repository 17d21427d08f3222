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
	rows := make([]*rowState, len(reqs))
	capacity := 0
	for i, r := range reqs {
		if err := r.Validate(); err != nil {
			return nil, fmt.Errorf("generate: request %d: %w", i, err)
		}
		if len(r.PromptIDs) >= e.MaxPositions() {
			return nil, fmt.Errorf("generate: the prompt is %d tokens; the model's context is %d", len(r.PromptIDs), e.MaxPositions())
		}
		rows[i] = newRowState(r, e.MaxPositions())
		capacity = max(capacity, len(r.PromptIDs)+rows[i].budget)
	}
	results := make([]generation.Result, len(reqs))
	for i, r := range reqs {
		results[i].PromptTokens = len(r.PromptIDs)
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
	logits, err := b.Append(ctx, prompts)
	for step := 0; err == nil; step++ {
		if err = ctx.Err(); err != nil { // cancelled: no further token
			break
		}
		next := make([]int, len(rows))
		live := 0
		for i, row := range rows {
			next[i] = padID
			if row.done {
				continue
			}
			id, finish, emitErr := row.advance(logits[i], func(id int) error { return emit(i, id) })
			if step == 0 {
				results[i].TTFT = time.Since(start)
			}
			if emitErr != nil {
				err = emitErr
				break
			}
			if finish != "" {
				row.finish(finish)
				continue
			}
			next[i] = id
			live++
		}
		if err != nil || live == 0 {
			break
		}
		logits, err = b.Decode(ctx, next)
	}
	for i, row := range rows {
		results[i].IDs = row.ids
		results[i].Finish = row.reason
		results[i].Duration = time.Since(start)
		if !row.done && ctx.Err() != nil {
			results[i].Finish = generation.FinishCancelled
		}
	}
	if err != nil && ctx.Err() != nil {
		err = ctx.Err()
	}
	return results, err
}

// rowState is one sequence of a generation: its sampler, history and budget.
type rowState struct {
	req     generation.Request
	sampler *generation.Sampler
	history []int // prompt and generated ids, for the repetition penalty
	ids     []int // generated ids
	budget  int   // new tokens allowed (MaxNewTokens cut to the model's context)
	done    bool
	reason  generation.FinishReason
}

func newRowState(r generation.Request, maxPositions int) *rowState {
	return &rowState{
		req:     r,
		sampler: generation.NewSampler(r.Sampling),
		history: slices.Clip(slices.Clone(r.PromptIDs)),
		budget:  min(r.MaxNewTokens, maxPositions-len(r.PromptIDs)),
	}
}

// advance samples the row's next token and emits it. finish is set when the row ends here: a stop
// id (not emitted), ErrStop from emit, or the budget used up. An emit error other than ErrStop is
// returned as is.
func (r *rowState) advance(logits []float32, emit func(int) error) (id int, finish generation.FinishReason, err error) {
	id = r.sampler.Next(logits, r.history)
	if slices.Contains(r.req.StopIDs, id) {
		return id, generation.FinishStop, nil
	}
	r.history = append(r.history, id)
	r.ids = append(r.ids, id)
	if err := emit(id); errors.Is(err, generation.ErrStop) {
		return id, generation.FinishStop, nil
	} else if err != nil {
		r.finish(generation.FinishStop)
		return id, "", err
	}
	if len(r.ids) >= r.budget {
		return id, generation.FinishLength, nil
	}
	return id, "", nil
}

func (r *rowState) finish(reason generation.FinishReason) { r.done, r.reason = true, reason }

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
