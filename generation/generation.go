// Package generation holds what every text-generation engine shares: the request and result
// types, token sampling (greedy, temperature, top-k, top-p, repetition penalty, seed) and the
// stop-string matcher used while streaming. It is pure Go: no cgo, no ONNX Runtime, no GoMLX.
package generation

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Sampling chooses how the next token is picked from the logits.
type Sampling struct {
	// Temperature divides the logits before sampling; 0 means greedy (argmax).
	Temperature float64
	// TopK keeps only the K most likely tokens; 0 disables it.
	TopK int
	// TopP keeps the smallest set of most likely tokens whose probability reaches P; 0 or 1 disables it.
	TopP float64
	// RepetitionPenalty (> 1 discourages repeats) divides positive and multiplies negative logits of
	// tokens already in the history, as Hugging Face transformers does; 0 or 1 disables it.
	RepetitionPenalty float64
	// Seed makes sampling reproducible; 0 picks a random seed.
	Seed int64
}

// Greedy reports whether s always picks the most likely token.
func (s Sampling) Greedy() bool { return s.Temperature == 0 }

// Validate checks the ranges of the sampling settings.
func (s Sampling) Validate() error {
	var errs []error
	if s.Temperature < 0 {
		errs = append(errs, fmt.Errorf("temperature = %v: must be >= 0 (0 is greedy)", s.Temperature))
	}
	if s.TopK < 0 {
		errs = append(errs, fmt.Errorf("top_k = %d: must be >= 0 (0 disables it)", s.TopK))
	}
	if s.TopP < 0 || s.TopP > 1 {
		errs = append(errs, fmt.Errorf("top_p = %v: must be between 0 and 1", s.TopP))
	}
	if s.RepetitionPenalty < 0 {
		errs = append(errs, fmt.Errorf("repetition_penalty = %v: must be >= 0 (1 disables it)", s.RepetitionPenalty))
	}
	return errors.Join(errs...)
}

// Request is one sequence to continue.
type Request struct {
	// PromptIDs are the prompt's token ids, BOS included when the model wants one.
	PromptIDs []int
	// MaxNewTokens bounds the number of generated tokens.
	MaxNewTokens int
	Sampling     Sampling
	// StopIDs end generation when sampled (EOS and the like); they are neither emitted nor returned.
	StopIDs []int
}

// Validate checks the request before any work is done.
func (r Request) Validate() error {
	var errs []error
	if len(r.PromptIDs) == 0 {
		errs = append(errs, errors.New("prompt is empty: at least one token (usually BOS) is needed"))
	}
	if r.MaxNewTokens < 1 {
		errs = append(errs, fmt.Errorf("max new tokens = %d: must be >= 1", r.MaxNewTokens))
	}
	errs = append(errs, r.Sampling.Validate())
	return errors.Join(errs...)
}

// FinishReason says why generation ended.
type FinishReason string

const (
	// FinishStop: a stop id (EOS) was sampled, or emit returned ErrStop (e.g. a stop string matched).
	FinishStop FinishReason = "stop"
	// FinishLength: MaxNewTokens (or the model's context) was reached.
	FinishLength FinishReason = "length"
	// FinishCancelled: the context ended before generation finished.
	FinishCancelled FinishReason = "cancelled"
)

// Result describes one finished generation.
type Result struct {
	// IDs are the generated tokens that were emitted (stop ids excluded).
	IDs          []int
	Finish       FinishReason
	PromptTokens int
	// TTFT is the time from the call to the first sampled token (prefill included).
	TTFT time.Duration
	// Duration is the whole call.
	Duration time.Duration
}

// ErrStop is returned by an emit callback to end generation with FinishStop (the token just emitted
// is kept in Result.IDs).
var ErrStop = errors.New("generation stopped by the caller")

// Generator continues token sequences. Implementations are safe for concurrent calls, each with its
// own state (KV cache).
//
// Generate calls emit for every new token, in order. It returns when a stop id is sampled, emit
// returns ErrStop, MaxNewTokens is reached or ctx ends. When ctx ends it returns the tokens so far
// with Finish = FinishCancelled together with ctx's error; when emit returns another error,
// generation ends and that error is returned.
type Generator interface {
	Generate(ctx context.Context, req Request, emit func(id int) error) (Result, error)
}
