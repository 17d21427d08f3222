package eval

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/medassist/medassist/model"
	"github.com/medassist/medassist/tokenizer"
	"github.com/medassist/medassist/train/data"
)

// InputConfig says what to evaluate on.
type InputConfig struct {
	// Data re-makes the trainer's split: the same file and settings give the same validation set.
	Data data.Config
	// TextDir holds the tokenizer and chat template (the fine-tuned model's dir).
	TextDir string
	// Samples is how many validation examples are answered for ROUGE (0: all).
	Samples int
	// PerplexityExamples bounds the validation examples scored for perplexity (0: all).
	PerplexityExamples int
	// Prompts are the manual test prompts.
	Prompts []string
}

// Prepared is the evaluation data and the tokenizer that decodes the answers; Close it.
type Prepared struct {
	Inputs  Inputs
	Split   Split
	Elapsed time.Duration
	tok     *tokenizer.Tokenizer
}

// Close frees the tokenizer.
func (p *Prepared) Close() error { return p.tok.Close() }

// Prepare loads the tokenizer and chat template of cfg.TextDir, re-makes the trainer's
// validation split of cfg.Data and picks the samples.
func Prepare(cfg InputConfig, log *slog.Logger) (*Prepared, error) {
	start := time.Now()
	tok, err := tokenizer.Load(cfg.TextDir)
	if err != nil {
		return nil, err
	}
	tpl, err := model.LoadChatTemplate(cfg.TextDir)
	if err != nil {
		tok.Close()
		return nil, err
	}
	ds, err := data.Prepare(cfg.Data, tok, tpl, log)
	if err != nil {
		tok.Close()
		return nil, err
	}
	pairs, err := data.ReadPairs(cfg.Data.Path)
	if err != nil {
		tok.Close()
		return nil, err
	}
	clean, _ := data.Clean(pairs)
	val := ds.Val
	if cfg.PerplexityExamples > 0 && cfg.PerplexityExamples < len(val) {
		val = val[:cfg.PerplexityExamples]
	}
	p := &Prepared{tok: tok}
	p.Inputs = Inputs{
		Val:       val,
		Samples:   ValidationSamples(ds.Val, clean, tok, cfg.Samples),
		Prompts:   cfg.Prompts,
		PromptIDs: promptEncoder(tok, tpl, cfg.Data.SystemPrompt),
		Decoder:   tok,
	}
	p.Split = Split{
		Seed: cfg.Data.Seed, ValFraction: cfg.Data.ValFraction, MaxLength: cfg.Data.MaxLength,
		MaxExamples: cfg.Data.MaxExamples, SystemPrompt: cfg.Data.SystemPrompt,
		TrainExamples: len(ds.Train), ValExamples: len(ds.Val),
	}
	p.Elapsed = time.Since(start)
	return p, nil
}

// promptEncoder renders a question as the inference prompt (system prompt, user turn, assistant
// header) and tokenizes it as training did: the user's text never becomes special tokens.
func promptEncoder(tok *tokenizer.Tokenizer, tpl *model.ChatTemplate, system string) func(string) ([]int, error) {
	return func(question string) ([]int, error) {
		var msgs []model.Message
		if system != "" {
			msgs = append(msgs, model.Message{Role: "system", Content: system})
		}
		msgs = append(msgs, model.Message{Role: "user", Content: question})
		text, spans, err := tpl.RenderSpans(msgs, true)
		if err != nil {
			return nil, fmt.Errorf("render prompt: %w", err)
		}
		return tok.EncodeRendered(text, spans, true), nil
	}
}
