package export

import (
	"math"

	"github.com/medassist/medassist/model"
)

// The contrib graph (Options.Contrib) computes the same model with ONNX Runtime's fused
// com.microsoft operators: RotaryEmbedding, GroupQueryAttention and SkipSimplifiedLayerNormalization.
// It keeps the decoder's inputs and outputs, but only ONNX Runtime runs it, and GroupQueryAttention adds
// limits: head_dim a multiple of 8, and with batch > 1 a call with a past must feed one token.
//
// The residual stream is carried by the Skip normalizations: each one adds a block's output to
// the stream and normalizes the sum for the next block.
//
//	h = norm(x)
//	for each layer: (h, x) = skipNorm(attention(h), x); (h, x) = skipNorm(mlp(h), x)
//	logits = head(h)     (the last skipNorm uses the final norm's weight)
func (d *decoder) forwardContrib(ids, mask, pos string) {
	cfg := d.cfg
	x := d.embed(ids)
	cos, sin := d.rotaryCaches()
	bias := d.attentionMask(ids, mask)
	lens := d.gqaLengths(ids, mask)
	// The first norm has no residual to add; in standard operators ONNX Runtime fuses it into
	// SimplifiedLayerNormalization itself, and the graph stays valid for the onnx checker (which
	// does not know SimplifiedLayerNormalization, registered by ONNX Runtime in the ONNX domain).
	h := d.rmsNorm(x, model.InputNorm(0), layerScope(0)+"/input_layernorm")
	for i := 0; i < cfg.NumHiddenLayers; i++ {
		pop := d.g.push(layerScope(i))
		a := d.fusedAttention(i, h, pos, cos, sin, bias, lens)
		h, x = d.skipNorm(a, x, model.PostAttentionNorm(i), "post_attention_layernorm")
		m := d.mlp(i, h)
		next, scope := model.FinalNorm, "norm"
		if i+1 < cfg.NumHiddenLayers {
			next, scope = model.InputNorm(i+1), "next_input_layernorm"
		}
		h, x = d.skipNorm(m, x, next, scope)
		pop()
	}
	d.head(h)
}

// skipNorm adds out to the residual stream x and normalizes the sum: (norm(x + out), x + out).
func (d *decoder) skipNorm(out, x, weight, scope string) (normed, sum string) {
	g := d.g
	defer g.push(scope)()
	outs := g.domainOpN(microsoftDomain, "SkipSimplifiedLayerNormalization", 4,
		[]string{out, x, d.w.tensor(weight)}, attrFloat("epsilon", float32(d.cfg.RMSNormEps)))
	return outs[0], outs[3]
}

// rotaryCaches are the cos/sin tables [max_position_embeddings, head_dim/2] that RotaryEmbedding
// indexes by position, computed like transformers: angle = float32(position · inv_freq).
func (d *decoder) rotaryCaches() (cos, sin string) {
	inv := d.cfg.RopeInvFreq()
	n := d.cfg.MaxPositionEmbeddings
	c := make([]float32, n*len(inv))
	s := make([]float32, n*len(inv))
	for p := 0; p < n; p++ {
		for j, f := range inv {
			a := float64(float32(p) * f)
			c[p*len(inv)+j], s[p*len(inv)+j] = float32(math.Cos(a)), float32(math.Sin(a))
		}
	}
	dims := []int64{int64(n), int64(len(inv))}
	dtype := d.act
	table := func(name string, v []float32) string {
		b := floatBytes(v, dtype)
		return d.g.addInit(&Initializer{Name: name, DType: dtype, Dims: dims, Data: func() ([]byte, error) { return b, nil }})
	}
	return table("/model/rotary_emb/cos_cache", c), table("/model/rotary_emb/sin_cache", s)
}

// gqaLengths are GroupQueryAttention's seqlens_k ([b] int32, total length - 1 per row) and
// total_sequence_length (int32 scalar). Every row is given the full length: the KV cache holds
// left padding as ordinary positions, and the attention bias masks it.
func (d *decoder) gqaLengths(ids, mask string) [2]string {
	g := d.g
	defer g.push("gqa_lengths")()
	batch := g.opA("Shape", []string{ids}, attrInt("start", 0), attrInt("end", 1))
	total := g.opA("Shape", []string{mask}, attrInt("start", 1), attrInt("end", 2))
	last := g.opA("Cast", []string{g.op("Sub", total, g.ints(1))}, attrInt("to", int64(Int32)))
	seqlens := g.op("Expand", last, batch)
	totalLen := g.opA("Cast", []string{g.op("Squeeze", total, g.ints(0))}, attrInt("to", int64(Int32)))
	return [2]string{seqlens, totalLen}
}

// fusedAttention is attention() with RotaryEmbedding on q and k (at position_ids) and
// GroupQueryAttention, which concatenates the cache and attends over all KV heads' groups.
func (d *decoder) fusedAttention(i int, x, pos, cos, sin, bias string, lens [2]string) string {
	g := d.g
	defer g.push("self_attn")()
	cfg := d.cfg
	rotate := func(v string, heads int, scope string) string {
		defer g.push(scope)()
		return g.domainOpN(microsoftDomain, "RotaryEmbedding", 1, []string{v, pos, cos, sin},
			attrInt("interleaved", 0), attrInt("num_heads", int64(heads)))[0]
	}
	proj := d.projections(x, i, "qkv_proj", model.QProj, model.KProj, model.VProj)
	q := rotate(proj(model.QProj), cfg.NumAttentionHeads, "q_rotary")
	k := rotate(proj(model.KProj), cfg.NumKeyValueHeads, "k_rotary")
	v := proj(model.VProj)
	out := g.node(microsoftDomain, "GroupQueryAttention",
		[]string{q, k, v, model.OnnxPastKey(i), model.OnnxPastValue(i), lens[0], lens[1], "", "", "", bias},
		[]string{"", model.OnnxPresentKey(i), model.OnnxPresentValue(i)},
		attrInt("num_heads", int64(cfg.NumAttentionHeads)), attrInt("kv_num_heads", int64(cfg.NumKeyValueHeads)),
		attrInt("do_rotary", 0))[0]
	return d.linear(out, i, model.OProj)
}
