// Package data turns a flashcard file into tokenized training examples: read (JSON, JSON Lines,
// Parquet), clean, render with the model's chat template, tokenize, truncate, mask the loss to the
// answer tokens, and split into training and validation sets.
package data

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/medassist/medassist/assets"
	"github.com/medassist/medassist/internal/config"
	"github.com/medassist/medassist/model"
	"github.com/medassist/medassist/tokenizer"
)

// IgnoreIndex marks a label position that does not count in the loss (PyTorch's ignore_index).
const IgnoreIndex = -100

// DefaultSystemPrompt is the system message of every training conversation: the one generation
// and the server use (assets/prompts/system.txt), so the model sees at inference what it saw in training.
var DefaultSystemPrompt = assets.SystemPrompt()

// Minimum tokens of each side kept when an example must be truncated.
const (
	minQuestionTokens = 16
	minAnswerTokens   = 16
)

// Example is one tokenized conversation. Labels equal IDs on the answer's tokens (the answer text
// and the end-of-turn token after it) and are IgnoreIndex everywhere else; the model is trained
// to predict Labels[i] from IDs[:i] (the shift is the loss's business).
type Example struct {
	IDs    []int32
	Labels []int32
}

// AnswerTokens counts the positions that carry a label.
func (e Example) AnswerTokens() int {
	n := 0
	for _, l := range e.Labels {
		if l != IgnoreIndex {
			n++
		}
	}
	return n
}

// Stats counts what happened to the rows of the data file.
type Stats struct {
	Read              int // rows in the file
	DroppedIncomplete int // an empty question or answer
	Duplicates        int // same normalised question and answer as an earlier row
	Truncated         int // kept with the question (and if needed the answer's tail) cut to fit MaxLength
	TruncatedAnswer   int // of Truncated: the answer's tail was cut too (no end-of-turn token)
	DroppedTooLong    int // could not fit MaxLength even after truncation
	Kept              int // examples produced (≤ MaxExamples when set)
	Train, Val        int
	Tokens            int // total tokens of the kept examples
	AnswerTokens      int // total labelled tokens of the kept examples
}

// Dataset is the prepared data.
type Dataset struct {
	Train, Val []Example
	Stats      Stats
}

// Config says how to prepare the data; koanf tags are the flag names of `medassist train`.
type Config struct {
	Path  string `koanf:"data"` // flashcard file: JSON array, JSON Lines or Parquet
	Split `koanf:",squash"`
}

// Split is every setting besides the file that decides which examples train and which validate.
// medassist train records it in its run's summary; medassist eval re-makes the run's validation
// split from it and refuses to score another.
type Split struct {
	MaxLength    int     `koanf:"max-length" json:"max_length"`       // tokens per example, prompt included
	MaxExamples  int     `koanf:"max-examples" json:"max_examples"`   // 0: all; otherwise a seeded random subset of this size
	ValFraction  float64 `koanf:"val-fraction" json:"val_fraction"`   // share of the examples held out for validation
	Seed         int64   `koanf:"seed" json:"seed"`                   // shuffle and split seed
	SystemPrompt string  `koanf:"system-prompt" json:"system_prompt"` // system message ("" for none)
}

// DefaultConfig is the configuration of the seed job.
func DefaultConfig() Config {
	return Config{Split: DefaultSplit()}
}

// DefaultSplit is the seed job's split.
func DefaultSplit() Split {
	return Split{MaxLength: 512, ValFraction: 0.1, Seed: 42, SystemPrompt: DefaultSystemPrompt}
}

// SplitDiff is one setting on which two splits differ, named by its `medassist train` flag.
type SplitDiff struct {
	Key       string
	Want, Got any
}

func (d SplitDiff) String() string { return fmt.Sprintf("%s %v (not %v)", d.Key, d.Want, d.Got) }

// Diff lists the settings where got differs from s, in flag order.
func (s Split) Diff(got Split) []SplitDiff {
	var out []SplitDiff
	add := func(key string, want, g any) {
		if want != g {
			out = append(out, SplitDiff{Key: key, Want: want, Got: g})
		}
	}
	add("max-length", s.MaxLength, got.MaxLength)
	add("max-examples", s.MaxExamples, got.MaxExamples)
	add("val-fraction", s.ValFraction, got.ValFraction)
	add("seed", s.Seed, got.Seed)
	add("system-prompt", s.SystemPrompt, got.SystemPrompt)
	return out
}

// Validate checks every field and reports all bad ones.
func (c Config) Validate() error {
	return config.Join(
		config.Check(c.Path != "", "data", c.Path, "a flashcard file (JSON, JSON Lines or Parquet)"),
		config.Check(c.MaxLength >= minQuestionTokens+minAnswerTokens+8, "max-length", c.MaxLength, fmt.Sprintf("at least %d tokens", minQuestionTokens+minAnswerTokens+8)),
		config.Check(c.MaxExamples >= 0, "max-examples", c.MaxExamples, "≥ 0 (0 for all)"),
		config.Check(c.ValFraction > 0 && c.ValFraction < 1, "val-fraction", c.ValFraction, "between 0 and 1, exclusive"),
	)
}

// Prepare reads, cleans, tokenizes and splits cfg.Path's flashcards. Each pair becomes the
// conversation [system, user: question, assistant: answer] rendered by tpl and tokenized by tok.
// The cleaned pairs are shuffled with cfg.Seed and encoded in that order until MaxExamples are
// kept; the first ValFraction of them (rounded, at least one) is the validation set.
func Prepare(cfg Config, tok *tokenizer.Tokenizer, tpl *model.ChatTemplate, log *slog.Logger) (*Dataset, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("prepare data: %w", err)
	}
	start := time.Now()
	pairs, err := ReadPairs(cfg.Path)
	if err != nil {
		return nil, fmt.Errorf("prepare data: %w", err)
	}
	var st Stats
	st.Read = len(pairs)
	clean, cs := Clean(pairs)
	st.DroppedIncomplete, st.Duplicates = cs.Incomplete, cs.Duplicates
	if len(clean) < 2 {
		return nil, fmt.Errorf("prepare data: %s has %d usable question/answer pairs (of %d rows); need at least 2", cfg.Path, len(clean), st.Read)
	}
	shuffle(clean, cfg.Seed)

	enc := &encoder{tok: tok, tpl: tpl, system: cfg.SystemPrompt, maxLen: cfg.MaxLength}
	limit := len(clean)
	if cfg.MaxExamples > 0 {
		limit = min(limit, cfg.MaxExamples)
	}
	examples := make([]Example, 0, limit)
	for _, p := range clean {
		if len(examples) == limit {
			break
		}
		ex, how, err := enc.encode(p)
		if err != nil {
			return nil, fmt.Errorf("prepare data: question %q: %w", abbreviate(p.Question), err)
		}
		switch how {
		case tooLong:
			st.DroppedTooLong++
			continue
		case cutAnswer:
			st.TruncatedAnswer++
			st.Truncated++
		case cutQuestion:
			st.Truncated++
		}
		st.Tokens += len(ex.IDs)
		st.AnswerTokens += ex.AnswerTokens()
		examples = append(examples, ex)
	}
	st.Kept = len(examples)
	if st.Kept < 2 {
		return nil, fmt.Errorf("prepare data: only %d examples fit max-length %d; raise max-length", st.Kept, cfg.MaxLength)
	}
	nVal := min(max(1, int(math.Round(float64(st.Kept)*cfg.ValFraction))), st.Kept-1)
	ds := &Dataset{Val: examples[:nVal:nVal], Train: examples[nVal:], Stats: st}
	ds.Stats.Train, ds.Stats.Val = len(ds.Train), len(ds.Val)
	log.Info("data prepared", "file", cfg.Path, "read", st.Read, "dropped_incomplete", st.DroppedIncomplete,
		"duplicates", st.Duplicates, "truncated", st.Truncated, "truncated_answer", st.TruncatedAnswer,
		"dropped_too_long", st.DroppedTooLong, "kept", st.Kept, "train", ds.Stats.Train, "val", ds.Stats.Val,
		"tokens", st.Tokens, "answer_tokens", st.AnswerTokens, "elapsed", time.Since(start).Round(time.Millisecond))
	return ds, nil
}

// shuffle permutes pairs deterministically for a seed.
func shuffle(pairs []Pair, seed int64) {
	rng := rand.New(rand.NewPCG(uint64(seed), 0x6d656461737369)) //nolint:gosec // reproducible, not secret
	rng.Shuffle(len(pairs), func(i, j int) { pairs[i], pairs[j] = pairs[j], pairs[i] })
}

func abbreviate(s string) string {
	if r := []rune(s); len(r) > 60 {
		return string(r[:60]) + "…"
	}
	return s
}

// fit says whether and how an example was truncated.
type fit int

const (
	whole fit = iota
	cutQuestion
	cutAnswer
	tooLong
)

// encoder renders and tokenizes one pair.
type encoder struct {
	tok    *tokenizer.Tokenizer
	tpl    *model.ChatTemplate
	system string
	maxLen int
}

// layout is a tokenized conversation with the token ranges that truncation and masking need.
type layout struct {
	ids    []int
	qStart int // question tokens are ids[qStart:qEnd]
	qEnd   int
	answer int // first answer token
	end    int // one past the end-of-turn token (or the appended EOS)
}

func (e *encoder) messages(p Pair) []model.Message {
	var msgs []model.Message
	if e.system != "" {
		msgs = append(msgs, model.Message{Role: "system", Content: e.system})
	}
	return append(msgs, model.Message{Role: "user", Content: p.Question}, model.Message{Role: "assistant", Content: p.Answer})
}

// tokenize renders the conversation and locates the question, the answer and the end of the turn.
//
// The answer starts where the encoding of the prompt alone (rendered with the generation prompt,
// exactly what the model sees at inference) ends; the full conversation's encoding must begin with
// those same ids. The answer content is encoded as plain text, so the first special token after it
// is the template's end of turn (TinyLlama: </s>); tokens after that are dropped.
func (e *encoder) tokenize(p Pair) (layout, error) {
	msgs := e.messages(p)
	full, spans, err := e.tpl.RenderSpans(msgs, false)
	if err != nil {
		return layout{}, err
	}
	prompt, pspans, err := e.tpl.RenderSpans(msgs[:len(msgs)-1], true)
	if err != nil {
		return layout{}, err
	}
	if !strings.HasPrefix(full, prompt) {
		return layout{}, errors.New("the chat template's generation prompt is not a prefix of the rendered conversation; this template cannot be used for training")
	}
	ids := e.tok.EncodeRendered(full, spans, true)
	promptIDs := e.tok.EncodeRendered(prompt, pspans, true)
	if len(promptIDs) > len(ids) || !slices.Equal(ids[:len(promptIDs)], promptIDs) {
		return layout{}, fmt.Errorf("the prompt's tokens (%d) are not a prefix of the conversation's tokens: the answer boundary does not tokenize the same way", len(promptIDs))
	}
	user := pspans[len(msgs)-2]
	if user[0] < 0 {
		return layout{}, errors.New("the chat template does not print the user's message")
	}
	l := layout{
		answer: len(promptIDs),
		qStart: commonPrefix(e.tok.EncodeRendered(prompt[:user[0]], pspans, true), promptIDs),
		qEnd:   commonPrefix(e.tok.EncodeRendered(prompt[:user[1]], pspans, true), promptIDs),
	}
	l.end = -1
	for i := l.answer; i < len(ids); i++ {
		if id := ids[i]; id == e.tok.EOS() || (e.tok.IsSpecial(id) && id != e.tok.UNK()) {
			l.end = i + 1
			break
		}
	}
	if l.end < 0 {
		if e.tok.EOS() < 0 {
			return layout{}, errors.New("the template ends the answer with no special token and the tokenizer has no EOS token")
		}
		ids = append(ids, e.tok.EOS())
		l.end = len(ids)
	}
	l.ids = ids[:l.end]
	if l.end <= l.answer+1 {
		return layout{}, errors.New("the answer encodes to no tokens")
	}
	return l, nil
}

func commonPrefix(a, b []int) int {
	n := 0
	for n < len(a) && n < len(b) && a[n] == b[n] {
		n++
	}
	return n
}

// encode tokenizes a pair, truncates it to maxLen, and masks the labels.
//
// Truncation keeps the template intact and cuts the question's tail first, down to
// minQuestionTokens; if the answer still does not fit, its tail is cut too (the end-of-turn token
// goes with it: the model must not learn to stop mid-answer), keeping at least minAnswerTokens.
// An example that cannot keep that much is dropped.
func (e *encoder) encode(p Pair) (Example, fit, error) {
	l, err := e.tokenize(p)
	if err != nil {
		return Example{}, tooLong, err
	}
	ids, how := l.ids, whole
	if excess := len(ids) - e.maxLen; excess > 0 {
		qLen, aLen := l.qEnd-l.qStart, l.end-l.answer
		fixed := len(ids) - qLen - aLen
		keepQ := min(qLen, minQuestionTokens)
		switch {
		case qLen-excess >= keepQ:
			keepQ, how = qLen-excess, cutQuestion
		case fixed+keepQ+min(aLen, minAnswerTokens) <= e.maxLen && aLen > minAnswerTokens:
			how = cutAnswer
		default:
			return Example{}, tooLong, nil
		}
		cut := make([]int, 0, e.maxLen)
		cut = append(cut, ids[:l.qStart+keepQ]...)
		cut = append(cut, ids[l.qEnd:]...)
		shift := qLen - keepQ
		l.answer -= shift
		if how == cutAnswer {
			cut = cut[:e.maxLen]
		}
		ids = cut
	}
	ex := Example{IDs: make([]int32, len(ids)), Labels: make([]int32, len(ids))}
	for i, id := range ids {
		ex.IDs[i] = int32(id)
		ex.Labels[i] = IgnoreIndex
		if i >= l.answer {
			ex.Labels[i] = int32(id)
		}
	}
	return ex, how, nil
}
