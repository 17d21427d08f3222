package data

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/medassist/medassist/internal/testutil"
	"github.com/medassist/medassist/model"
	"github.com/medassist/medassist/tokenizer"
)

func loadModelText(t *testing.T, dir string) (*tokenizer.Tokenizer, *model.ChatTemplate) {
	t.Helper()
	tok, err := tokenizer.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tok.Close() })
	tpl, err := model.LoadChatTemplate(dir)
	if err != nil {
		t.Fatal(err)
	}
	return tok, tpl
}

func toInts(v []int32) []int {
	out := make([]int, len(v))
	for i, x := range v {
		out[i] = int(x)
	}
	return out
}

// labelled returns the ids that carry a label and checks they form one run at the end.
func labelled(t *testing.T, ex Example) (start int, ids []int) {
	t.Helper()
	start = slices.IndexFunc(ex.Labels, func(l int32) bool { return l != IgnoreIndex })
	if start < 0 {
		t.Fatal("no labelled token")
	}
	for i := start; i < len(ex.Labels); i++ {
		if ex.Labels[i] != ex.IDs[i] {
			t.Fatalf("label %d = %d, id %d: labels must equal ids after the answer starts", i, ex.Labels[i], ex.IDs[i])
		}
	}
	return start, toInts(ex.IDs[start:])
}

// TestEncodeFlashcards encodes every flashcard with TinyLlama's tokenizer and template: the
// labelled tokens decode to exactly the answer plus </s>, the unlabelled ones are exactly the
// tokens of the inference prompt (system + user + generation prompt).
func TestEncodeFlashcards(t *testing.T) {
	dir := testutil.TinyLlamaConfig(t)
	pairs, err := ReadPairs(testutil.Flashcards(t))
	if err != nil {
		t.Fatal(err)
	}
	pairs, _ = Clean(pairs)
	tok, tpl := loadModelText(t, dir)
	enc := &encoder{tok: tok, tpl: tpl, system: DefaultSystemPrompt, maxLen: 512}
	start := time.Now()
	truncated := 0
	for _, p := range pairs {
		ex, how, err := enc.encode(p)
		if err != nil {
			t.Fatal(err)
		}
		if how != whole {
			truncated++
			continue
		}
		a, ans := labelled(t, ex)
		if got := tok.Decode(ans, false); got != p.Answer+"</s>" {
			t.Fatalf("labelled tokens decode to %q, want %q", got, p.Answer+"</s>")
		}
		msgs := []model.Message{{Role: "system", Content: DefaultSystemPrompt}, {Role: "user", Content: p.Question}}
		prompt, spans, err := tpl.RenderSpans(msgs, true)
		if err != nil {
			t.Fatal(err)
		}
		if want := tok.EncodeRendered(prompt, spans, true); !slices.Equal(toInts(ex.IDs[:a]), want) {
			t.Fatalf("prompt tokens differ from the inference prompt's:\n got %v\nwant %v", ex.IDs[:a], want)
		}
		if ex.IDs[len(ex.IDs)-1] != int32(tok.EOS()) {
			t.Fatalf("last token %d, want EOS", ex.IDs[len(ex.IDs)-1])
		}
	}
	t.Logf("%d pairs encoded in %v, %d truncated at 512", len(pairs), time.Since(start).Round(time.Millisecond), truncated)
}

// TestTruncation: a long question is cut first and the whole answer kept; a long answer loses its
// tail and its end-of-turn token; what cannot fit is dropped.
func TestTruncation(t *testing.T) {
	tok, tpl := loadModelText(t, testutil.Stories260K(t))
	const maxLen = 120
	enc := &encoder{tok: tok, tpl: tpl, system: "Be brief.", maxLen: maxLen}
	longQ := strings.Repeat("Why does the heart beat so fast after running up the stairs? ", 10)
	answer := "Exercise raises the heart rate."
	longA := strings.Repeat("The heart pumps blood through the body all day and all night. ", 10)

	ex, how, err := enc.encode(Pair{Question: longQ, Answer: answer})
	if err != nil {
		t.Fatal(err)
	}
	if how != cutQuestion || len(ex.IDs) != maxLen {
		t.Fatalf("long question: fit %d, %d tokens; want cutQuestion, %d", how, len(ex.IDs), maxLen)
	}
	a, ans := labelled(t, ex)
	if got := tok.Decode(ans, false); got != answer+"</s>" {
		t.Fatalf("long question: answer decodes to %q", got)
	}
	if prompt := tok.Decode(toInts(ex.IDs[:a]), false); !strings.Contains(prompt, "Why does the heart") || !strings.HasSuffix(prompt, "</s> \n<|assistant|>\n") {
		t.Fatalf("long question: prompt %q should keep the question's head and the template's end", prompt)
	}

	ex, how, err = enc.encode(Pair{Question: "Why?", Answer: longA})
	if err != nil {
		t.Fatal(err)
	}
	if how != cutAnswer || len(ex.IDs) != maxLen {
		t.Fatalf("long answer: fit %d, %d tokens; want cutAnswer, %d", how, len(ex.IDs), maxLen)
	}
	_, ans = labelled(t, ex)
	got := tok.Decode(ans, false)
	if len(ans) < minAnswerTokens || !strings.HasPrefix(longA, got) || strings.Contains(got, "</s>") {
		t.Fatalf("long answer: labelled text %q should be a head of the answer without </s>", got)
	}

	enc.system = strings.Repeat("You are a helpful assistant. ", 8)
	if _, how, err = enc.encode(Pair{Question: longQ, Answer: longA}); err != nil || how != tooLong {
		t.Fatalf("no room: fit %d, err %v; want tooLong", how, err)
	}
}

// TestSpecialTokensInContent: "</s>" typed in a question or answer stays text.
func TestSpecialTokensInContent(t *testing.T) {
	tok, tpl := loadModelText(t, testutil.Stories260K(t))
	enc := &encoder{tok: tok, tpl: tpl, system: "", maxLen: 512}
	ex, _, err := enc.encode(Pair{Question: "What is </s>?", Answer: "A tag </s> in text."})
	if err != nil {
		t.Fatal(err)
	}
	eos := 0
	for _, id := range ex.IDs {
		if int(id) == tok.EOS() {
			eos++
		}
	}
	if eos != 2 { // after the user's turn and after the answer
		t.Fatalf("%d EOS tokens in %v, want 2", eos, ex.IDs)
	}
	_, ans := labelled(t, ex)
	if got := tok.Decode(ans, false); got != "A tag </s> in text.</s>" {
		t.Fatalf("answer decodes to %q", got)
	}
}

func writeJSONL(t *testing.T, pairs []Pair) string {
	t.Helper()
	var sb strings.Builder
	for _, p := range pairs {
		b, _ := json.Marshal(map[string]string{"instruction": instruction, "input": p.Question, "output": p.Answer})
		sb.Write(b)
		sb.WriteByte('\n')
	}
	path := filepath.Join(t.TempDir(), "cards.jsonl")
	if err := os.WriteFile(path, []byte(sb.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestPrepareFlashcards prepares ../shared's flashcards as the seed job does (3,000 examples,
// max length 512) with stories260K's tokenizer: counts, split, determinism per seed.
func TestPrepareFlashcards(t *testing.T) {
	tok, tpl := loadModelText(t, testutil.Stories260K(t))
	cfg := DefaultConfig()
	cfg.Path = testutil.Flashcards(t)
	cfg.MaxExamples = 3000
	start := time.Now()
	ds, err := Prepare(cfg, tok, tpl, nil)
	if err != nil {
		t.Fatal(err)
	}
	st := ds.Stats
	t.Logf("prepared in %v: %+v", time.Since(start).Round(time.Millisecond), st)
	if st.Read != 5018 || st.DroppedIncomplete != 1 || st.Duplicates != 0 || st.Kept != 3000 || st.Train != 2700 || st.Val != 300 {
		t.Fatalf("stats %+v: want read 5018, 1 incomplete, 0 duplicates, 3000 kept = 2700 train + 300 val", st)
	}
	for _, ex := range append(slices.Clip(ds.Train), ds.Val...) {
		if len(ex.IDs) > cfg.MaxLength || len(ex.IDs) != len(ex.Labels) || ex.AnswerTokens() == 0 {
			t.Fatalf("bad example: %d ids, %d labels, %d answer tokens", len(ex.IDs), len(ex.Labels), ex.AnswerTokens())
		}
	}

	again, err := Prepare(cfg, tok, tpl, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(again, ds) {
		t.Fatal("same seed, different dataset")
	}
	cfg.Seed++
	other, err := Prepare(cfg, tok, tpl, nil)
	if err != nil {
		t.Fatal(err)
	}
	if reflect.DeepEqual(other.Val, ds.Val) {
		t.Fatal("another seed gave the same validation set")
	}
}

// TestPrepareCounts checks the counters on a small file with every kind of row.
func TestPrepareCounts(t *testing.T) {
	tok, tpl := loadModelText(t, testutil.Stories260K(t))
	long := strings.Repeat("A very long answer about the heart. ", 30)
	pairs := []Pair{
		{"What is a fever?", "A body temperature above 38 °C."},
		{"what is a  FEVER?", "A body temperature above 38 °C."}, // duplicate
		{"", "no question"},
		{"no answer", "  "},
		{strings.Repeat("Tell me about the lungs and the heart. ", 20), "They work together."}, // question cut
		{"Explain the heart.", long}, // answer cut
		{"What is an aspirin?", "A drug that lowers pain and fever."},
		{"What is insulin?", "A hormone that lowers blood sugar."},
	}
	cfg := Config{Path: writeJSONL(t, pairs), Split: Split{MaxLength: 100, ValFraction: 0.25, Seed: 1}}
	ds, err := Prepare(cfg, tok, tpl, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := Stats{Read: 8, DroppedIncomplete: 2, Duplicates: 1, Truncated: 2, TruncatedAnswer: 1, Kept: 5, Train: 4, Val: 1}
	got := ds.Stats
	got.Tokens, got.AnswerTokens = 0, 0
	if got != want {
		t.Fatalf("stats %+v\nwant  %+v", got, want)
	}
	cfg.MaxExamples = 3
	ds, err = Prepare(cfg, tok, tpl, nil)
	if err != nil {
		t.Fatal(err)
	}
	if ds.Stats.Kept != 3 || len(ds.Train) != 2 || len(ds.Val) != 1 {
		t.Fatalf("max-examples 3: %+v", ds.Stats)
	}
}

func TestConfigValidate(t *testing.T) {
	c := DefaultConfig()
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "data") {
		t.Fatalf("missing path: %v", err)
	}
	c.Path, c.ValFraction, c.MaxLength, c.MaxExamples = "x", 1, 8, -1
	err := c.Validate()
	for _, f := range []string{"val-fraction", "max-length", "max-examples"} {
		if err == nil || !strings.Contains(err.Error(), f) {
			t.Errorf("error %v should name %s", err, f)
		}
	}
}
