package eval

import (
	"slices"
	"strings"

	"github.com/medassist/medassist/train/data"
)

// Sample is one validation example prepared for generation.
type Sample struct {
	Question  string // the flashcard's question ("" when it could not be matched)
	Reference string // the flashcard's answer, the ROUGE reference
	// PromptIDs are the example's tokens before the answer: exactly the inference prompt (chat
	// template with the system prompt, the question and the assistant header) the model was
	// trained to answer.
	PromptIDs []int
	// Truncated: the example's answer tokens do not end with the end-of-turn token (cut to fit).
	Truncated bool
}

// Decoder turns token ids back into text (tokenizer.Tokenizer implements it).
type Decoder interface {
	Decode(ids []int, skipSpecial bool) string
}

// ValidationSamples returns the first n (all when n <= 0) examples of val as samples. The
// question and reference texts are taken from pairs (the cleaned flashcards, data.Clean) by
// matching the example's decoded answer and prompt; when no pair matches, the decoded prompt
// and answer stand in.
func ValidationSamples(val []data.Example, pairs []data.Pair, dec Decoder, n int) []Sample {
	if n <= 0 || n > len(val) {
		n = len(val)
	}
	idx := newPairIndex(pairs)
	out := make([]Sample, 0, n)
	for _, ex := range val[:n] {
		start := slices.IndexFunc(ex.Labels, func(l int32) bool { return l != data.IgnoreIndex })
		if start < 0 {
			start = len(ex.IDs)
		}
		prompt, answer := toInts(ex.IDs[:start]), toInts(ex.IDs[start:])
		s := Sample{PromptIDs: prompt}
		decodedAnswer := strings.TrimSpace(dec.Decode(answer, true))
		decodedPrompt := dec.Decode(prompt, true)
		if i, ok := idx.match(decodedAnswer, decodedPrompt); ok {
			s.Question, s.Reference = pairs[i].Question, pairs[i].Answer
		} else {
			s.Question, s.Reference = strings.TrimSpace(decodedPrompt), decodedAnswer
		}
		s.Truncated = len(answer) == 0 || !endsSpecial(dec, answer)
		out = append(out, s)
	}
	return out
}

// endsSpecial reports whether the last id decodes to nothing when special tokens are skipped
// (the end-of-turn token) but to something when they are kept.
func endsSpecial(dec Decoder, ids []int) bool {
	last := ids[len(ids)-1:]
	return dec.Decode(last, true) == "" && dec.Decode(last, false) != ""
}

// pairIndex finds the flashcard an example was made from.
type pairIndex struct {
	pairs    []data.Pair
	answers  []string // normalised answers
	byAnswer map[string][]int
}

func newPairIndex(pairs []data.Pair) *pairIndex {
	x := &pairIndex{pairs: pairs, answers: make([]string, len(pairs)), byAnswer: make(map[string][]int, len(pairs))}
	for i, p := range pairs {
		x.answers[i] = normText(p.Answer)
		x.byAnswer[x.answers[i]] = append(x.byAnswer[x.answers[i]], i)
	}
	return x
}

// match finds the flashcard whose answer is the decoded answer (or, for an answer cut to fit,
// starts with it) and whose question appears in the decoded prompt.
func (x *pairIndex) match(answer, prompt string) (int, bool) {
	a, p := normText(answer), normText(prompt)
	if a == "" {
		return 0, false
	}
	candidates := x.byAnswer[a]
	if len(candidates) == 0 {
		for i, pa := range x.answers {
			if strings.HasPrefix(pa, a) {
				candidates = append(candidates, i)
			}
		}
	}
	for _, i := range candidates {
		if q := normText(x.pairs[i].Question); q != "" && strings.Contains(p, q) {
			return i, true
		}
	}
	// A question cut to fit is not contained whole: accept a candidate whose first words are.
	for _, i := range candidates {
		if q := RougeTokens(x.pairs[i].Question); len(q) >= 4 && strings.Contains(p, strings.Join(q[:4], " ")) {
			return i, true
		}
	}
	return 0, false
}

// normText is the form texts are compared in: ROUGE's tokens (lower-case ASCII letters and
// digits) joined by single spaces, so that tokenizer round trips of white space do not matter.
func normText(s string) string { return strings.Join(RougeTokens(s), " ") }

func toInts(v []int32) []int {
	out := make([]int, len(v))
	for i, x := range v {
		out[i] = int(x)
	}
	return out
}
