package serve

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/medassist/medassist/generation"
	"github.com/medassist/medassist/guard"
	"github.com/medassist/medassist/model"
	"github.com/medassist/medassist/tokenizer"
)

// Backend is what the server generates with: a generator shared by all requests, plus the model's
// tokenizer and chat template.
type Backend struct {
	Gen          generation.Generator
	Tok          *tokenizer.Tokenizer
	Template     *model.ChatTemplate
	StopIDs      []int // EOS ids
	MaxPositions int   // context length; prompt + max_tokens must fit
	Device       string
	Close        func() error
}

// chatResult is a finished generation.
type chatResult struct {
	Finish           string // "stop" or "length"
	PromptTokens     int
	CompletionTokens int
	TTFT             time.Duration
	Duration         time.Duration
}

// chatService turns validated requests into formatted answers.
type chatService struct {
	b      *Backend
	cfg    *Config
	guard  *guard.Guard
	system string
}

// prompt renders the conversation with the chat template; message contents are encoded as plain text,
// so a user typing a control token such as "</s>" cannot end or forge a turn.
func (s *chatService) prompt(msgs []model.Message) ([]int, error) {
	if len(msgs) == 0 || msgs[0].Role != "system" {
		msgs = append([]model.Message{{Role: "system", Content: s.system}}, msgs...)
	}
	text, spans, err := s.b.Template.RenderSpans(msgs, true)
	if err != nil {
		return nil, fmt.Errorf("render chat template: %w", err)
	}
	return s.b.Tok.EncodeRendered(text, spans, true), nil
}

// run generates the answer to p and hands each piece of formatted text to onDelta as soon as it is ready.
// The answer is shaped by the guard's formatter (fixed sections, disclaimer exactly once).
func (s *chatService) run(ctx context.Context, p *params, onDelta func(string) error) (chatResult, error) {
	ids, err := s.prompt(p.Messages)
	if err != nil {
		return chatResult{}, err
	}
	if s.b.MaxPositions > 0 && len(ids)+p.MaxTokens > s.b.MaxPositions {
		if len(ids) >= s.b.MaxPositions {
			return chatResult{}, badParam("messages", "the conversation is %d tokens; this model's context is %d tokens", len(ids), s.b.MaxPositions)
		}
		p.MaxTokens = s.b.MaxPositions - len(ids)
	}
	seed := p.Seed
	if !p.HasSeed {
		seed = rand.Int64()
	}
	req := generation.Request{
		PromptIDs:    ids,
		MaxNewTokens: p.MaxTokens,
		StopIDs:      s.b.StopIDs,
		Sampling: generation.Sampling{
			Temperature: p.Temperature, TopP: p.TopP, TopK: s.cfg.TopK,
			RepetitionPenalty: s.cfg.RepetitionPen, Seed: seed,
		},
	}
	dec := s.b.Tok.NewStreamDecoder(true)
	stops := generation.NewStopMatcher(p.Stop)
	form := s.guard.NewFormatter()
	send := func(text string) error {
		if text == "" {
			return nil
		}
		return onDelta(text)
	}
	stopped := false
	res, err := s.b.Gen.Generate(ctx, req, func(id int) error {
		out, hit := stops.Push(dec.Add(id))
		if err := send(form.Write(out)); err != nil {
			return err
		}
		if hit {
			stopped = true
			return generation.ErrStop
		}
		return nil
	})
	if err != nil {
		return chatResult{}, err
	}
	if ctx.Err() != nil || res.Finish == generation.FinishCancelled {
		return chatResult{}, errors.Join(context.Canceled, ctx.Err())
	}
	tail := ""
	if !stopped {
		tail = stops.Flush()
	}
	if err := send(form.Write(tail) + form.Close()); err != nil {
		return chatResult{}, err
	}
	finish := "stop"
	if res.Finish == generation.FinishLength {
		finish = "length"
	}
	return chatResult{Finish: finish, PromptTokens: len(ids), CompletionTokens: len(res.IDs), TTFT: res.TTFT, Duration: res.Duration}, nil
}
