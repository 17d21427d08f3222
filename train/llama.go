package train

import (
	"math"

	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph ops read like maths
	"github.com/medassist/medassist/model"
)

// Llama is the Llama decoder as a GoMLX graph, with optional LoRA adapters on its projections: the
// graph nodes of one model instance (the frozen base weights and the adapters). It follows Hugging
// Face transformers' LlamaForCausalLM (eager attention) operation by operation: RMSNorm in float32,
// rotary embeddings on split halves, grouped-query attention, SwiGLU MLP, tied or untied head.
type Llama struct {
	Config      *model.Config
	EmbedTokens *Node // [vocab, hidden]
	Layers      []*Layer
	Norm        *Node // [hidden]
	LMHead      *Node // [vocab, hidden]; EmbedTokens when the embeddings are tied
}

// Layer is one decoder block.
type Layer struct {
	AttentionNorm *Node // [hidden]
	SelfAttention *SelfAttention
	MLPNorm       *Node // [hidden]
	MLP           *MLP
}

// SelfAttention is the attention block of a layer.
type SelfAttention struct {
	Query, Key, Value, Output *Linear
	NumHeads, NumKVHeads      int
	HeadDim                   int
}

// MLP is the SwiGLU feed-forward block of a layer.
type MLP struct {
	Gate, Up, Down *Linear
}

// Linear is a bias-free projection y = x·Wᵀ, plus scale·(dropout(x)·Aᵀ)·Bᵀ when it carries a LoRA adapter.
type Linear struct {
	Weight *Node // [out, in]
	LoraA  *Node // [r, in], nil without adapter
	LoraB  *Node // [out, r]
	Scale  float64
	// Dropout, in training, returns a 0/1 mask for the adapter's input and the probability of a zero.
	Dropout func(x *Node) (mask *Node, p float64)
}

// Forward applies the projection to x [..., in] and returns [..., out].
func (l *Linear) Forward(x *Node) *Node {
	y := dense(x, l.Weight)
	if l.LoraA == nil {
		return y
	}
	// The scales (alpha/r, and dropout's 1/(1−p)) are applied to B ([out, r]), not to activations.
	xa, scale := x, l.Scale
	if l.Dropout != nil {
		mask, p := l.Dropout(x)
		xa, scale = Mul(x, mask), scale/(1-p)
	}
	return Add(y, dense(dense(xa, l.LoraA), MulScalar(l.LoraB, scale)))
}

// rmsNorm is x / sqrt(mean(x²) + eps) · w over the last axis.
func rmsNorm(x, w *Node, eps float64) *Node {
	variance := ReduceAndKeep(Square(x), ReduceMean, -1)
	// 1/√ rather than Rsqrt: Rsqrt has no gradient in GoMLX v0.28.
	return Mul(Mul(x, Reciprocal(Sqrt(AddScalar(variance, eps)))), ExpandLeftToRank(w, x.Rank()))
}

// Forward computes the logits [batch, seq, vocab] of ids [batch, seq] (int32). Sequences are
// right-padded: padding only follows real tokens, so the causal mask alone keeps it out of sight.
func (m *Llama) Forward(ids *Node) *Node {
	return m.Logits(m.Hidden(ids))
}

// Hidden is the final normalised hidden state [batch, seq, hidden] before the head.
func (m *Llama) Hidden(ids *Node) *Node {
	g := ids.Graph()
	seqLen := ids.Shape().Dimensions[1]
	rope := newRope(m.Config, seqLen)
	kv := m.Config.NumKeyValueHeads
	mask := causalMask(g, ids.Shape().Dimensions[0]*kv, m.Config.NumAttentionHeads/kv, seqLen)
	x := Gather(m.EmbedTokens, InsertAxes(ids, -1))
	for _, layer := range m.Layers {
		x = layer.Forward(x, rope, mask, m.Config.RMSNormEps)
	}
	return rmsNorm(x, m.Norm, m.Config.RMSNormEps)
}

// Logits applies the head to hidden states.
func (m *Llama) Logits(h *Node) *Node { return dense(h, m.LMHead) }

// Forward runs one decoder block on x [batch, seq, hidden].
func (l *Layer) Forward(x *Node, rope *rope, mask *Node, eps float64) *Node {
	h := Add(x, l.SelfAttention.Forward(rmsNorm(x, l.AttentionNorm, eps), rope, mask))
	return Add(h, l.MLP.Forward(rmsNorm(h, l.MLPNorm, eps)))
}

// Forward is causal grouped-query attention on x [batch, seq, hidden]. Heads are laid out as
// [batch·kvHeads, group·seq, headDim] so that each KV head serves its group of query heads in one
// batched matrix product, without copying keys or values.
func (sa *SelfAttention) Forward(x *Node, rope *rope, mask *Node) *Node {
	dims := x.Shape().Dimensions
	b, s := dims[0], dims[1]
	kv, d := sa.NumKVHeads, sa.HeadDim
	g := sa.NumHeads / kv
	q := TransposeAllAxes(Reshape(sa.Query.Forward(x), b, s, kv, g, d), 0, 2, 3, 1, 4) // [b, kv, g, s, d]
	k := TransposeAllAxes(Reshape(sa.Key.Forward(x), b, s, kv, d), 0, 2, 1, 3)         // [b, kv, s, d]
	v := TransposeAllAxes(Reshape(sa.Value.Forward(x), b, s, kv, d), 0, 2, 1, 3)
	q, k = rope.apply(q), rope.apply(k)

	// The 1/√d scale is applied to q (g·s·d values) rather than to the scores (g·s·s).
	qf := MulScalar(Reshape(q, b*kv, g*s, d), 1/math.Sqrt(float64(d)))
	kf, vf := Reshape(k, b*kv, s, d), Reshape(v, b*kv, s, d)
	scores := Add(batchedMatMulT(qf, kf), mask)                         // [b·kv, g·s, s]
	out := batchedMatMul(softmax(scores), vf)                           // [b·kv, g·s, d]
	out = TransposeAllAxes(Reshape(out, b, kv, g, s, d), 0, 3, 1, 2, 4) // [b, s, kv, g, d]
	return sa.Output.Forward(Reshape(out, b, s, sa.NumHeads*d))
}

// Forward is down(silu(gate(x)) · up(x)).
func (m *MLP) Forward(x *Node) *Node {
	return m.Down.Forward(Mul(silu(m.Gate.Forward(x)), m.Up.Forward(x)))
}

// causalMask is the additive mask of the attention scores [rows, group·seq, seq] (query positions
// repeated for each query head of a KV group): 0 where key ≤ query, -1e9 elsewhere. Any value this
// negative makes the masked probabilities exactly 0 in float32, as transformers' float32 minimum
// does. It is a constant of the scores' full shape, so adding it needs no broadcast.
func causalMask(g *Graph, rows, group, seqLen int) *Node {
	block := seqLen * seqLen
	data := make([]float32, rows*group*block)
	for q := range seqLen {
		for k := q + 1; k < seqLen; k++ {
			data[q*seqLen+k] = -1e9
		}
	}
	for i := 1; i < rows*group; i++ {
		copy(data[i*block:(i+1)*block], data[:block])
	}
	return Reshape(Const(g, data), rows, group*seqLen, seqLen)
}

// rope holds the rotary tables for positions 0..seq-1, [seq, headDim] each, with sin's first half
// negated so that rotate_half(x)·sin = [x₂, x₁]·sin'.
type rope struct {
	cos, sin []float32
	seq, d   int
	tiled    map[string][2]*Node // the tables as constants of a query's or key's full shape
}

func newRope(cfg *model.Config, seqLen int) *rope {
	cos, sin := ropeTables(cfg, seqLen)
	d := cfg.HeadDim()
	for p := range seqLen {
		for i := range d / 2 {
			sin[p*d+i] = -sin[p*d+i]
		}
	}
	return &rope{cos: cos, sin: sin, seq: seqLen, d: d, tiled: map[string][2]*Node{}}
}

// apply rotates x [..., seq, headDim]: x·cos + rotate_half(x)·sin. The tables are constants of x's
// full shape (made once per shape and graph), so no broadcast is computed.
func (r *rope) apply(x *Node) *Node {
	key := x.Shape().String()
	t, ok := r.tiled[key]
	if !ok {
		tile := func(tab []float32) *Node {
			data := make([]float32, 0, x.Shape().Size())
			for len(data) < x.Shape().Size() {
				data = append(data, tab...)
			}
			return Reshape(Const(x.Graph(), data), x.Shape().Dimensions...)
		}
		t = [2]*Node{tile(r.cos), tile(r.sin)}
		r.tiled[key] = t
	}
	half := r.d / 2
	x1 := SliceAxis(x, -1, AxisRange(0, half))
	x2 := SliceAxis(x, -1, AxisRange(half, r.d))
	return Add(Mul(x, t[0]), Mul(Concatenate([]*Node{x2, x1}, -1), t[1]))
}

// ropeTables computes cos and sin [seq, headDim] the way transformers does, in float32: inverse
// frequencies base^(-2i/d) (with linear or llama3 scaling), angle = position · frequency, the
// halves repeated.
func ropeTables(cfg *model.Config, seqLen int) (cos, sin []float32) {
	d := cfg.HeadDim()
	inv := ropeInvFreq(cfg)
	cos = make([]float32, seqLen*d)
	sin = make([]float32, seqLen*d)
	for p := range seqLen {
		for i, f := range inv {
			angle := float64(float32(p) * f)
			c, s := float32(math.Cos(angle)), float32(math.Sin(angle))
			cos[p*d+i], cos[p*d+i+d/2] = c, c
			sin[p*d+i], sin[p*d+i+d/2] = s, s
		}
	}
	return cos, sin
}

func ropeInvFreq(cfg *model.Config) []float32 {
	d := cfg.HeadDim()
	inv := make([]float32, d/2)
	for i := range inv {
		exp := float32(2*i) / float32(d)
		inv[i] = 1 / float32(math.Pow(cfg.RopeTheta, float64(exp)))
	}
	rs := cfg.RopeScaling
	if rs == nil {
		return inv
	}
	switch rs.Kind() {
	case "linear":
		for i := range inv {
			inv[i] /= float32(rs.Factor)
		}
	case "llama3":
		oldCtx := float64(rs.OriginalMaxPositionEmbeddings)
		lowWavelen := oldCtx / rs.LowFreqFactor
		highWavelen := oldCtx / rs.HighFreqFactor
		for i, f := range inv {
			wavelen := 2 * math.Pi / float64(f)
			scaled := float64(f)
			if wavelen > lowWavelen {
				scaled /= rs.Factor
			}
			if wavelen >= highWavelen && wavelen <= lowWavelen {
				smooth := (oldCtx/wavelen - rs.LowFreqFactor) / (rs.HighFreqFactor - rs.LowFreqFactor)
				scaled = (1-smooth)*scaled/rs.Factor + smooth*scaled
			}
			inv[i] = float32(scaled)
		}
	}
	return inv
}

// tokenLoss returns, for logits [b, s, vocab] and labels [b, s] (int32, -100 = ignored), the sum of
// the next-token negative log-likelihoods over labelled positions and their count: position t
// predicts labels[t+1].
func tokenLoss(logits, labels *Node) (sum, count *Node) {
	s := logits.Shape().Dimensions[1]
	pred := Slice(logits, AxisRange(), AxisRange(0, s-1))
	target := Slice(labels, AxisRange(), AxisRange(1, s))
	valid := GreaterOrEqual(target, ScalarZero(labels.Graph(), labels.DType()))
	weights := ConvertDType(valid, logits.DType())
	nll := crossEntropy(pred, Where(valid, target, ZerosLike(target)))
	return ReduceAllSum(Mul(nll, weights)), ReduceAllSum(weights)
}
