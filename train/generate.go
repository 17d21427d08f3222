package train

import (
	"context"
	"errors"
	"log/slog"
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
	s    *session
	log  *slog.Logger
	mu   sync.Mutex    // one graph execution at a time: the backend already uses every core
	step *mlmodel.Exec // the prompt (prefill) and each new token (decode), one graph per shape
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
	if g.step, err = mlmodel.NewExec(b, s.store, g.stepGraph); err != nil {
		return nil, err
	}
	g.step.SetMaxCache(192)
	return g, nil
}

// stepGraph: ids [1, n] at positions pos.. (int32), the cache, last (int32: the index in ids of the
// last real token, ids being right-padded) → (logits after the token at last, cache with ids'
// keys and values). The prompt is one step at pos 0, each new token one step of n = 1.
func (g *generator) stepGraph(_ *mlmodel.Scope, ids, pos, last, cache *graph.Node) (*graph.Node, *graph.Node) {
	defer releaseVJPs(ids.Graph())
	m := buildLlama(g.s.store, ids.Graph(), g.s.cfg, g.s.adapter, nil)
	h, c := m.Hidden(ids, &KVCache{Data: cache, Pos: pos})
	dims := h.Shape().Dimensions
	h = graph.Gather(graph.Reshape(h, dims[1], dims[2]), graph.Reshape(last, 1, 1)) // [1, hidden]
	return graph.Reshape(m.Logits(h), -1), c.Data
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
	out, err := g.step.Call(tensors.FromFlatDataAndDimensions(padded, 1, width), int32(0), int32(len(prompt)-1), cache)
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
	out, err := s.g.step.Call(tensors.FromFlatDataAndDimensions([]int32{int32(id)}, 1, 1), int32(pos), int32(0), s.cache)
	if err != nil {
		return nil, err
	}
	s.cache.FinalizeAll()
	s.cache = out[1]
	return tensors.MustCopyFlatData[float32](out[0]), nil
}

func (s *sequence) close() { s.cache.FinalizeAll() }

// Generate implements generation.Generator with generation.Run's loop.
func (g *generator) Generate(ctx context.Context, req generation.Request, emit func(id int) error) (generation.Result, error) {
	cfg := g.s.cfg
	maxLen := cfg.MaxPositionEmbeddings
	if maxLen <= 0 {
		maxLen = len(req.PromptIDs) + req.MaxNewTokens
	}
	st := &stepper{g: g}
	defer st.close()
	return generation.Run(ctx, req, maxLen, cfg.VocabSize, st, emit)
}

// stepper is one request's sequence as a generation.Stepper.
type stepper struct {
	g   *generator
	seq *sequence
}

func (st *stepper) Start(prompt []int, capacity int) ([]float32, error) {
	seq, logits, err := st.g.start(prompt, capacity)
	st.seq = seq
	return logits, err
}

func (st *stepper) Step(id int) ([]float32, error) { return st.seq.next(id) }

func (st *stepper) close() {
	if st.seq != nil {
		st.seq.close()
	}
}
