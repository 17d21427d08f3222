package serve

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/medassist/medassist/generation"
	"github.com/medassist/medassist/model"
)

// The HTTP layer's tests (queueing, deadlines, shutdown, disconnects, panics) run on fakeBackend: a
// word-level tokenizer and a generator in Go, so they need no cgo library, ONNX Runtime or shared
// model. What the real engine and tokenizer produce is tested on stories260K (storiesBackend).

// fakeWords are the fake vocabulary: id i decodes to fakeWords[i].
var fakeWords = []string{"Rest", "drink", "fluids", "and", "see", "a", "doctor", "soon."}

// fakeTokenizer encodes one id per word of the rendered prompt (after a BOS id).
type fakeTokenizer struct{}

func (fakeTokenizer) EncodeRendered(text string, _ [][2]int, addBOS bool) []int {
	var ids []int
	if addBOS {
		ids = append(ids, 0)
	}
	for range strings.Fields(text) {
		ids = append(ids, 1)
	}
	return ids
}

func (fakeTokenizer) StreamDecoder(bool) StreamDecoder { return fakeDecoder{} }

type fakeDecoder struct{}

func (fakeDecoder) Add(id int) string { return fakeWords[id%len(fakeWords)] + " " }
func (fakeDecoder) Flush() string     { return "" }

// fakeGen emits 0, 1, 2, ... (mod the vocabulary), one id per millisecond, until MaxNewTokens, a
// stop id, emit's ErrStop or the end of ctx, as the Generator contract says.
type fakeGen struct{}

func (fakeGen) Generate(ctx context.Context, req generation.Request, emit func(int) error) (generation.Result, error) {
	res := generation.Result{PromptTokens: len(req.PromptIDs), Finish: generation.FinishLength}
	for i := 0; i < req.MaxNewTokens; i++ {
		select {
		case <-ctx.Done():
			res.Finish = generation.FinishCancelled
			return res, ctx.Err()
		case <-time.After(time.Millisecond):
		}
		id := i % len(fakeWords)
		for _, s := range req.StopIDs {
			if id == s {
				res.Finish = generation.FinishStop
				return res, nil
			}
		}
		res.IDs = append(res.IDs, id)
		if err := emit(id); errors.Is(err, generation.ErrStop) {
			res.Finish = generation.FinishStop
			return res, nil
		} else if err != nil {
			return res, err
		}
	}
	return res, nil
}

// fakeTemplate is a Zephyr-style chat template (TinyLlama's shape).
const fakeTemplate = "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}</s>\n{% endfor %}" +
	"{% if add_generation_prompt %}<|assistant|>\n{% endif %}"

// fakeBackend generates through gen (fakeGen{} when nil) with the fake tokenizer.
func fakeBackend(t testing.TB, gen generation.Generator) *Backend {
	t.Helper()
	tpl, err := model.NewChatTemplate(fakeTemplate, nil)
	if err != nil {
		t.Fatal(err)
	}
	if gen == nil {
		gen = fakeGen{}
	}
	return &Backend{Gen: gen, Tok: fakeTokenizer{}, Template: tpl, MaxPositions: 2048, Device: "fake",
		Close: func() error { return nil }}
}

// TestFakeBackendAnswers: a plain and a streamed answer through the whole HTTP layer on the fake
// backend carry the fake words, in the guard's answer format.
func TestFakeBackendAnswers(t *testing.T) {
	h := newHarness(t, fakeBackend(t, nil), nil)
	resp, body := h.post(chatBody(question, `,"max_tokens":6`))
	c := decodeCompletion(t, body)
	if resp.StatusCode != 200 || len(c.Choices) != 1 || c.Choices[0].Message == nil || !strings.Contains(c.Choices[0].Message.Content, "drink fluids") {
		t.Fatalf("plain: %d %s", resp.StatusCode, body)
	}
	if f := c.Choices[0].FinishReason; f == nil || *f != "length" || c.Usage == nil || c.Usage.CompletionTokens != 6 {
		t.Errorf("want finish_reason length and 6 completion tokens: %s", body)
	}
	resp, body = h.post(chatBody(question, `,"max_tokens":6,"stream":true`))
	if s := parseSSE(t, body); resp.StatusCode != 200 || !s.done || !strings.Contains(s.content, "drink fluids") {
		t.Errorf("stream: %d %s", resp.StatusCode, body)
	}
}
