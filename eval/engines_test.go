package eval

import (
	"context"
	"encoding/json"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/medassist/medassist/engine"
	"github.com/medassist/medassist/export"
	"github.com/medassist/medassist/internal/testutil"
	"github.com/medassist/medassist/model"
	"github.com/medassist/medassist/tokenizer"
	"github.com/medassist/medassist/train"
	"github.com/medassist/medassist/train/data"
)

var quiet = slog.New(slog.DiscardHandler)

// answerGolden is testdata/eval/answer_ppl_stories260k.json (tools/oracle/answer_ppl_golden.py):
// chat-format flashcards with answer-only labels and transformers' NLL of stories260K on them.
type answerGolden struct {
	System     string
	Tokens     int
	Perplexity float64
	Examples   []struct {
		Question, Answer string
		IDs              []int32 `json:"ids"`
		Labels           []int32
		NLL              float64
		Tokens           int
	}
}

func loadAnswerGolden(t *testing.T) (*answerGolden, []data.Example) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testutil.RepoRoot(), "testdata", "eval", "answer_ppl_stories260k.json"))
	if err != nil {
		t.Fatal(err)
	}
	var g answerGolden
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatal(err)
	}
	var exs []data.Example
	for _, e := range g.Examples {
		exs = append(exs, data.Example{IDs: e.IDs, Labels: e.Labels})
	}
	return &g, exs
}

// stories260K exported once per test binary.
var (
	onnxOnce sync.Once
	onnxDir  string
	onnxErr  error
)

func exportedStories(t *testing.T) string {
	t.Helper()
	src := testutil.Stories260K(t)
	testutil.ORTLibrary(t)
	onnxOnce.Do(func() {
		dir, err := os.MkdirTemp("", "eval-stories260k-onnx-")
		if err != nil {
			onnxErr = err
			return
		}
		onnxDir = dir
		_, onnxErr = export.Export(context.Background(), src, dir, export.DefaultOptions(), quiet, nil)
	})
	if onnxErr != nil {
		t.Fatalf("export stories260K: %v", onnxErr)
	}
	return onnxDir
}

func TestMain(m *testing.M) {
	code := m.Run()
	if onnxDir != "" {
		os.RemoveAll(onnxDir)
	}
	os.Exit(code)
}

func openONNX(t *testing.T) *engine.Engine {
	t.Helper()
	e, err := engine.Open(engine.Config{ModelDir: exportedStories(t), ORTLib: testutil.ORTLibrary(t), Device: engine.DeviceCPU}, quiet)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

// TestAnswerPerplexityONNXMatchesTransformers scores the golden examples through the exported
// model in ONNX Runtime and the NLL maths of this package.
func TestAnswerPerplexityONNXMatchesTransformers(t *testing.T) {
	g, exs := loadAnswerGolden(t)
	e := openONNX(t)
	got, err := LogitsScorer{Forward: e.Forward}.ScoreAnswers(context.Background(), exs)
	if err != nil {
		t.Fatal(err)
	}
	if got.Tokens != g.Tokens || got.Examples != len(exs) {
		t.Fatalf("scored %d tokens of %d examples, golden %d tokens", got.Tokens, got.Examples, g.Tokens)
	}
	rel := math.Abs(got.Perplexity()-g.Perplexity) / g.Perplexity
	t.Logf("perplexity onnx %.6f, transformers %.6f (relative difference %.2g)", got.Perplexity(), g.Perplexity, rel)
	if rel > 1e-4 {
		t.Fatalf("perplexity %v, transformers %v", got.Perplexity(), g.Perplexity)
	}
	for i, ex := range exs[:2] {
		n, _ := LogitsScorer{Forward: e.Forward}.ScoreAnswers(context.Background(), []data.Example{ex})
		if math.Abs(n.Sum-g.Examples[i].NLL) > 1e-3 {
			t.Errorf("example %d: nll %v, transformers %v", i, n.Sum, g.Examples[i].NLL)
		}
	}
}

// TestPromptEncoderMatchesTransformers: the manual prompts are encoded exactly as transformers'
// apply_chat_template(add_generation_prompt=True) + BOS encodes the golden questions.
func TestPromptEncoderMatchesTransformers(t *testing.T) {
	g, exs := loadAnswerGolden(t)
	dir := testutil.Stories260K(t)
	tok, err := tokenizer.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer tok.Close()
	tpl, err := model.LoadChatTemplate(dir)
	if err != nil {
		t.Fatal(err)
	}
	enc := promptEncoder(tok, tpl, g.System)
	for i, ex := range exs {
		start := slices.IndexFunc(ex.Labels, func(l int32) bool { return l != data.IgnoreIndex })
		ids, err := enc(g.Examples[i].Question)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(ids, toInts(ex.IDs[:start])) {
			t.Fatalf("example %d: prompt ids\n%v\ntransformers\n%v", i, ids, ex.IDs[:start])
		}
	}
}

// TestEvaluateSideONNX runs one side end to end on the exported stories260K: perplexity of the
// validation answers, greedy answers to 8 samples and one manual prompt, ROUGE.
func TestEvaluateSideONNX(t *testing.T) {
	p := smallInputs(t, 8)
	dir := exportedStories(t)
	opened := 0
	side := Side{Name: SideFineTuned, Dir: dir, Open: func(context.Context) (*Model, error) {
		opened++
		e, err := engine.Open(engine.Config{ModelDir: dir, ORTLib: testutil.ORTLibrary(t), Device: engine.DeviceCPU}, quiet)
		if err != nil {
			return nil, err
		}
		return &Model{Engine: "onnx", Scorer: LogitsScorer{Forward: e.Forward}, Gen: e, StopIDs: []int{2}, Close: e.Close}, nil
	}}
	res, err := EvaluateSide(context.Background(), side, p.Inputs, Options{MaxNewTokens: 16}, nil)
	if err != nil {
		t.Fatal(err)
	}
	answerTokens := 0
	for _, ex := range p.Inputs.Val {
		answerTokens += ex.AnswerTokens()
	}
	if opened != 1 || res.NLL.Examples != 8 || res.NLL.Tokens != answerTokens {
		t.Fatalf("opened %d times, scored %+v, want 8 examples and %d answer tokens", opened, res.NLL, answerTokens)
	}
	// stories260K has never seen medical text: its perplexity is in the hundreds (not ~1, not ~vocab 512 or more).
	if ppl := res.NLL.Perplexity(); ppl < 50 || ppl > 500 {
		t.Fatalf("perplexity %v: want the hundreds", ppl)
	}
	if len(res.Answers) != 8 || len(res.Scores) != 8 || len(res.Manual) != 1 {
		t.Fatalf("answers %d, scores %d, manual %d", len(res.Answers), len(res.Scores), len(res.Manual))
	}
	if res.Generation.Tokens == 0 || res.Generation.Tokens > 9*16 {
		t.Fatalf("generated %d tokens for 9 prompts of at most 16", res.Generation.Tokens)
	}
	for i, a := range res.Answers {
		if want := ComputeRouge(p.Inputs.Samples[i].Reference, a); want != res.Scores[i] {
			t.Fatalf("sample %d: score %+v, recomputed %+v", i, res.Scores[i], want)
		}
	}
	if res.Rouge != MeanRouge(res.Scores) {
		t.Fatal("side ROUGE is not the mean of the samples' ROUGE")
	}
	t.Logf("perplexity %.2f over %d tokens; ROUGE-L F1 %.4f; first answer %q", res.NLL.Perplexity(), res.NLL.Tokens, res.Rouge.RougeL.F1, res.Answers[0])
}

// TestAnswerPerplexityGoMLXMatchesTransformers scores the golden examples with train.Perplexity
// (through PerplexityScorer) and, on the same examples, compares with ONNX Runtime: cross-engine
// parity within 1e-3 relative, and both within 1e-4 of transformers.
func TestAnswerPerplexityGoMLXMatchesTransformers(t *testing.T) {
	g, exs := loadAnswerGolden(t)
	dir := testutil.Stories260K(t)
	scorer := PerplexityScorer(func(ctx context.Context, examples []data.Example) (float64, error) {
		return train.Perplexity(ctx, dir, "", examples, train.BackendGo)
	})
	got, err := scorer.ScoreAnswers(context.Background(), exs)
	if err != nil {
		t.Fatal(err)
	}
	if got.Tokens != g.Tokens || got.Examples != len(exs) {
		t.Fatalf("counted %d tokens of %d examples, golden %d tokens", got.Tokens, got.Examples, g.Tokens)
	}
	rel := math.Abs(got.Perplexity()-g.Perplexity) / g.Perplexity
	t.Logf("perplexity gomlx %.6f, transformers %.6f (relative difference %.2g)", got.Perplexity(), g.Perplexity, rel)
	if rel > 1e-4 {
		t.Fatalf("perplexity %v, transformers %v", got.Perplexity(), g.Perplexity)
	}
	e := openONNX(t)
	onnx, err := LogitsScorer{Forward: e.Forward}.ScoreAnswers(context.Background(), exs)
	if err != nil {
		t.Fatal(err)
	}
	if d := math.Abs(onnx.Perplexity()-got.Perplexity()) / got.Perplexity(); d > 1e-3 {
		t.Fatalf("onnx %v vs gomlx %v: relative difference %g", onnx.Perplexity(), got.Perplexity(), d)
	}
}
