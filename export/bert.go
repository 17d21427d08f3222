package export

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"strconv"

	"google.golang.org/protobuf/proto"

	"github.com/medassist/medassist/export/onnxpb"
	"github.com/medassist/medassist/model"
)

// bertEncoder builds the ONNX graph of a BERT encoder (Hugging Face BertModel, without the
// pooler) and, for a sentence-transformers dir, its pooling and normalisation:
//
//	x = LayerNorm(word[input_ids] + token_type[token_type_ids] + position[0..s))
//	for each layer: x = LayerNorm(x + attention(x)); x = LayerNorm(x + dense(gelu(dense(x))))
//	last_hidden_state = x
//	sentence_embedding = normalize(pool(x, attention_mask))      (sentence-transformers only)
//
// Between the embeddings and the last layer the tokens are rows of one [b·s, hidden] matrix, so
// that every dense layer is one Gemm with its bias and the Hugging Face [out, in] weight as it
// is stored (transB), neither transposed at export nor added in a separate pass.
//
// Inputs and outputs follow Optimum's feature-extraction layout (input_ids, attention_mask,
// token_type_ids → last_hidden_state), plus sentence_embedding as sentence-transformers' own
// ONNX export names it.
type bertEncoder struct {
	cfg *model.BertConfig
	st  *model.SentenceConfig // nil: no pooled output
	g   *graph
	w   *weights

	batchSeq string // [b, s] of input_ids, for reshaping token rows back to sequences
}

// buildBert returns the encoder graph; its initializers read from src when written.
func buildBert(cfg *model.BertConfig, st *model.SentenceConfig, src *model.Weights, opt Options) *graph {
	g := newGraph("medassist-bert", opt.Opset)
	e := &bertEncoder{cfg: cfg, st: st, g: g, w: newWeights(g, src, opt)}
	e.forward()
	return g
}

// checkBertOptions rejects the options the encoder graph does not implement.
func checkBertOptions(opt Options) error {
	if opt.DType != "float32" {
		return fmt.Errorf("export: a BERT encoder is exported in float32 only (got --dtype %s)", opt.DType)
	}
	if opt.Contrib || opt.Quantize != QuantNone {
		return fmt.Errorf("export: --contrib and --quantize apply to Llama decoders; a BERT encoder is exported with standard operators and float32 weights")
	}
	return nil
}

func (e *bertEncoder) forward() {
	g, cfg := e.g, e.cfg
	batch, seq := dynamic(AxisBatch), dynamic(AxisSequence)
	ids := g.input(model.OnnxInputIDs, Int64, batch, seq)
	mask := g.input(model.OnnxAttentionMask, Int64, batch, seq)
	types := g.input(model.OnnxTokenTypeIDs, Int64, batch, seq)

	e.batchSeq = g.op("Shape", ids)
	x := g.op("Reshape", e.embeddings(ids, types), g.ints(-1, int64(cfg.HiddenSize))) // [b·s, h]
	bias := e.attentionBias(mask)
	pop := g.push("encoder")
	for i := 0; i < cfg.NumHiddenLayers; i++ {
		x = e.layer(i, x, bias)
	}
	pop()
	x = g.rename(e.sequences(x, int64(cfg.HiddenSize)), model.OnnxLastHiddenState)
	g.output(model.OnnxLastHiddenState, Float32, batch, seq, fixed(cfg.HiddenSize))
	if e.st != nil {
		g.rename(e.pool(x, mask), model.OnnxSentenceEmbedding)
		g.output(model.OnnxSentenceEmbedding, Float32, batch, fixed(cfg.HiddenSize))
	}
}

// embeddings sums the word, token-type and absolute position embeddings and normalises them.
func (e *bertEncoder) embeddings(ids, types string) string {
	g := e.g
	defer g.push("embeddings")()
	gather := func(table, idx string) string {
		return g.opA("Gather", []string{e.w.tensor(table), idx}, attrInt("axis", 0))
	}
	seqLen := g.op("Squeeze", g.opA("Shape", []string{ids}, attrInt("start", 1), attrInt("end", 2)), g.ints(0))
	positions := g.op("Range", g.scalarInt(0), seqLen, g.scalarInt(1))
	x := g.op("Add", gather(model.BertWordEmbeddings, ids), gather(model.BertTokenTypeEmbeddings, types))
	x = g.op("Add", x, gather(model.BertPositionEmbeddings, positions))
	return e.layerNorm(x, model.BertEmbeddingsNorm, "LayerNorm")
}

// attentionBias is the additive mask [b, 1, 1, s] shared by every layer: 0 for tokens,
// maskedScore for padding.
func (e *bertEncoder) attentionBias(mask string) string {
	g := e.g
	defer g.push("attn_mask")()
	m := g.op("Unsqueeze", g.opA("Cast", []string{mask}, attrInt("to", int64(Float32))), g.ints(1, 2))
	return g.op("Mul", g.op("Sub", g.scalarFloat(Float32, 1), m), g.scalarFloat(Float32, maskedScore(Float32)))
}

// layer is one post-norm BERT block.
func (e *bertEncoder) layer(i int, x, bias string) string {
	g := e.g
	defer g.push("layer." + strconv.Itoa(i))()
	a := e.attention(i, x, bias)
	x = e.layerNorm(g.op("Add", a, x), model.BertNormName(i, model.BertAttnNorm), "attention_norm")
	h := e.gelu(e.dense(x, i, model.BertIntermediate))
	return e.layerNorm(g.op("Add", e.dense(h, i, model.BertOutput), x), model.BertNormName(i, model.BertOutputNorm), "output_norm")
}

// attention is bidirectional multi-head self-attention over the unmasked tokens.
func (e *bertEncoder) attention(i int, x, bias string) string {
	g := e.g
	defer g.push("attention")()
	heads, hd := int64(e.cfg.NumAttentionHeads), int64(e.cfg.HeadDim())
	split := func(v string, perm ...int64) string { // [b·s, heads·hd] → perm of [b, s, heads, hd]
		return g.opA("Transpose", []string{e.sequences(v, heads, hd)}, attrInts("perm", perm...))
	}
	q := split(e.dense(x, i, model.BertQuery), 0, 2, 1, 3) // [b, heads, s, hd]
	k := split(e.dense(x, i, model.BertKey), 0, 2, 3, 1)   // [b, heads, hd, s]
	v := split(e.dense(x, i, model.BertValue), 0, 2, 1, 3)
	scores := g.op("Div", g.op("MatMul", q, k), g.scalarFloat(Float32, float32(math.Sqrt(float64(hd)))))
	probs := g.opA("Softmax", []string{g.op("Add", scores, bias)}, attrInt("axis", -1))
	ctx := g.opA("Transpose", []string{g.op("MatMul", probs, v)}, attrInts("perm", 0, 2, 1, 3))
	ctx = g.op("Reshape", ctx, g.ints(-1, heads*hd))
	return e.dense(ctx, i, model.BertAttnOutput)
}

// sequences reshapes token rows [b·s, ...] to [b, s, inner...].
func (e *bertEncoder) sequences(x string, inner ...int64) string {
	g := e.g
	shape := g.opA("Concat", []string{e.batchSeq, g.ints(inner...)}, attrInt("axis", 0))
	return g.op("Reshape", x, shape)
}

// dense applies dense layer l of block i to token rows: x·Wᵀ + b, one Gemm.
func (e *bertEncoder) dense(x string, i int, l model.BertLinear) string {
	defer e.g.push(string(l))()
	name := model.BertLinearName(i, l)
	return e.g.opA("Gemm", []string{x, e.w.tensor(model.Weight(name)), e.w.tensor(model.Bias(name))}, attrInt("transB", 1))
}

// layerNorm is LayerNormalization over the hidden axis with the module's weight and bias.
func (e *bertEncoder) layerNorm(x, module, scope string) string {
	defer e.g.push(scope)()
	return e.g.opA("LayerNormalization", []string{x, e.w.tensor(model.Weight(module)), e.w.tensor(model.Bias(module))},
		attrInt("axis", -1), attrFloat("epsilon", float32(e.cfg.LayerNormEps)))
}

// gelu is the exact GELU, x·½·(1 + erf(x/√2)), in the form ONNX Runtime fuses into one Gelu kernel.
func (e *bertEncoder) gelu(x string) string {
	g := e.g
	defer g.push("gelu")()
	erf := g.op("Erf", g.op("Div", x, g.scalarFloat(Float32, float32(math.Sqrt2))))
	return g.op("Mul", g.op("Mul", x, g.op("Add", erf, g.scalarFloat(Float32, 1))), g.scalarFloat(Float32, 0.5))
}

// pool turns [b, s, h] token embeddings into [b, h] sentence vectors as sentence-transformers
// does: the mean over unmasked tokens (sum / max(count, 1e-9)) or the first token, then, with a
// Normalize module, x / max(‖x‖₂, 1e-12).
func (e *bertEncoder) pool(x, mask string) string {
	g := e.g
	defer g.push("pooling")()
	sum := func(v string, axis, keep int64) string {
		return g.opA("ReduceSum", []string{v, g.ints(axis)}, attrInt("keepdims", keep))
	}
	var y string
	if e.st.Pooling == model.PoolCLS {
		y = g.opA("Gather", []string{x, g.scalarInt(0)}, attrInt("axis", 1))
	} else {
		m := g.op("Unsqueeze", g.opA("Cast", []string{mask}, attrInt("to", int64(Float32))), g.ints(2)) // [b, s, 1]
		count := g.op("Max", sum(m, 1, 0), g.scalarFloat(Float32, 1e-9))
		y = g.op("Div", sum(g.op("Mul", x, m), 1, 0), count)
	}
	if e.st.Normalize {
		norm := g.op("Sqrt", sum(g.op("Mul", y, y), -1, 1))
		y = g.op("Div", y, g.op("Max", norm, g.scalarFloat(Float32, 1e-12)))
	}
	return y
}

// openBert reads a BERT dir's config, sentence-transformers config (nil when the dir has none)
// and weights, checking every tensor's shape and type.
func openBert(modelDir string) (*model.BertConfig, *model.SentenceConfig, *model.Weights, error) {
	cfg, err := model.LoadBertConfig(modelDir)
	if err != nil {
		return nil, nil, nil, err
	}
	st, err := model.LoadSentenceConfig(modelDir)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			return nil, nil, nil, err
		}
		st = nil
	}
	if st != nil && st.Dim != cfg.HiddenSize {
		return nil, nil, nil, fmt.Errorf("export: the pooling dimension %d differs from hidden_size %d", st.Dim, cfg.HiddenSize)
	}
	src, err := model.OpenWeights(modelDir)
	if err != nil {
		return nil, nil, nil, err
	}
	for name, want := range cfg.TensorShapes() {
		info, ok := src.Info(name)
		if !ok {
			src.Close()
			return nil, nil, nil, fmt.Errorf("export: the weights lack %s (a BertModel checkpoint is expected, as sentence-transformers saves it)", name)
		}
		if fmt.Sprint(info.Shape) != fmt.Sprint(want) || info.DType != model.F32 {
			src.Close()
			return nil, nil, nil, fmt.Errorf("export: %s is %s %v, expected F32 %v", name, info.DType, info.Shape, want)
		}
	}
	return cfg, st, src, nil
}

// EncoderModel builds the ONNX graph of the BERT encoder in modelDir in memory, weights inline,
// and returns the serialized model: what `medassist export` would write as model.onnx, for
// opening an ONNX Runtime session without a file.
func EncoderModel(modelDir string, opt Options) ([]byte, error) {
	if err := errors.Join(opt.Validate(), checkBertOptions(opt)); err != nil {
		return nil, err
	}
	cfg, st, src, err := openBert(modelDir)
	if err != nil {
		return nil, err
	}
	defer src.Close()
	g := buildBert(cfg, st, src, opt)
	inits := make([]*onnxpb.TensorProto, 0, len(g.inits))
	for _, in := range g.inits {
		b, err := initData(in)
		if err != nil {
			return nil, err
		}
		inits = append(inits, &onnxpb.TensorProto{Name: proto.String(in.Name), Dims: in.Dims,
			DataType: proto.Int32(int32(in.DType)), RawData: b})
	}
	out, err := proto.Marshal(modelProto(g, inits, irVersionFor(opt.Opset)))
	if err != nil {
		return nil, fmt.Errorf("export: encode %s: %w", modelDir, err)
	}
	return out, nil
}

// exportBert writes a BERT encoder (with its sentence-transformers pooling when the dir has one).
func exportBert(ctx context.Context, modelDir, outDir string, opt Options, log *slog.Logger, progress Progress) (*Summary, error) {
	if err := checkBertOptions(opt); err != nil {
		return nil, err
	}
	cfg, st, src, err := openBert(modelDir)
	if err != nil {
		return nil, err
	}
	defer src.Close()
	sum := &Summary{OutDir: outDir, Layers: cfg.NumHiddenLayers, Options: opt, SourceDType: string(model.F32)}
	for name := range cfg.TensorShapes() {
		info, _ := src.Info(name)
		sum.Params += int64(info.NumElements())
		sum.WeightBytesIn += int64(info.NumBytes())
	}
	files := append([]string{model.ConfigFile}, model.TokenizerFiles...)
	if st != nil {
		files = append(files, st.Files...)
	}
	if err := writeExport(ctx, buildBert(cfg, st, src, opt), modelDir, files, sum, log, progress); err != nil {
		return nil, err
	}
	return sum, nil
}
