package train

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	"github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	mlmodel "github.com/gomlx/gomlx/ml/model"
	"github.com/medassist/medassist/generation"
)

// generator is the GoMLX engine behind `generate --engine gomlx`: the prompt is run once (prefill)
// into a key/value cache, then each new token is one decode step against the cache. The prompt is
// right-padded to a multiple of genBucket tokens and the cache sized to a multiple of cacheBucket,
// so that a few compiled graphs serve every request.
type generator struct {
	s       *session
	log     *slog.Logger
	mu      sync.Mutex // one graph execution at a time: the backend already uses every core
	prefill *mlmodel.Exec
	decode  *mlmodel.Exec
}

const (
	genBucket   = 32
	cacheBucket = 64
)

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
	b, _, err := OpenBackend(backendSpec, log)
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
	if g.prefill, err = mlmodel.NewExec(b, s.store, g.prefillGraph); err != nil {
		return nil, err
	}
	if g.decode, err = mlmodel.NewExec(b, s.store, g.decodeGraph); err != nil {
		return nil, err
	}
	g.prefill.SetMaxCache(128)
	g.decode.SetMaxCache(64)
	return g, nil
}

// prefillGraph: ids [1, n], last (int32), an empty cache → (logits after the token at last, cache).
func (g *generator) prefillGraph(_ *mlmodel.Scope, ids, last, cache *graph.Node) (*graph.Node, *graph.Node) {
	defer releaseVJPs(ids.Graph())
	m := buildLlama(g.s.store, ids.Graph(), g.s.cfg, g.s.adapter, nil)
	h, c := m.Prefill(ids, last, cache)
	return graph.Reshape(m.Logits(h), -1), c
}

// decodeGraph: id [1, 1], pos (int32), cache → (logits after id, cache).
func (g *generator) decodeGraph(_ *mlmodel.Scope, id, pos, cache *graph.Node) (*graph.Node, *graph.Node) {
	defer releaseVJPs(id.Graph())
	m := buildLlama(g.s.store, id.Graph(), g.s.cfg, g.s.adapter, nil)
	h, c := m.Decode(id, pos, cache)
	return graph.Reshape(m.Logits(h), -1), c
}

// sequence is one request's state: its token ids and key/value cache.
type sequence struct {
	g     *generator
	ids   []int
	cache *tensors.Tensor
}

func roundUp(n, k int) int { return (n + k - 1) / k * k }

// start runs the prompt and returns the logits that follow it; capacity bounds prompt + new tokens.
func (g *generator) start(prompt []int, capacity int) (*sequence, []float32, error) {
	cfg := g.s.cfg
	width := roundUp(len(prompt), genBucket)
	capacity = max(roundUp(capacity, cacheBucket), width)
	padded := make([]int32, width)
	for i, id := range prompt {
		padded[i] = int32(id)
	}
	cache := tensors.FromShape(shapes.Make(dtypes.Float32, cfg.NumHiddenLayers, 2, cfg.NumKeyValueHeads, capacity, cfg.HeadDim()))
	g.mu.Lock()
	defer g.mu.Unlock()
	out, err := g.prefill.Call(tensors.FromFlatDataAndDimensions(padded, 1, width), int32(len(prompt)-1), cache)
	if err != nil {
		return nil, nil, err
	}
	seq := &sequence{g: g, ids: append([]int(nil), prompt...), cache: out[1]}
	return seq, tensors.MustCopyFlatData[float32](out[0]), nil
}

// next appends id and returns the logits that follow it.
func (s *sequence) next(id int) ([]float32, error) {
	pos := len(s.ids)
	if pos >= s.cache.Shape().Dimensions[3] {
		return nil, errors.New("key/value cache full")
	}
	s.ids = append(s.ids, id)
	s.g.mu.Lock()
	defer s.g.mu.Unlock()
	out, err := s.g.decode.Call(tensors.FromFlatDataAndDimensions([]int32{int32(id)}, 1, 1), int32(pos), s.cache)
	if err != nil {
		return nil, err
	}
	s.cache.FinalizeAll()
	s.cache = out[1]
	return tensors.MustCopyFlatData[float32](out[0]), nil
}

func (s *sequence) close() { s.cache.FinalizeAll() }

// Generate implements generation.Generator.
func (g *generator) Generate(ctx context.Context, req generation.Request, emit func(id int) error) (generation.Result, error) {
	start := time.Now()
	res := generation.Result{PromptTokens: len(req.PromptIDs)}
	defer func() { res.Duration = time.Since(start) }()
	if err := req.Validate(); err != nil {
		return res, err
	}
	cfg := g.s.cfg
	maxLen := cfg.MaxPositionEmbeddings
	if maxLen <= 0 {
		maxLen = len(req.PromptIDs) + req.MaxNewTokens
	}
	if len(req.PromptIDs) >= maxLen {
		return res, fmt.Errorf("prompt has %d tokens; the model's context is %d", len(req.PromptIDs), maxLen)
	}
	for _, id := range req.PromptIDs {
		if id < 0 || id >= cfg.VocabSize {
			return res, fmt.Errorf("prompt token id %d is outside the vocabulary (0..%d)", id, cfg.VocabSize-1)
		}
	}
	total := min(len(req.PromptIDs)+req.MaxNewTokens, maxLen)
	seq, logits, err := g.start(req.PromptIDs, total)
	if err != nil {
		return res, err
	}
	defer seq.close()
	sampler := generation.NewSampler(req.Sampling)
	for {
		if err := ctx.Err(); err != nil {
			res.Finish = generation.FinishCancelled
			return res, err
		}
		id := sampler.Next(logits, seq.ids)
		if res.TTFT == 0 {
			res.TTFT = time.Since(start)
		}
		if slices.Contains(req.StopIDs, id) {
			res.Finish = generation.FinishStop
			return res, nil
		}
		res.IDs = append(res.IDs, id)
		if err := emit(id); err != nil {
			if errors.Is(err, generation.ErrStop) {
				res.Finish = generation.FinishStop
				return res, nil
			}
			return res, err
		}
		if len(res.IDs) == req.MaxNewTokens || len(seq.ids)+1 >= maxLen {
			res.Finish = generation.FinishLength
			return res, nil
		}
		if logits, err = seq.next(id); err != nil {
			return res, err
		}
	}
}
