package eval

import (
	"slices"
	"strings"
	"testing"

	"github.com/medassist/medassist/internal/testutil"
	"github.com/medassist/medassist/train/data"
)

// smallInputs re-makes the trainer's split of 80 flashcards (8 validation examples) with the
// stories260K tokenizer and TinyLlama's chat template.
func smallInputs(t *testing.T, samples int) *Prepared {
	t.Helper()
	cfg := data.DefaultConfig()
	cfg.Path, cfg.MaxExamples = testutil.Flashcards(t), 80
	p, err := Prepare(InputConfig{Data: cfg, TextDir: testutil.Stories260K(t), Samples: samples,
		Prompts: []string{"What is anemia?"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func TestValidationSamplesMatchFlashcards(t *testing.T) {
	p := smallInputs(t, 0)
	in := p.Inputs
	if len(in.Val) != 8 || len(in.Samples) != 8 || p.Split.ValExamples != 8 || p.Split.TrainExamples != 72 {
		t.Fatalf("val %d, samples %d, split %+v: want 8 of 80", len(in.Val), len(in.Samples), p.Split)
	}
	pairs, err := data.ReadPairs(testutil.Flashcards(t))
	if err != nil {
		t.Fatal(err)
	}
	clean, _ := data.Clean(pairs)
	for i, s := range in.Samples {
		ex := in.Val[i]
		start := slices.IndexFunc(ex.Labels, func(l int32) bool { return l != data.IgnoreIndex })
		if !slices.Equal(s.PromptIDs, toInts(ex.IDs[:start])) {
			t.Fatalf("sample %d: prompt ids are not the example's unlabelled tokens", i)
		}
		if !slices.ContainsFunc(clean, func(p data.Pair) bool { return p.Question == s.Question && p.Answer == s.Reference }) {
			t.Fatalf("sample %d: %q / %q is not a flashcard", i, s.Question, s.Reference)
		}
		// The prompt renders this very question: the manual-prompt encoder gives the same ids.
		ids, err := in.PromptIDs(s.Question)
		if err != nil {
			t.Fatal(err)
		}
		if !s.Truncated && !slices.Equal(ids, s.PromptIDs) {
			t.Fatalf("sample %d: prompt encoder and training encoding differ for %q", i, s.Question)
		}
		if s.Truncated {
			t.Logf("sample %d was truncated to fit", i)
		}
	}
	// A different seed gives a different validation set (the split is the seed's, not the file's order).
	if p2 := smallInputsSeed(t, 7); p2.Inputs.Samples[0].Question == in.Samples[0].Question {
		t.Fatalf("seed 7 and seed 42 chose the same first validation example %q", in.Samples[0].Question)
	}
}

func smallInputsSeed(t *testing.T, seed int64) *Prepared {
	t.Helper()
	cfg := data.DefaultConfig()
	cfg.Path, cfg.MaxExamples, cfg.Seed = testutil.Flashcards(t), 80, seed
	p, err := Prepare(InputConfig{Data: cfg, TextDir: testutil.Stories260K(t), Samples: 1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// fakeDecoder decodes ids as letters ('a' + id) and treats id 0 as a special token.
type fakeDecoder struct{}

func (fakeDecoder) Decode(ids []int, skipSpecial bool) string {
	var b strings.Builder
	for _, id := range ids {
		if id == 0 {
			if !skipSpecial {
				b.WriteString("</s>")
			}
			continue
		}
		b.WriteByte(byte('a' + id))
	}
	return b.String()
}

// TestValidationSamplesFallbacks covers duplicate answers (the question decides), an answer cut
// to fit (prefix match, marked truncated), and an example that matches no pair.
func TestValidationSamplesFallbacks(t *testing.T) {
	// 'b'=1 ... ; prompt "xq" style tokens; " " cannot be produced, so texts are single words.
	pairs := []data.Pair{{Question: "bc", Answer: "de"}, {Question: "fg", Answer: "de"}, {Question: "hi", Answer: "jklm"}}
	val := []data.Example{
		{IDs: []int32{5, 6, 3, 4, 0}, Labels: []int32{ig, ig, 3, 4, 0}}, // "fg" → "de" + EOS: the second pair
		{IDs: []int32{7, 8, 9, 10}, Labels: []int32{ig, ig, 9, 10}},     // "hi" → "jk", no EOS: cut
		{IDs: []int32{1, 2, 12, 0}, Labels: []int32{ig, ig, 12, 0}},     // "bc" → "m": no such pair
	}
	got := ValidationSamples(val, pairs, fakeDecoder{}, 0)
	want := []Sample{
		{Question: "fg", Reference: "de", PromptIDs: []int{5, 6}},
		{Question: "hi", Reference: "jklm", PromptIDs: []int{7, 8}, Truncated: true},
		{Question: "bc", Reference: "m", PromptIDs: []int{1, 2}},
	}
	for i := range want {
		if got[i].Question != want[i].Question || got[i].Reference != want[i].Reference ||
			!slices.Equal(got[i].PromptIDs, want[i].PromptIDs) || got[i].Truncated != want[i].Truncated {
			t.Errorf("sample %d: got %+v, want %+v", i, got[i], want[i])
		}
	}
	if n := len(ValidationSamples(val, pairs, fakeDecoder{}, 2)); n != 2 {
		t.Errorf("n = 2 gave %d samples", n)
	}
}
