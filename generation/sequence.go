package generation

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"
)

// Sequence is one request's generation state and its stop rules, shared by every engine (a
// single-sequence loop, or each row of a batch): the sampler, the token history, the budget of new
// tokens and why the sequence ended. An engine feeds it the logits that follow the sequence so far;
// Next picks the token, emits it and says whether the sequence is over.
type Sequence struct {
	req     Request
	sampler *Sampler
	history []int // prompt and generated ids, for the repetition penalty
	ids     []int // generated ids
	budget  int   // new tokens allowed: MaxNewTokens cut to the model's context
	finish  FinishReason
}

// NewSequence checks req against a model with a context of maxPositions tokens and a vocabulary
// of vocab tokens (0: unchecked) and starts its state.
func NewSequence(req Request, maxPositions, vocab int) (*Sequence, error) {
	if err := req.Validate(); err != nil {
		return nil, err
	}
	if len(req.PromptIDs) >= maxPositions {
		return nil, fmt.Errorf("the prompt is %d tokens; the model's context is %d", len(req.PromptIDs), maxPositions)
	}
	for _, id := range req.PromptIDs {
		if id < 0 || (vocab > 0 && id >= vocab) {
			return nil, fmt.Errorf("prompt token id %d is outside the vocabulary (0..%d)", id, vocab-1)
		}
	}
	return &Sequence{
		req:     req,
		sampler: NewSampler(req.Sampling),
		history: slices.Clip(slices.Clone(req.PromptIDs)),
		budget:  min(req.MaxNewTokens, maxPositions-len(req.PromptIDs)),
	}, nil
}

// Capacity is the most positions the sequence can fill: its prompt and its budget of new tokens.
func (s *Sequence) Capacity() int { return len(s.req.PromptIDs) + s.budget }

// Next samples the token that follows logits and emits it. done reports that the sequence ended
// here (Finish says why): a stop id was sampled (it is not emitted), emit returned ErrStop, or the
// budget is used up. Otherwise id is the token to feed the model next. An emit error other than
// ErrStop ends the sequence with FinishStop and is returned.
func (s *Sequence) Next(logits []float32, emit func(id int) error) (id int, done bool, err error) {
	if s.finish != "" {
		return 0, true, errors.New("generation: Next on a finished sequence")
	}
	id = s.sampler.Next(logits, s.history)
	if slices.Contains(s.req.StopIDs, id) {
		s.finish = FinishStop
		return id, true, nil
	}
	s.history = append(s.history, id)
	s.ids = append(s.ids, id)
	if err := emit(id); err != nil {
		s.finish = FinishStop
		if errors.Is(err, ErrStop) {
			return id, true, nil
		}
		return id, true, err
	}
	if len(s.ids) >= s.budget {
		s.finish = FinishLength
		return id, true, nil
	}
	return id, false, nil
}

// Done reports whether the sequence has ended.
func (s *Sequence) Done() bool { return s.finish != "" }

// Cancel ends an unfinished sequence with FinishCancelled.
func (s *Sequence) Cancel() {
	if s.finish == "" {
		s.finish = FinishCancelled
	}
}

// Result fills the generated ids, the finish reason and the prompt size into r.
func (s *Sequence) Result(r *Result) {
	r.IDs, r.Finish, r.PromptTokens = s.ids, s.finish, len(s.req.PromptIDs)
}

// Stepper is a model holding one sequence's key/value cache: Start runs the prompt (capacity
// bounds the positions the sequence will fill) and Step one more token; both return the logits
// that follow.
type Stepper interface {
	Start(prompt []int, capacity int) ([]float32, error)
	Step(id int) ([]float32, error)
}

// Run is the generation loop of one sequence (see Generator) on a model with a context of
// maxPositions tokens and a vocabulary of vocab: the prompt, then one step per new token until the
// Sequence ends or ctx does (checked before every token).
func Run(ctx context.Context, req Request, maxPositions, vocab int, m Stepper, emit func(id int) error) (res Result, err error) {
	start := time.Now()
	res.PromptTokens = len(req.PromptIDs)
	defer func() { res.Duration = time.Since(start) }()
	seq, err := NewSequence(req, maxPositions, vocab)
	if err != nil {
		return res, err
	}
	if emit == nil {
		emit = func(int) error { return nil }
	}
	defer seq.Result(&res)
	logits, err := m.Start(req.PromptIDs, seq.Capacity())
	for err == nil {
		if err = ctx.Err(); err != nil {
			seq.Cancel()
			break
		}
		id, done, emitErr := seq.Next(logits, emit)
		if res.TTFT == 0 {
			res.TTFT = time.Since(start)
		}
		if done || emitErr != nil {
			return res, emitErr
		}
		logits, err = m.Step(id)
	}
	return res, err
}
