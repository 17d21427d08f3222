package generation

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
)

// counter is a model whose most likely next token is always the previous one plus 1 (mod vocab).
type counter struct {
	vocab, steps int
	last         int
	capacity     int
}

func (c *counter) logits() []float32 {
	l := make([]float32, c.vocab)
	l[(c.last+1)%c.vocab] = 10
	return l
}

func (c *counter) Start(prompt []int, capacity int) ([]float32, error) {
	c.last, c.capacity = prompt[len(prompt)-1], capacity
	return c.logits(), nil
}

func (c *counter) Step(id int) ([]float32, error) {
	c.last = id
	c.steps++
	return c.logits(), nil
}

func TestRunStopsAndFinishes(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name      string
		req       Request
		maxPos    int
		stopAfter int // emit returns ErrStop after this many tokens (0: never)
		want      []int
		finish    FinishReason
		capacity  int
	}{
		{"max tokens", Request{PromptIDs: []int{1, 2}, MaxNewTokens: 3}, 100, 0, []int{3, 4, 5}, FinishLength, 5},
		{"stop id not emitted", Request{PromptIDs: []int{1}, MaxNewTokens: 10, StopIDs: []int{4}}, 100, 0, []int{2, 3}, FinishStop, 11},
		{"emit asks to stop", Request{PromptIDs: []int{1}, MaxNewTokens: 10}, 100, 2, []int{2, 3}, FinishStop, 11},
		{"context cuts the budget", Request{PromptIDs: []int{1, 2, 3}, MaxNewTokens: 10}, 5, 0, []int{4, 5}, FinishLength, 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := &counter{vocab: 16}
			var emitted []int
			res, err := Run(ctx, tc.req, tc.maxPos, 16, m, func(id int) error {
				emitted = append(emitted, id)
				if len(emitted) == tc.stopAfter {
					return ErrStop
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(res.IDs, tc.want) || !slices.Equal(emitted, tc.want) || res.Finish != tc.finish {
				t.Fatalf("ids %v emitted %v finish %q, want %v %q", res.IDs, emitted, res.Finish, tc.want, tc.finish)
			}
			if res.PromptTokens != len(tc.req.PromptIDs) || m.capacity != tc.capacity || res.Duration < res.TTFT || res.TTFT <= 0 {
				t.Fatalf("prompt tokens %d capacity %d ttft %v duration %v", res.PromptTokens, m.capacity, res.TTFT, res.Duration)
			}
			if m.steps != len(tc.want)-1 && tc.finish != FinishStop {
				t.Fatalf("%d model steps for %d tokens: the last token needs none", m.steps, len(tc.want))
			}
		})
	}
}

func TestRunCancelAndErrors(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	res, err := Run(ctx, Request{PromptIDs: []int{1}, MaxNewTokens: 10}, 100, 16, &counter{vocab: 16}, func(id int) error {
		if id == 3 {
			cancel()
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) || res.Finish != FinishCancelled || !slices.Equal(res.IDs, []int{2, 3}) {
		t.Fatalf("cancelled: ids %v finish %q err %v", res.IDs, res.Finish, err)
	}

	boom := errors.New("client gone")
	res, err = Run(context.Background(), Request{PromptIDs: []int{1}, MaxNewTokens: 10}, 100, 16, &counter{vocab: 16}, func(int) error { return boom })
	if !errors.Is(err, boom) || res.Finish != FinishStop || len(res.IDs) != 1 {
		t.Fatalf("emit error: ids %v finish %q err %v", res.IDs, res.Finish, err)
	}

	for _, tc := range []struct {
		req  Request
		want string
	}{
		{Request{PromptIDs: []int{1, 2, 3}, MaxNewTokens: 1}, "context is 3"},
		{Request{PromptIDs: []int{1, 16}, MaxNewTokens: 1}, "outside the vocabulary"},
		{Request{PromptIDs: []int{1}, MaxNewTokens: 0}, "max new tokens"},
	} {
		if _, err := NewSequence(tc.req, 3, 16); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want %q", tc.req, err, tc.want)
		}
	}
}
