package train

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	. "github.com/gomlx/gomlx/core/graph" //nolint:revive
	"github.com/gomlx/gomlx/core/tensors"
	mlmodel "github.com/gomlx/gomlx/ml/model"
	"github.com/medassist/medassist/generation"
)

// generator is the GoMLX engine behind `generate --engine gomlx`. It recomputes the whole sequence
// for every new token (no KV cache): simple and exact, meant for checks and small models; the ONNX
// engine is the fast path. Sequences are right-padded to a multiple of genBucket tokens so that a
// handful of compiled graphs serve every length.
type generator struct {
	s    *session
	log  *slog.Logger
	mu   sync.Mutex // one forward pass at a time: the backend already uses every core
	next *mlmodel.Exec
}

const genBucket = 32

// OpenGenerator loads the Hugging Face-layout model in dir (a base or merged model) on the pure-Go
// backend.
func OpenGenerator(dir string, log *slog.Logger) (generation.Generator, error) {
	return OpenGeneratorOn(dir, "", log)
}

// OpenGeneratorOn is OpenGenerator on the backend named by spec (see NewBackend).
func OpenGeneratorOn(dir, backendSpec string, log *slog.Logger) (generation.Generator, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	b, err := NewBackend(backendSpec)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	s, err := openSession(b, dir)
	if err != nil {
		return nil, err
	}
	log.Debug("gomlx model loaded", "dir", dir, "backend", b.Name(), "load", time.Since(start).Round(time.Millisecond))
	g := &generator{s: s, log: log}
	g.next, err = mlmodel.NewExec(b, s.store, g.nextLogitsGraph)
	if err != nil {
		return nil, err
	}
	return g, nil
}

// nextLogitsGraph returns the logits [vocab] at position pos of ids [1, n].
func (g *generator) nextLogitsGraph(_ *mlmodel.Scope, ids, pos *Node) *Node {
	defer releaseVJPs(ids.Graph())
	m := buildLlama(g.s.store, ids.Graph(), g.s.cfg, g.s.adapter, nil)
	h := m.Hidden(ids) // [1, n, hidden]
	dims := h.Shape().Dimensions
	last := Gather(Reshape(h, dims[1], dims[2]), Reshape(pos, 1, 1)) // [1, hidden]
	return Reshape(m.Logits(last), -1)
}

// nextLogits runs the model on ids and returns the logits that follow the last one.
func (g *generator) nextLogits(ids []int) ([]float32, error) {
	n := (len(ids) + genBucket - 1) / genBucket * genBucket
	padded := make([]int32, n)
	for i, id := range ids {
		padded[i] = int32(id)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	out, err := g.next.Call1(tensors.FromFlatDataAndDimensions(padded, 1, n), int32(len(ids)-1))
	if err != nil {
		return nil, err
	}
	return tensors.MustCopyFlatData[float32](out), nil
}

// Generate implements generation.Generator.
func (g *generator) Generate(ctx context.Context, req generation.Request, emit func(id int) error) (generation.Result, error) {
	start := time.Now()
	res := generation.Result{PromptTokens: len(req.PromptIDs)}
	if err := req.Validate(); err != nil {
		return res, err
	}
	maxLen := g.s.cfg.MaxPositionEmbeddings
	if maxLen > 0 && len(req.PromptIDs) >= maxLen {
		return res, fmt.Errorf("prompt has %d tokens; the model's context is %d", len(req.PromptIDs), maxLen)
	}
	for _, id := range req.PromptIDs {
		if id < 0 || id >= g.s.cfg.VocabSize {
			return res, fmt.Errorf("prompt token id %d is outside the vocabulary (0..%d)", id, g.s.cfg.VocabSize-1)
		}
	}
	sampler := generation.NewSampler(req.Sampling)
	seq := append([]int(nil), req.PromptIDs...)
	defer func() { res.Duration = time.Since(start) }()
	for len(res.IDs) < req.MaxNewTokens {
		if maxLen > 0 && len(seq) >= maxLen {
			break
		}
		if err := ctx.Err(); err != nil {
			res.Finish = generation.FinishCancelled
			return res, err
		}
		logits, err := g.nextLogits(seq)
		if err != nil {
			return res, err
		}
		id := sampler.Next(logits, seq)
		if res.TTFT == 0 {
			res.TTFT = time.Since(start)
		}
		if isStop(id, req.StopIDs) {
			res.Finish = generation.FinishStop
			return res, nil
		}
		seq = append(seq, id)
		res.IDs = append(res.IDs, id)
		if err := emit(id); err != nil {
			if err == generation.ErrStop {
				res.Finish = generation.FinishStop
				return res, nil
			}
			return res, err
		}
	}
	res.Finish = generation.FinishLength
	return res, nil
}

func isStop(id int, stops []int) bool {
	for _, s := range stops {
		if id == s {
			return true
		}
	}
	return false
}
