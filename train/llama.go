package train

import (
	"math"

	"github.com/gomlx/compute/shapes"
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
	out, _, _ := sa.forwardKV(x, rope, mask)
	return out
}

// forwardKV is Forward that also returns the rotated keys and the values, [batch, kvHeads, seq, d].
func (sa *SelfAttention) forwardKV(x *Node, rope *rope, mask *Node) (out, k, v *Node) {
	dims := x.Shape().Dimensions
	b, s := dims[0], dims[1]
	kv, d := sa.NumKVHeads, sa.HeadDim
	g := sa.NumHeads / kv
	q := TransposeAllAxes(Reshape(sa.Query.Forward(x), b, s, kv, g, d), 0, 2, 3, 1, 4) // [b, kv, g, s, d]
	k = TransposeAllAxes(Reshape(sa.Key.Forward(x), b, s, kv, d), 0, 2, 1, 3)          // [b, kv, s, d]
	v = TransposeAllAxes(Reshape(sa.Value.Forward(x), b, s, kv, d), 0, 2, 1, 3)
	q, k = rope.apply(q), rope.apply(k)

	// The 1/√d scale is applied to q (g·s·d values) rather than to the scores (g·s·s).
	qf := MulScalar(Reshape(q, b*kv, g*s, d), 1/math.Sqrt(float64(d)))
	kf, vf := Reshape(k, b*kv, s, d), Reshape(v, b*kv, s, d)
	scores := Add(batchedMatMulT(qf, kf), mask)                         // [b·kv, g·s, s]
	out = batchedMatMul(softmax(scores), vf)                            // [b·kv, g·s, d]
	out = TransposeAllAxes(Reshape(out, b, kv, g, s, d), 0, 3, 1, 2, 4) // [b, s, kv, g, d]
	return sa.Output.Forward(Reshape(out, b, s, sa.NumHeads*d)), k, v
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

// Cached decoding (one sequence): the keys and values of every layer live in a cache tensor
// [layers, 2, kvHeads, capacity, headDim] (2: keys, values); Prefill fills it for the prompt and
// Decode adds one token at a time, attending to the cached positions ≤ its own.

// Prefill runs ids [1, n] (right-padded; the real tokens end at position last) and returns the
// final hidden state at last [1, hidden] and the cache of capacity cache.Shape()[3] with positions
// < n filled (positions after last hold padding, masked out by Decode until overwritten).
func (m *Llama) Prefill(ids, last, cache *Node) (hidden, newCache *Node) {
	g := ids.Graph()
	n := ids.Shape().Dimensions[1]
	capacity := cache.Shape().Dimensions[3]
	rope := newRope(m.Config, n)
	kv := m.Config.NumKeyValueHeads
	mask := causalMask(g, kv, m.Config.NumAttentionHeads/kv, n)
	eps := m.Config.RMSNormEps
	x := Gather(m.EmbedTokens, InsertAxes(ids, -1))
	layers := make([]*Node, len(m.Layers))
	for i, l := range m.Layers {
		att, k, v := l.SelfAttention.forwardKV(rmsNorm(x, l.AttentionNorm, eps), rope, mask)
		h := Add(x, att)
		x = Add(h, l.MLP.Forward(rmsNorm(h, l.MLPNorm, eps)))
		kvs := Stack([]*Node{Squeeze(k, 0), Squeeze(v, 0)}, 0) // [2, kv, n, d]
		if capacity > n {
			rest := SliceAxis(cache, 0, AxisElem(i))
			rest = Slice(Squeeze(rest, 0), AxisRange(), AxisRange(), AxisRange(n, capacity))
			kvs = Concatenate([]*Node{kvs, rest}, 2)
		}
		layers[i] = kvs
	}
	h := rmsNorm(x, m.Norm, eps) // [1, n, hidden]
	hidden = Gather(Reshape(h, n, h.Shape().Dimensions[2]), Reshape(last, 1, 1))
	return hidden, Stack(layers, 0)
}

// Decode runs token id [1, 1] at position pos (int32 scalar) against the cache and returns the
// final hidden state [1, hidden] and the cache with the token's keys and values at pos.
func (m *Llama) Decode(id, pos, cache *Node) (hidden, newCache *Node) {
	g := id.Graph()
	capacity := cache.Shape().Dimensions[3]
	cos, sin := newRope(m.Config, capacity).row(g, pos)
	// Positions: the one written now, and those attended to (≤ pos).
	iota := Iota(g, shapes.Make(pos.DType(), capacity), 0)
	here := Equal(iota, pos)
	visible := LessOrEqual(iota, pos)
	eps := m.Config.RMSNormEps
	x := Gather(m.EmbedTokens, Reshape(id, 1, 1, 1)) // [1, 1, hidden]
	layers := make([]*Node, len(m.Layers))
	for i, l := range m.Layers {
		c := Squeeze(SliceAxis(cache, 0, AxisElem(i)), 0) // [2, kv, capacity, d]
		att, kvs := l.SelfAttention.step(rmsNorm(x, l.AttentionNorm, eps), cos, sin, here, visible, c)
		h := Add(x, att)
		x = Add(h, l.MLP.Forward(rmsNorm(h, l.MLPNorm, eps)))
		layers[i] = kvs
	}
	return Reshape(rmsNorm(x, m.Norm, eps), 1, -1), Stack(layers, 0)
}

// step is attention for one new token x [1, 1, hidden] against the cached keys and values
// c [2, kv, capacity, d]; it returns the attention output and the updated cache.
func (sa *SelfAttention) step(x, cos, sin, here, visible, c *Node) (*Node, *Node) {
	kv, d := sa.NumKVHeads, sa.HeadDim
	g := sa.NumHeads / kv
	capacity := c.Shape().Dimensions[2]
	q := ropeRow(Reshape(sa.Query.Forward(x), kv, g, d), cos, sin) // [kv, g, d]
	k := ropeRow(Reshape(sa.Key.Forward(x), kv, 1, d), cos, sin)   // [kv, 1, d]
	v := Reshape(sa.Value.Forward(x), kv, 1, d)
	at := BroadcastToDims(Reshape(here, 1, capacity, 1), kv, capacity, d)
	keys := Where(at, BroadcastToDims(k, kv, capacity, d), Squeeze(SliceAxis(c, 0, AxisElem(0)), 0))
	vals := Where(at, BroadcastToDims(v, kv, capacity, d), Squeeze(SliceAxis(c, 0, AxisElem(1)), 0))
	scores := DotGeneral(MulScalar(q, 1/math.Sqrt(float64(d))), []int{2}, []int{0}, keys, []int{2}, []int{0}) // [kv, g, capacity]
	bias := Where(visible, ScalarZero(x.Graph(), x.DType()), Scalar(x.Graph(), x.DType(), -1e9))
	scores = Add(scores, BroadcastToDims(Reshape(bias, 1, 1, capacity), kv, g, capacity))
	out := DotGeneral(softmax(scores), []int{2}, []int{0}, vals, []int{1}, []int{0}) // [kv, g, d]
	return sa.Output.Forward(Reshape(out, 1, 1, sa.NumHeads*d)), Stack([]*Node{keys, vals}, 0)
}

// row returns the rotary tables at position pos, [1, 1, d] each (sin with its first half negated).
func (r *rope) row(g *Graph, pos *Node) (cos, sin *Node) {
	idx := Reshape(pos, 1, 1)
	cos = Gather(Reshape(Const(g, r.cos), r.seq, r.d), idx)
	sin = Gather(Reshape(Const(g, r.sin), r.seq, r.d), idx)
	return Reshape(cos, 1, 1, r.d), Reshape(sin, 1, 1, r.d)
}

// ropeRow rotates x [heads, n, d] with one position's tables [1, 1, d].
func ropeRow(x, cos, sin *Node) *Node {
	half := x.Shape().Dimensions[2] / 2
	dims := x.Shape().Dimensions
	x1 := SliceAxis(x, -1, AxisRange(0, half))
	x2 := SliceAxis(x, -1, AxisRange(half, 2*half))
	return Add(Mul(x, BroadcastToDims(cos, dims...)), Mul(Concatenate([]*Node{x2, x1}, -1), BroadcastToDims(sin, dims...)))
}

// ropeTables computes cos and sin [seq, headDim] the way transformers does, in float32: angle =
// position · inverse frequency (model.Config.RopeInvFreq), the halves repeated.
func ropeTables(cfg *model.Config, seqLen int) (cos, sin []float32) {
	d := cfg.HeadDim()
	inv := cfg.RopeInvFreq()
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
