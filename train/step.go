package train

import (
	"fmt"
	"math"
	"slices"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive
	"github.com/gomlx/gomlx/core/tensors"
	mlmodel "github.com/gomlx/gomlx/ml/model"
	"github.com/medassist/medassist/model"
)

// Training state in the store besides the adapters: per adapter tensor, the gradient accumulator and
// AdamW's two moments. Together with the store's random-number state they are what a checkpoint saves.
const (
	accScope   = "/acc"
	adamMScope = "/adam/m"
	adamVScope = "/adam/v"
)

// AdamW's constants: torch.optim.AdamW's defaults.
const (
	adamBeta1 = 0.9
	adamBeta2 = 0.999
	adamEps   = 1e-8
	// clipEps is what torch.nn.utils.clip_grad_norm_ adds to the norm before dividing.
	clipEps = 1e-6
)

// optimizer runs the two graphs of LoRA training on a session's store (validation uses the
// session's eval graph):
//
//   - micro: forward + backward of one micro-batch, adding the gradients into the accumulators;
//   - apply: global-norm clipping of the accumulated gradient, one AdamW update, accumulators reset.
//
// AdamW is written out rather than taken from GoMLX's optimizer package so that it is torch's to the
// operation (bias corrections in float64 on the host, decoupled decay first, eps outside the root)
// and the learning rate of each step comes from the host-side schedule.
//
// The micro-batch loss is the sum of token losses times 1/(labelled tokens of the whole optimizer
// step), so the accumulated gradient is that of the mean token loss over the step, as in
// transformers' Trainer.
type optimizer struct {
	s           *session
	names       []string // PEFT names of the adapter tensors, in a fixed order
	dropout     float64
	weightDecay float64
	clipNorm    float64 // ≤ 0: no clipping
	micro       *mlmodel.Exec
	apply       *mlmodel.Exec
}

// adapterNames lists the PEFT names of ad's tensors for cfg: A then B, layer by layer.
func adapterNames(cfg *model.Config, ad *Adapter) []string {
	var names []string
	for i := range cfg.NumHiddenLayers {
		for _, p := range model.Projections {
			if slices.Contains(ad.Targets, p) {
				names = append(names, model.LoraA(i, p), model.LoraB(i, p))
			}
		}
	}
	return names
}

// newOptimizer creates the optimizer state variables (zeros) and the executables.
func newOptimizer(s *session, dropout, weightDecay, clipNorm float64) (*optimizer, error) {
	o := &optimizer{s: s, names: adapterNames(s.cfg, s.adapter), dropout: dropout, weightDecay: weightDecay, clipNorm: clipNorm}
	for _, name := range o.names {
		v := s.store.GetVariable(loraPath(name))
		if v == nil {
			return nil, fmt.Errorf("adapter tensor %s missing", name)
		}
		for _, scope := range []string{accScope, adamMScope, adamVScope} {
			if s.store.GetVariable(scope+"/"+name) != nil {
				continue
			}
			zero := tensors.FromShape(shapes.Make(dtypes.Float32, v.Shape().Dimensions...))
			sv, err := s.store.CreateVariable(scope+"/"+name, zero)
			if err != nil {
				return nil, err
			}
			sv.SetTrainable(false)
		}
	}
	var err error
	if o.micro, err = mlmodel.NewExec(s.backend, s.store, o.microGraph); err != nil {
		return nil, err
	}
	if o.apply, err = mlmodel.NewExec(s.backend, s.store, o.applyGraph); err != nil {
		return nil, err
	}
	// Sequence lengths are bucketed, so a few dozen shapes at most; allow plenty.
	o.micro.SetMaxCache(256)
	return o, nil
}

func (o *optimizer) variable(path string) *mlmodel.Variable {
	v := o.s.store.GetVariable(path)
	if v == nil {
		panic("variable " + path + " not in the store")
	}
	return v
}

// dropoutFn is PEFT's nn.Dropout on the adapter input: a 0/1 mask zeroing with probability p (the
// 1/(1-p) scale is applied by the caller); one independent mask per adapter, as PEFT's one module
// per target.
func (o *optimizer) dropoutFn(g *Graph) func(*Node) (*Node, float64) {
	if o.dropout <= 0 {
		return nil
	}
	p := o.dropout
	return func(x *Node) (*Node, float64) {
		u := o.s.store.RandomUniform(g, x.Shape())
		return ConvertDType(GreaterOrEqual(u, ConstAsDType(g, x.DType(), p)), x.DType()), p
	}
}

// microGraph: ids, labels [b, s] int32; invTokens scalar → (summed token loss, token count).
func (o *optimizer) microGraph(_ *mlmodel.Scope, ids, labels, invTokens *Node) (*Node, *Node) {
	g := ids.Graph()
	defer releaseVJPs(g)
	m := buildLlama(o.s.store, g, o.s.cfg, o.s.adapter, o.dropoutFn(g))
	sum, count := tokenLoss(m.Forward(ids), labels)
	loss := Mul(sum, invTokens)
	params := make([]*Node, len(o.names))
	for i, name := range o.names {
		params[i] = o.variable(loraPath(name)).NodeValue(g)
	}
	grads := Gradient(loss, params...)
	for i, name := range o.names {
		acc := o.variable(accScope + "/" + name)
		acc.SetNodeValue(Add(acc.NodeValue(g), grads[i]))
	}
	return sum, count
}

// applyGraph: lr, stepSize = lr/(1-β1^t), sqrtBC2 = √(1-β2^t) (float32 scalars) → gradient norm
// before clipping. It mirrors torch: clip_grad_norm_, then AdamW (decoupled weight decay first).
func (o *optimizer) applyGraph(_ *mlmodel.Scope, lr, stepSize, sqrtBC2 *Node) *Node {
	g := lr.Graph()
	grads := make([]*Node, len(o.names))
	var sq *Node
	for i, name := range o.names {
		grads[i] = o.variable(accScope + "/" + name).NodeValue(g)
		s := ReduceAllSum(Square(grads[i]))
		if sq == nil {
			sq = s
		} else {
			sq = Add(sq, s)
		}
	}
	norm := Sqrt(sq)
	if o.clipNorm > 0 {
		coef := Div(ConstAsDType(g, norm.DType(), o.clipNorm), AddScalar(norm, clipEps))
		coef = Min(coef, ScalarOne(g, coef.DType()))
		for i := range grads {
			grads[i] = Mul(grads[i], coef)
		}
	}
	decay := OneMinus(MulScalar(lr, o.weightDecay))
	for i, name := range o.names {
		pv, mv, vv := o.variable(loraPath(name)), o.variable(adamMScope+"/"+name), o.variable(adamVScope+"/"+name)
		grad := grads[i]
		p := pv.NodeValue(g)
		if o.weightDecay != 0 {
			p = Mul(p, decay)
		}
		m := mv.NodeValue(g)
		m = Add(m, MulScalar(Sub(grad, m), 1-adamBeta1)) // torch: exp_avg.lerp_(grad, 1-β1)
		v := Add(MulScalar(vv.NodeValue(g), adamBeta2), MulScalar(Square(grad), 1-adamBeta2))
		denom := AddScalar(Div(Sqrt(v), sqrtBC2), adamEps)
		p = Sub(p, Mul(stepSize, Div(m, denom)))
		pv.SetNodeValue(p)
		mv.SetNodeValue(m)
		vv.SetNodeValue(v)
		acc := o.variable(accScope + "/" + name)
		acc.SetNodeValue(ZerosLike(grad))
	}
	return norm
}

// batch is a padded micro-batch: ids and labels [rows, width], right-padded (labels with -100).
type batch struct {
	ids, labels *tensors.Tensor
	tokens      int // real (non-padding) tokens
	targets     int // labelled next-token positions
}

// Step runs one micro-batch and returns its summed token loss.
func (o *optimizer) Step(b *batch, invTokens float32) (float64, error) {
	sum, _, err := o.micro.Call2(b.ids, b.labels, invTokens)
	if err != nil {
		return 0, err
	}
	return float64(tensors.ToScalar[float32](sum)), nil
}

// Apply performs optimizer step number t (1-based) with learning rate lr and returns the gradient
// norm before clipping.
func (o *optimizer) Apply(t int, lr float64) (float64, error) {
	bc1 := 1 - math.Pow(adamBeta1, float64(t))
	bc2 := 1 - math.Pow(adamBeta2, float64(t))
	norm, err := o.apply.Call1(float32(lr), float32(lr/bc1), float32(math.Sqrt(bc2)))
	if err != nil {
		return 0, err
	}
	return float64(tensors.ToScalar[float32](norm)), nil
}
