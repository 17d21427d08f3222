package train

import (
	"math"

	"github.com/gomlx/compute/dtypes"
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
	h, _ := m.Hidden(ids, nil)
	return m.Logits(h)
}

// KVCache holds the keys and values of every layer of one sequence, Data [layers, 2, kvHeads,
// capacity, headDim] (2: keys, values), and Pos, the position (int32 scalar) of the first token
// the next forward pass adds. Positions ≥ Pos may hold stale values: they are overwritten before
// any query can see them.
type KVCache struct {
	Data, Pos *Node
}

// Hidden is the model's one forward pass: the final normalised hidden state [batch, seq, hidden]
// of ids [batch, seq]. Without a cache (training, perplexity) the tokens are positions 0..seq-1
// and attend causally to each other. With a cache (cached generation, batch 1) they are positions
// cache.Pos.. and also attend to the cached positions before them: a prompt is one call at Pos 0
// (prefill), each new token one call of seq 1 (decode). The returned cache has the new keys and
// values written at their positions (nil without a cache).
func (m *Llama) Hidden(ids *Node, cache *KVCache) (*Node, *KVCache) {
	dims := ids.Shape().Dimensions
	b, s := dims[0], dims[1]
	var at *attend
	switch {
	case cache == nil:
		at = &attend{rope: newRope(m.Config, s)}
	case b != 1:
		panic("Llama.Hidden: a KV cache holds one sequence; ids must be [1, seq]")
	default:
		at = newCachedAttend(m.Config, s, cache)
	}
	eps := m.Config.RMSNormEps
	x := Gather(m.EmbedTokens, InsertAxes(ids, -1))
	for i, layer := range m.Layers {
		x = layer.Forward(x, at.layer(i), eps)
	}
	h := rmsNorm(x, m.Norm, eps)
	if cache == nil {
		return h, nil
	}
	return h, &KVCache{Data: Stack(at.written, 0), Pos: AddScalar(cache.Pos, s)}
}

// Logits applies the head to hidden states.
func (m *Llama) Logits(h *Node) *Node { return dense(h, m.LMHead) }

// Forward runs one decoder block on x [batch, seq, hidden].
func (l *Layer) Forward(x *Node, at *layerAttend, eps float64) *Node {
	h := Add(x, l.SelfAttention.Forward(rmsNorm(x, l.AttentionNorm, eps), at))
	return Add(h, l.MLP.Forward(rmsNorm(h, l.MLPNorm, eps)))
}

// attend is what the attention of every layer shares in one forward pass: the rotary tables of the
// tokens' positions, the additive mask of the scores, and, with a cache, the cache and the layers'
// updated entries.
type attend struct {
	rope    *rope
	mask    *Node // with a cache: [kvHeads, group·seq, capacity]; without, chunkedCausal makes one per block
	cache   *KVCache
	written []*Node // each layer's [2, kvHeads, capacity, headDim] after the pass
}

// layerAttend is attend as seen by layer i.
type layerAttend struct {
	*attend
	i int
}

func (a *attend) layer(i int) *layerAttend { return &layerAttend{attend: a, i: i} }

// newCachedAttend places s new tokens at positions cache.Pos..: a query at position p sees the keys
// at positions ≤ p, cached or new.
func newCachedAttend(cfg *model.Config, s int, cache *KVCache) *attend {
	capacity := cache.Data.Shape().Dimensions[3]
	kv := cfg.NumKeyValueHeads
	group := cfg.NumAttentionHeads / kv
	return &attend{
		rope:    newRope(cfg, capacity).at(cache.Pos, s),
		mask:    causalMask(cache.Pos, kv, group, s, capacity),
		cache:   cache,
		written: make([]*Node, cfg.NumHiddenLayers),
	}
}

// keysValues returns the keys and values the queries attend to, [rows, keys, d] with rows =
// batch·kvHeads, given the new ones k, v [b, kv, s, d]. With a cache, the new ones are written
// into the layer's cache entry, which is then attended to whole (the mask hides what is not yet
// written).
func (a *layerAttend) keysValues(k, v *Node) (keys, vals *Node) {
	dims := k.Shape().Dimensions
	b, kv, s, d := dims[0], dims[1], dims[2], dims[3]
	if a.cache == nil {
		return Reshape(k, b*kv, s, d), Reshape(v, b*kv, s, d)
	}
	c := Squeeze(SliceAxis(a.cache.Data, 0, AxisElem(a.i)), 0) // [2, kv, capacity, d]
	keys = place(Squeeze(SliceAxis(c, 0, AxisElem(0)), 0), Reshape(k, kv, s, d), a.cache.Pos)
	vals = place(Squeeze(SliceAxis(c, 0, AxisElem(1)), 0), Reshape(v, kv, s, d), a.cache.Pos)
	a.written[a.i] = Stack([]*Node{keys, vals}, 0)
	return keys, vals
}

// place returns c [kv, capacity, d] with positions pos..pos+s-1 replaced by x [kv, s, d].
func place(c, x, pos *Node) *Node {
	g := x.Graph()
	dims := c.Shape().Dimensions
	kv, capacity, d := dims[0], dims[1], dims[2]
	s := x.Shape().Dimensions[1]
	from := Sub(Iota(g, shapes.Make(pos.DType(), capacity), 0), pos) // index into x of each position
	inside := LogicalAnd(GreaterOrEqual(from, ScalarZero(g, pos.DType())), LessThan(from, Scalar(g, pos.DType(), s)))
	from = Where(inside, from, ZerosLike(from))
	rows := Gather(TransposeAllAxes(x, 1, 0, 2), Reshape(from, capacity, 1)) // [capacity, kv, d]
	inside = BroadcastToDims(Reshape(inside, 1, capacity, 1), kv, capacity, d)
	return Where(inside, TransposeAllAxes(rows, 1, 0, 2), c)
}

// Forward is causal grouped-query attention on x [batch, seq, hidden]. Heads are laid out as
// [batch·kvHeads, group·seq, headDim] so that each KV head serves its group of query heads in one
// batched matrix product, without copying keys or values.
func (sa *SelfAttention) Forward(x *Node, at *layerAttend) *Node {
	dims := x.Shape().Dimensions
	b, s := dims[0], dims[1]
	kv, d := sa.NumKVHeads, sa.HeadDim
	g := sa.NumHeads / kv
	q := TransposeAllAxes(Reshape(sa.Query.Forward(x), b, s, kv, g, d), 0, 2, 3, 1, 4) // [b, kv, g, s, d]
	k := TransposeAllAxes(Reshape(sa.Key.Forward(x), b, s, kv, d), 0, 2, 1, 3)         // [b, kv, s, d]
	v := TransposeAllAxes(Reshape(sa.Value.Forward(x), b, s, kv, d), 0, 2, 1, 3)
	q, k = at.rope.apply(q), at.rope.apply(k)
	keys, vals := at.keysValues(k, v)

	// The 1/√d scale is applied to q (g·s·d values) rather than to the scores (g·s·keys).
	qf := MulScalar(Reshape(q, b*kv, g*s, d), 1/math.Sqrt(float64(d)))
	var out *Node // [b·kv, g·s, d]
	if at.cache == nil {
		out = chunkedCausal(qf, keys, vals, g)
	} else {
		out = attention(qf, keys, vals, at.mask)
	}
	out = TransposeAllAxes(Reshape(out, b, kv, g, s, d), 0, 3, 1, 2, 4) // [b, s, kv, g, d]
	return sa.Output.Forward(Reshape(out, b, s, sa.NumHeads*d))
}

// Forward is down(silu(gate(x)) · up(x)).
func (m *MLP) Forward(x *Node) *Node {
	return m.Down.Forward(Mul(silu(m.Gate.Forward(x)), m.Up.Forward(x)))
}

// attnChunk is the query block of chunkedCausal.
var attnChunk = 128 // a variable so that tests can compare against one block

// chunkedCausal is causal attention without a cache, computed in blocks of attnChunk query positions:
// the block of queries lo..hi-1 scores only keys 0..hi-1, so the part of the score matrix the causal
// mask would zero is mostly never computed (62.5% of the products and softmax work at 4 blocks). The
// result is the full computation's: masked scores contribute exactly 0 there too.
// q [rows, group·s, d] (scaled), keys and vals [rows, s, d] → [rows, group·s, d].
func chunkedCausal(q, keys, vals *Node, group int) *Node {
	g := q.Graph()
	dims := q.Shape().Dimensions
	rows, d := dims[0], dims[2]
	s := dims[1] / group
	q4 := Reshape(q, rows, group, s, d)
	var outs []*Node
	for lo := 0; lo < s; lo += attnChunk {
		hi := min(lo+attnChunk, s)
		n := hi - lo
		qc, kc, vc := q, keys, vals // a single block is the whole sequence
		if n < s {
			qc = Reshape(Slice(q4, AxisRange(), AxisRange(), AxisRange(lo, hi)), rows, group*n, d)
			kc = Slice(keys, AxisRange(), AxisRange(0, hi))
			vc = Slice(vals, AxisRange(), AxisRange(0, hi))
		}
		out := attention(qc, kc, vc, causalMask(Const(g, int32(lo)), rows, group, n, hi))
		outs = append(outs, Reshape(out, rows, group, n, d))
	}
	return Reshape(Concatenate(outs, 2), rows, group*s, d)
}

// attention is softmax(q·keysᵀ + mask)·vals: q [rows, m, d], keys and vals [rows, keys, d], mask
// [rows, m, keys] → [rows, m, d].
func attention(q, keys, vals, mask *Node) *Node {
	return batchedMatMul(softmax(Add(batchedMatMulT(q, keys), mask)), vals)
}

// causalMask is the additive mask of the attention scores [rows, group·n, keys] of n query positions
// from first (an int32 scalar) on, repeated for each query head of a KV group: 0 where key ≤ query,
// -1e9 elsewhere. Any value this negative makes the masked probabilities exactly 0 in float32, as
// transformers' float32 minimum does. It is computed in the graph (iotas), which the compiler fuses
// into the addition to the scores.
func causalMask(first *Node, rows, group, n, keys int) *Node {
	g := first.Graph()
	shape := shapes.Make(first.DType(), group, n, keys)
	visible := LessOrEqual(Iota(g, shape, 2), Add(Iota(g, shape, 1), first))
	mask := Where(visible, ScalarZero(g, dtypes.Float32), Scalar(g, dtypes.Float32, -1e9))
	return BroadcastToDims(Reshape(mask, 1, group*n, keys), rows, group*n, keys)
}

// rope holds the rotary tables for positions 0..seq-1, [seq, headDim] each, with sin's first half
// negated so that rotate_half(x)·sin = [x₂, x₁]·sin'.
type rope struct {
	cos, sin []float32
	seq, d   int
	tiled    map[string][2]*Node // the tables as constants of a query's or key's full shape
	rows     [2]*Node            // set by at: cos and sin of positions pos..pos+s-1, [s, headDim]
}

// at returns the rotation of the s positions from pos (int32 scalar) on, the tables' rows
// gathered in the graph.
func (r *rope) at(pos *Node, s int) *rope {
	g := pos.Graph()
	idx := Reshape(Add(Iota(g, shapes.Make(pos.DType(), s), 0), pos), s, 1)
	rows := func(tab []float32) *Node { return Gather(Reshape(Const(g, tab), r.seq, r.d), idx) }
	return &rope{seq: s, d: r.d, rows: [2]*Node{rows(r.cos), rows(r.sin)}}
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
// full shape (made once per shape and graph), so no broadcast is computed; rows from at are
// broadcast.
func (r *rope) apply(x *Node) *Node {
	t := r.tables(x)
	half := r.d / 2
	x1 := SliceAxis(x, -1, AxisRange(0, half))
	x2 := SliceAxis(x, -1, AxisRange(half, r.d))
	return Add(Mul(x, t[0]), Mul(Concatenate([]*Node{x2, x1}, -1), t[1]))
}

// tables returns cos and sin of x's full shape.
func (r *rope) tables(x *Node) [2]*Node {
	dims := x.Shape().Dimensions
	if r.rows[0] != nil {
		wide := func(n *Node) *Node { return BroadcastToDims(ExpandLeftToRank(n, x.Rank()), dims...) }
		return [2]*Node{wide(r.rows[0]), wide(r.rows[1])}
	}
	key := x.Shape().String()
	if t, ok := r.tiled[key]; ok {
		return t
	}
	tile := func(tab []float32) *Node {
		data := make([]float32, 0, x.Shape().Size())
		for len(data) < x.Shape().Size() {
			data = append(data, tab...)
		}
		return Reshape(Const(x.Graph(), data), dims...)
	}
	t := [2]*Node{tile(r.cos), tile(r.sin)}
	r.tiled[key] = t
	return t
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
