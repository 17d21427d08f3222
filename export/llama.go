package export

import (
	"math"
	"slices"
	"strconv"

	"github.com/medassist/medassist/model"
)

// Dynamic axis names of the decoder's inputs and outputs (the Optimum / transformers.js names).
const (
	AxisBatch    = "batch_size"
	AxisSequence = "sequence_length"
	AxisPast     = "past_sequence_length"
	AxisTotal    = "total_sequence_length"
)

// decoder builds the ONNX graph of a Llama decoder with a KV cache. Each method is one block of
// the model, in the order of Hugging Face's LlamaForCausalLM:
//
//	x = embed(input_ids)
//	for each layer: x = x + attention(rmsNorm(x)); x = x + mlp(rmsNorm(x))
//	logits = head(rmsNorm(x))
//
// Weights are described by the weights type, which decides their storage (float32, float16, or
// quantized for MatMulNBits); the graph only asks it for a linear layer or a tensor.
type decoder struct {
	cfg *model.Config
	g   *graph
	w   *weights
	opt Options

	act DType // activation and KV-cache element type (float32 or float16)
}

// rope holds the rotary cos/sin tables for the current positions, [batch, 1, seq, head_dim].
type rope struct{ cos, sin string }

// buildDecoder returns the whole decoder graph; its initializers read from src when written.
func buildDecoder(cfg *model.Config, src *model.Weights, opt Options) *graph {
	g := newGraph("medassist-llama", opt.Opset)
	d := &decoder{cfg: cfg, g: g, w: newWeights(g, src, opt), opt: opt, act: opt.activationType()}
	d.forward()
	return g
}

// forward declares the graph's inputs and outputs (DESIGN.md's decoder layout) and builds the
// model between them.
func (d *decoder) forward() {
	cfg, g := d.cfg, d.g
	kv, hd := fixed(cfg.NumKeyValueHeads), fixed(cfg.HeadDim())
	ids := g.input(model.OnnxInputIDs, Int64, dynamic(AxisBatch), dynamic(AxisSequence))
	mask := g.input(model.OnnxAttentionMask, Int64, dynamic(AxisBatch), dynamic(AxisTotal))
	pos := g.input(model.OnnxPositionIDs, Int64, dynamic(AxisBatch), dynamic(AxisSequence))
	for i := 0; i < cfg.NumHiddenLayers; i++ {
		g.input(model.OnnxPastKey(i), d.act, dynamic(AxisBatch), kv, dynamic(AxisPast), hd)
		g.input(model.OnnxPastValue(i), d.act, dynamic(AxisBatch), kv, dynamic(AxisPast), hd)
	}

	pop := g.push("model")
	if d.opt.Contrib {
		d.forwardContrib(ids, mask, pos)
	} else {
		x := d.embed(ids)
		r := d.rotary(pos)
		bias := d.attentionMask(ids, mask)
		for i := 0; i < cfg.NumHiddenLayers; i++ {
			x = d.layer(i, x, r, bias)
		}
		x = d.rmsNorm(x, model.FinalNorm, "norm")
		d.head(x)
	}
	pop()

	g.output(model.OnnxLogits, Float32, dynamic(AxisBatch), dynamic(AxisSequence), fixed(cfg.VocabSize))
	for i := 0; i < cfg.NumHiddenLayers; i++ {
		g.output(model.OnnxPresentKey(i), d.act, dynamic(AxisBatch), kv, dynamic(AxisTotal), hd)
		g.output(model.OnnxPresentValue(i), d.act, dynamic(AxisBatch), kv, dynamic(AxisTotal), hd)
	}
}

// embed looks up the token embeddings: [b, s] ids → [b, s, hidden].
func (d *decoder) embed(ids string) string {
	defer d.g.push("embed_tokens")()
	return d.g.opA("Gather", []string{d.w.tensor(model.EmbedTokens), ids}, attrInt("axis", 0))
}

// layer is one decoder block with pre-norm residual connections.
func (d *decoder) layer(i int, x string, r rope, bias string) string {
	g := d.g
	defer g.push(layerScope(i))()
	h := d.rmsNorm(x, model.InputNorm(i), "input_layernorm")
	x = g.op("Add", x, d.attention(i, h, r, bias))
	h = d.rmsNorm(x, model.PostAttentionNorm(i), "post_attention_layernorm")
	return g.op("Add", x, d.mlp(i, h))
}

func layerScope(i int) string { return "layers." + strconv.Itoa(i) }

// rmsNorm is x / sqrt(mean(x²) + eps) · weight, computed in float32 (as transformers does for
// half-precision models). The Pow/ReduceMean/Add/Sqrt/Div/Mul form is the one ONNX Runtime fuses
// into its SimplifiedLayerNormalization kernel.
func (d *decoder) rmsNorm(x, weight, scope string) string {
	g := d.g
	defer g.push(scope)()
	if d.act != Float32 {
		x = g.opA("Cast", []string{x}, attrInt("to", int64(Float32)))
	}
	sq := g.op("Pow", x, g.scalarFloat(Float32, 2))
	var mean string
	if d.opt.Opset >= 18 { // axes became an input in opset 18
		mean = g.opA("ReduceMean", []string{sq, g.ints(-1)}, attrInt("keepdims", 1))
	} else {
		mean = g.opA("ReduceMean", []string{sq}, attrInts("axes", -1), attrInt("keepdims", 1))
	}
	std := g.op("Sqrt", g.op("Add", mean, g.scalarFloat(Float32, float32(d.cfg.RMSNormEps))))
	y := g.op("Div", x, std)
	if d.act != Float32 {
		y = g.opA("Cast", []string{y}, attrInt("to", int64(d.act)))
	}
	return g.op("Mul", y, d.w.tensor(weight))
}

// rotary computes the cos/sin tables of rotary position embeddings from position_ids:
// angle[b, s, j] = position[b, s] · inv_freq[j mod head_dim/2].
func (d *decoder) rotary(pos string) rope {
	g := d.g
	defer g.push("rotary_emb")()
	invFreq := g.floats("inv_freq", d.cfg.RopeInvFreq())
	p := g.opA("Cast", []string{pos}, attrInt("to", int64(Float32)))
	p = g.op("Unsqueeze", p, g.ints(2))
	freqs := g.op("Mul", p, invFreq)
	emb := g.opA("Concat", []string{freqs, freqs}, attrInt("axis", -1))
	cos := g.op("Unsqueeze", g.op("Cos", emb), g.ints(1))
	sin := g.op("Unsqueeze", g.op("Sin", emb), g.ints(1))
	if d.act != Float32 {
		cos = g.opA("Cast", []string{cos}, attrInt("to", int64(d.act)))
		sin = g.opA("Cast", []string{sin}, attrInt("to", int64(d.act)))
	}
	return rope{cos: cos, sin: sin}
}

// applyRotary rotates x [b, heads, s, head_dim]: x·cos + rotate_half(x)·sin, where
// rotate_half([x1, x2]) = [-x2, x1].
func (d *decoder) applyRotary(x string, r rope, scope string) string {
	g := d.g
	defer g.push(scope)()
	half := int64(d.cfg.HeadDim() / 2)
	parts := g.opN("Split", 2, []string{x, g.ints(half, half)}, attrInt("axis", -1))
	rot := g.opA("Concat", []string{g.op("Neg", parts[1]), parts[0]}, attrInt("axis", -1))
	return g.op("Add", g.op("Mul", x, r.cos), g.op("Mul", rot, r.sin))
}

// attentionMask builds the additive attention bias [b, 1, s, total], computed once for all layers:
// 0 where a query may attend to a key, maskedScore elsewhere. A key is visible when it is causal
// (key position ≤ query position, the queries being the last s of the total positions) and not
// padding (attention_mask == 1). With grouped-query attention the query rows of the heads sharing
// one KV head are stacked, so the mask is tiled to [b, 1, group·s, total] (not for the contrib
// graph, whose GroupQueryAttention takes it as it is).
func (d *decoder) attentionMask(ids, mask string) string {
	g := d.g
	defer g.push("attn_mask")()
	seq := g.opA("Shape", []string{ids}, attrInt("start", 1), attrInt("end", 2))
	total := g.opA("Shape", []string{mask}, attrInt("start", 1), attrInt("end", 2))
	totalScalar := g.op("Squeeze", total, g.ints(0))
	past := g.op("Squeeze", g.op("Sub", total, seq), g.ints(0))
	keyPos := g.op("Range", g.scalarInt(0), totalScalar, g.scalarInt(1))
	queryPos := g.op("Range", past, totalScalar, g.scalarInt(1))
	causal := g.op("LessOrEqual", g.op("Unsqueeze", keyPos, g.ints(0)), g.op("Unsqueeze", queryPos, g.ints(1)))
	if rep := d.groupSize(); rep > 1 && !d.opt.Contrib {
		causal = g.op("Tile", causal, g.ints(int64(rep), 1))
	}
	notPad := g.opA("Cast", []string{mask}, attrInt("to", int64(Bool)))
	notPad = g.op("Unsqueeze", notPad, g.ints(1, 2))
	allowed := g.op("And", causal, notPad)
	return g.op("Where", allowed, g.scalarFloat(d.act, 0), g.scalarFloat(d.act, maskedScore(d.act)))
}

// groupSize is the number of query heads sharing one KV head.
func (d *decoder) groupSize() int { return d.cfg.NumAttentionHeads / d.cfg.NumKeyValueHeads }

// attention is causal self-attention with rotary embeddings, grouped-query KV heads and the KV
// cache: the layer's past keys/values are concatenated with the new ones and returned as present.
func (d *decoder) attention(i int, x string, r rope, bias string) string {
	g := d.g
	defer g.push("self_attn")()
	cfg := d.cfg
	heads, kvHeads, hd := int64(cfg.NumAttentionHeads), int64(cfg.NumKeyValueHeads), int64(cfg.HeadDim())

	proj := d.projections(x, i, "qkv_proj", model.QProj, model.KProj, model.VProj)
	q := d.splitHeads(proj(model.QProj), heads)   // [b, heads, s, hd]
	k := d.splitHeads(proj(model.KProj), kvHeads) // [b, kv, s, hd]
	v := d.splitHeads(proj(model.VProj), kvHeads)
	q = d.applyRotary(q, r, "q_rotary")
	k = d.applyRotary(k, r, "k_rotary")
	k = g.node(onnxDomain, "Concat", []string{model.OnnxPastKey(i), k}, []string{model.OnnxPresentKey(i)}, attrInt("axis", 2))[0]
	v = g.node(onnxDomain, "Concat", []string{model.OnnxPastValue(i), v}, []string{model.OnnxPresentValue(i)}, attrInt("axis", 2))[0]

	// Grouped-query attention without copying K/V: the query heads sharing a KV head are stacked
	// along the sequence axis, [b, heads, s, hd] → [b, kv, group·s, hd].
	q = g.op("Mul", q, g.scalarFloat(d.act, float32(1/math.Sqrt(float64(hd)))))
	if kvHeads != heads {
		q = g.op("Reshape", q, g.ints(0, kvHeads, -1, hd))
	}
	scores := g.op("MatMul", q, g.opA("Transpose", []string{k}, attrInts("perm", 0, 1, 3, 2)))
	scores = g.op("Add", scores, bias)
	probs := g.opA("Softmax", []string{scores}, attrInt("axis", -1))
	ctx := g.op("MatMul", probs, v) // [b, kv, group·s, hd]
	if kvHeads != heads {
		ctx = g.op("Reshape", ctx, g.ints(0, heads, -1, hd))
	}
	ctx = g.opA("Transpose", []string{ctx}, attrInts("perm", 0, 2, 1, 3))
	ctx = g.op("Reshape", ctx, g.ints(0, 0, heads*hd))
	return d.linear(ctx, i, model.OProj)
}

// splitHeads reshapes [b, s, heads·hd] to [b, heads, s, hd].
func (d *decoder) splitHeads(x string, heads int64) string {
	g := d.g
	x = g.op("Reshape", x, g.ints(0, 0, heads, int64(d.cfg.HeadDim())))
	return g.opA("Transpose", []string{x}, attrInts("perm", 0, 2, 1, 3))
}

// mlp is the SwiGLU feed-forward block: down(silu(gate(x)) · up(x)).
func (d *decoder) mlp(i int, x string) string {
	g := d.g
	defer g.push("mlp")()
	proj := d.projections(x, i, "gate_up_proj", model.GateProj, model.UpProj)
	gate, up := proj(model.GateProj), proj(model.UpProj)
	act := g.op("Mul", gate, g.op("Sigmoid", gate))
	return d.linear(g.op("Mul", act, up), i, model.DownProj)
}

// linear applies a projection of layer i (y = x·Wᵀ).
func (d *decoder) linear(x string, i int, p model.Projection) string {
	defer d.g.push(string(p))()
	out, in := d.cfg.ProjShape(p)
	return d.w.linear(x, model.ProjWeight(i, p), out, in)
}

// projections applies projections ps of layer i, which read the same input x, and returns each
// one's output by projection: separate nodes, built when asked for (so the graph keeps its order),
// or with Options.FuseProjections one node named name over their stacked weights whose output is
// split (fewer, larger kernels, and MatMulNBits quantizes x once instead of once per projection).
func (d *decoder) projections(x string, i int, name string, ps ...model.Projection) func(model.Projection) string {
	if !d.opt.FuseProjections {
		return func(p model.Projection) string { return d.linear(x, i, p) }
	}
	g := d.g
	s := stack{name: model.LayerPrefix(i) + "." + ps[0].Module() + "." + name + ".weight"}
	sizes := make([]int64, len(ps))
	var in int
	for j, p := range ps {
		var out int
		out, in = d.cfg.ProjShape(p)
		s.parts = append(s.parts, model.ProjWeight(i, p))
		s.rows += out
		sizes[j] = int64(out)
	}
	pop := g.push(name)
	parts := g.opN("Split", len(ps), []string{d.w.stacked(x, s, in), g.ints(sizes...)}, attrInt("axis", -1))
	pop()
	return func(p model.Projection) string { return parts[slices.Index(ps, p)] }
}

// head projects the final hidden states to vocabulary logits (float32 whatever the dtype).
func (d *decoder) head(x string) {
	g := d.g
	defer g.push("lm_head")()
	src := model.LMHead
	if d.cfg.TieWordEmbeddings {
		src = model.EmbedTokens
	}
	logits := d.w.linear(x, src, d.cfg.VocabSize, d.cfg.HiddenSize)
	if d.act != Float32 {
		logits = g.opA("Cast", []string{logits}, attrInt("to", int64(Float32)))
	}
	g.rename(logits, model.OnnxLogits)
}

// maskedScore is added to the attention scores of masked keys: low enough that exp() of it is 0
// next to any real score, yet finite, so that a fully masked padding row stays a number, and far
// enough from the type's limit that adding a score cannot overflow to -inf.
func maskedScore(t DType) float32 {
	if t == Float16 {
		return -1e4
	}
	return -1e9
}
