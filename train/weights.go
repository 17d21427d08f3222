package train

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"

	"github.com/gomlx/compute"
	"github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	mlmodel "github.com/gomlx/gomlx/ml/model"
	"github.com/medassist/medassist/model"
)

// Variables live in a GoMLX store under two scopes: the frozen base weights under /base (named as
// in model.safetensors) and the trainable adapters under /lora (named as in PEFT's
// adapter_model.safetensors). Everything else in the store (optimizer moments, step counters,
// gradient accumulators, the random-number state) is training state.
const (
	baseScope = "/base"
	loraScope = "/lora"
)

func basePath(name string) string { return baseScope + "/" + name }
func loraPath(name string) string { return loraScope + "/" + name }

// Adapter describes the LoRA adapters trained on top of the frozen base.
type Adapter struct {
	Rank    int
	Alpha   float64
	Dropout float64
	Targets []model.Projection
}

// Scale is alpha / r, the factor the adapter's product B·A is multiplied by.
func (a *Adapter) Scale() float64 { return a.Alpha / float64(a.Rank) }

// loadBase creates a frozen (non-trainable) store variable for every tensor of the model in dir.
// Each tensor is moved to the backend right away (a buffer shared with the host where the backend
// allows it), so that the weights are held once rather than as a host copy plus a device copy.
func loadBase(store *mlmodel.Store, backend compute.Backend, w *model.Weights, cfg *model.Config) error {
	for _, name := range cfg.TensorNames() {
		shape, err := cfg.TensorShape(name)
		if err != nil {
			return err
		}
		info, ok := w.Info(name)
		if !ok {
			return fmt.Errorf("load base: tensor %s missing from the weights (is this a Llama checkpoint?)", name)
		}
		if !slices.Equal(info.Shape, shape) {
			return fmt.Errorf("load base: tensor %s has shape %v, config.json implies %v", name, info.Shape, shape)
		}
		data, err := w.Float32(name)
		if err != nil {
			return fmt.Errorf("load base: %w", err)
		}
		t := tensors.FromFlatDataAndDimensions(data, shape...)
		if err := t.ToDevice(backend, 0); err != nil {
			return fmt.Errorf("load base: %s: %w", name, err)
		}
		v, err := store.CreateVariable(basePath(name), t)
		if err != nil {
			return fmt.Errorf("load base: %s: %w", name, err)
		}
		v.SetTrainable(false)
	}
	return nil
}

// initAdapters creates the trainable LoRA variables: A [r, in] drawn as PEFT does
// (kaiming_uniform with a=√5, i.e. U(−1/√in, 1/√in)) from a generator seeded with seed, B [out, r]
// zero, so that training starts from the base model exactly.
func initAdapters(store *mlmodel.Store, cfg *model.Config, ad *Adapter, seed int64) error {
	rng := rand.New(rand.NewPCG(uint64(seed), 0x6c6f7261)) // "lora"
	for i := range cfg.NumHiddenLayers {
		for _, p := range model.Projections {
			if !slices.Contains(ad.Targets, p) {
				continue
			}
			out, in := cfg.ProjShape(p)
			bound := 1 / math.Sqrt(float64(in))
			a := make([]float32, ad.Rank*in)
			for j := range a {
				a[j] = float32((2*rng.Float64() - 1) * bound)
			}
			if _, err := store.CreateVariable(loraPath(model.LoraA(i, p)), tensors.FromFlatDataAndDimensions(a, ad.Rank, in)); err != nil {
				return err
			}
			b := make([]float32, out*ad.Rank)
			if _, err := store.CreateVariable(loraPath(model.LoraB(i, p)), tensors.FromFlatDataAndDimensions(b, out, ad.Rank)); err != nil {
				return err
			}
		}
	}
	return nil
}

// buildLlama fetches the model's variables for graph g. ad may be nil (no adapters); dropout, when
// non-nil, is applied to every adapter's input (training only).
func buildLlama(store *mlmodel.Store, g *graph.Graph, cfg *model.Config, ad *Adapter, dropout func(*graph.Node) (*graph.Node, float64)) *Llama {
	node := func(path string) *graph.Node {
		v := store.GetVariable(path)
		if v == nil {
			panic(fmt.Sprintf("variable %s not in the store", path))
		}
		return v.NodeValue(g)
	}
	linear := func(i int, p model.Projection) *Linear {
		l := &Linear{Weight: node(basePath(model.ProjWeight(i, p)))}
		if ad != nil && slices.Contains(ad.Targets, p) {
			l.LoraA = node(loraPath(model.LoraA(i, p)))
			l.LoraB = node(loraPath(model.LoraB(i, p)))
			l.Scale = ad.Scale()
			l.Dropout = dropout
		}
		return l
	}
	m := &Llama{Config: cfg, EmbedTokens: node(basePath(model.EmbedTokens)), Norm: node(basePath(model.FinalNorm))}
	m.LMHead = m.EmbedTokens
	if !cfg.TieWordEmbeddings {
		m.LMHead = node(basePath(model.LMHead))
	}
	for i := range cfg.NumHiddenLayers {
		m.Layers = append(m.Layers, &Layer{
			AttentionNorm: node(basePath(model.InputNorm(i))),
			SelfAttention: &SelfAttention{
				Query: linear(i, model.QProj), Key: linear(i, model.KProj),
				Value: linear(i, model.VProj), Output: linear(i, model.OProj),
				NumHeads: cfg.NumAttentionHeads, NumKVHeads: cfg.NumKeyValueHeads, HeadDim: cfg.HeadDim(),
			},
			MLPNorm: node(basePath(model.PostAttentionNorm(i))),
			MLP:     &MLP{Gate: linear(i, model.GateProj), Up: linear(i, model.UpProj), Down: linear(i, model.DownProj)},
		})
	}
	return m
}
