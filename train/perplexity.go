package train

import (
	"context"
	"errors"
	"fmt"

	"github.com/gomlx/gomlx/core/tensors"
	"github.com/medassist/medassist/train/data"
	"github.com/medassist/medassist/train/merge"
)

// Perplexity is the answer-token perplexity of examples (exp of the mean next-token loss over the
// labelled tokens) under the model in modelDir, with the PEFT LoRA adapter in adapterDir folded in
// (W + scale·B·A) when adapterDir is not "". backendSpec names the GoMLX backend (see NewBackend).
func Perplexity(ctx context.Context, modelDir, adapterDir string, examples []data.Example, backendSpec string) (float64, error) {
	if len(examples) == 0 {
		return 0, errors.New("perplexity: no examples")
	}
	b, err := NewBackend(backendSpec)
	if err != nil {
		return 0, err
	}
	s, err := openSession(b, modelDir)
	if err != nil {
		return 0, fmt.Errorf("perplexity: %w", err)
	}
	if adapterDir != "" {
		if err := foldAdapter(s, adapterDir); err != nil {
			return 0, fmt.Errorf("perplexity: %w", err)
		}
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	return perplexity(s, examples, evalRows)
}

// foldAdapter adds an adapter's scale·B·A to the session's base weights.
func foldAdapter(s *session, dir string) error {
	a, err := merge.OpenAdapter(dir, s.cfg)
	if err != nil {
		return err
	}
	defer a.Close()
	for name, t := range a.Targets {
		v := s.store.GetVariable(basePath(name))
		if v == nil {
			return fmt.Errorf("adapter %s targets %s, which the base model lacks", dir, name)
		}
		out, in := s.cfg.ProjShape(t.Projection)
		delta, err := a.Delta(t, out, in)
		if err != nil {
			return err
		}
		w := tensors.MustCopyFlatData[float32](v.MustValue())
		for i := range w {
			w[i] += delta[i]
		}
		if err := v.SetValue(tensors.FromFlatDataAndDimensions(w, out, in)); err != nil {
			return err
		}
	}
	return nil
}
