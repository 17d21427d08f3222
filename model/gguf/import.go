package gguf

import (
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"unsafe"

	"github.com/medassist/medassist/model"
)

// Options configures Import.
type Options struct {
	// DType of the written weights: model.F32 (the default: every dequantized value exactly) or
	// model.BF16 (half the size, rounded to nearest even).
	DType model.DType
	// MaxShardBytes splits the weights into Hugging Face shards above this size (≤ 0: one file).
	MaxShardBytes int64
}

// Result describes an imported model.
type Result struct {
	Config  *model.Config
	Vocab   *Vocab
	Params  int64 // number of weights
	Bytes   int64 // bytes of weights written
	Tensors int
}

// Import converts a Llama-architecture GGUF file into a Hugging Face model dir: config.json,
// model.safetensors (dequantized, Q/K rows back in Hugging Face order), tokenizer.json,
// tokenizer_config.json (special tokens, chat template) and generation_config.json. Tensors are
// dequantized and written one at a time, so memory stays near the largest tensor.
func Import(ctx context.Context, path, outDir string, opts Options, log *slog.Logger) (*Result, error) {
	if opts.DType == "" {
		opts.DType = model.F32
	}
	if opts.DType != model.F32 && opts.DType != model.BF16 {
		return nil, fmt.Errorf("import: dtype %s is not supported (float32 or bfloat16)", opts.DType)
	}
	gf, err := Open(path)
	if err != nil {
		return nil, err
	}
	defer gf.Close()
	v, err := gf.ReadVocab()
	if err != nil {
		return nil, err
	}
	c, err := gf.LlamaConfig(v)
	if err != nil {
		return nil, err
	}
	if c.VocabSize != len(v.Tokens) {
		return nil, fmt.Errorf("gguf: vocab_size %d but the tokenizer has %d tokens", c.VocabSize, len(v.Tokens))
	}
	src, err := gf.planTensors(c)
	if err != nil {
		return nil, err
	}
	infos, err := c.TensorInfos(opts.DType)
	if err != nil {
		return nil, err
	}
	res := &Result{Config: c, Vocab: v, Tensors: len(infos)}
	for _, ti := range infos {
		res.Params += int64(ti.NumElements())
		res.Bytes += int64(ti.NumBytes())
	}
	log.Info("importing GGUF", "file", path, "out", outDir, "tensors", len(infos), "params", res.Params,
		"dtype", opts.DType, "tokenizer", v.Model, "pre", v.Pre)
	buf := newTensorBuffers(src)
	err = model.WriteModelWeights(outDir, infos, opts.MaxShardBytes, func(name string) ([]byte, error) {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		w, err := buf.hfTensor(gf, src[name])
		if err != nil {
			return nil, err
		}
		log.Debug("tensor", "name", name, "from", src[name].Name, "type", src[name].Type)
		return encode(opts.DType, w), nil
	})
	if err != nil {
		return nil, fmt.Errorf("import: %w", err)
	}
	c.TorchDtype = model.TorchDtypeName(opts.DType)
	if err := writeModelFiles(outDir, c, v); err != nil {
		return nil, fmt.Errorf("import: %w", err)
	}
	return res, nil
}

// source is the GGUF tensor behind a Hugging Face tensor.
type source struct {
	TensorInfo
	heads int // > 0: a Q or K projection whose rows llama.cpp permuted, with this many heads
}

// planTensors maps every HF tensor of c to its GGUF tensor, checking names and shapes.
func (gf *File) planTensors(c *model.Config) (map[string]source, error) {
	names := hfNames(c.NumHiddenLayers)
	permuted := map[string]int{}
	for i := 0; i < c.NumHiddenLayers; i++ {
		permuted[model.ProjWeight(i, model.QProj)] = c.NumAttentionHeads
		permuted[model.ProjWeight(i, model.KProj)] = c.NumKeyValueHeads
	}
	src := make(map[string]source, len(gf.Tensors))
	for _, t := range gf.Tensors {
		if t.Name == ggufRopeFreqs {
			return nil, fmt.Errorf("gguf: the file carries %s (Llama 3.1-style rope scaling), which medassist does not support", ggufRopeFreqs)
		}
		hf, ok := names[t.Name]
		if !ok {
			return nil, fmt.Errorf("gguf: tensor %s is not part of a %d-layer Llama model", t.Name, c.NumHiddenLayers)
		}
		want, err := c.TensorShape(hf)
		if err != nil {
			return nil, fmt.Errorf("gguf: tensor %s: %w", t.Name, err)
		}
		if !slices.Equal(t.Shape(), want) {
			return nil, fmt.Errorf("gguf: tensor %s has shape %v, the config needs %v for %s", t.Name, t.Shape(), want, hf)
		}
		src[hf] = source{TensorInfo: t, heads: permuted[hf]}
	}
	for _, n := range c.TensorNames() {
		if _, ok := src[n]; !ok {
			return nil, fmt.Errorf("gguf: the file has no tensor for %s", n)
		}
	}
	return src, nil
}

// tensorBuffers are reused for every tensor of an import: the writer has written a tensor's bytes
// before it asks for the next, so memory stays at one raw and one float32 copy of the largest
// tensor however many tensors there are.
type tensorBuffers struct {
	raw  []byte
	vals []float32
	perm []float32 // the un-permuted Q or K projection
}

func newTensorBuffers(src map[string]source) *tensorBuffers {
	var raw, vals, perm int64
	for _, s := range src {
		raw, vals = max(raw, s.NumBytes()), max(vals, s.NumElements())
		if s.heads > 0 {
			perm = max(perm, s.NumElements())
		}
	}
	return &tensorBuffers{raw: make([]byte, raw), vals: make([]float32, vals), perm: make([]float32, perm)}
}

// hfTensor is the dequantized tensor in Hugging Face layout, valid until the next call: Q and K
// projections get their rows back in the order transformers uses (llama.cpp's converter
// interleaves the rotary halves).
func (b *tensorBuffers) hfTensor(gf *File, s source) ([]float32, error) {
	w, err := gf.float32Into(s.TensorInfo, b.raw[:s.NumBytes()], b.vals[:s.NumElements()])
	if err != nil || s.heads == 0 {
		return w, err
	}
	out := b.perm[:len(w)]
	unpermuteRows(out, w, s.heads, int(s.Dims[0]))
	return out, nil
}

// UnpermuteRows undoes llama.cpp's permutation of a Q or K weight ([heads·headDim, cols]): within a
// head, GGUF row 2i+h holds what Hugging Face keeps at row h·headDim/2 + i (h = 0, 1). It is
// transformers' reverse_permute_weights.
func UnpermuteRows(w []float32, heads, cols int) []float32 {
	out := make([]float32, len(w))
	unpermuteRows(out, w, heads, cols)
	return out
}

func unpermuteRows(dst, w []float32, heads, cols int) {
	hd := len(w) / cols / heads
	for h := 0; h < heads; h++ {
		for half := 0; half < 2; half++ {
			for i := 0; i < hd/2; i++ {
				to := h*hd + half*hd/2 + i
				from := h*hd + 2*i + half
				copy(dst[to*cols:(to+1)*cols], w[from*cols:(from+1)*cols])
			}
		}
	}
}

// encode returns w as little-endian bytes of type d, in w's own memory (no second copy of a tensor
// that may be hundreds of megabytes): float32 is a view of w, bfloat16 is written over its front
// half (element i goes to bytes [2i, 2i+2), which no later element is read from).
func encode(d model.DType, w []float32) []byte {
	if len(w) == 0 || !isLittleEndian() {
		return model.EncodeFloat32(d, w)
	}
	b := unsafe.Slice((*byte)(unsafe.Pointer(&w[0])), 4*len(w))
	switch d {
	case model.F32:
		return b
	case model.BF16:
		for i, x := range w {
			binary.LittleEndian.PutUint16(b[2*i:], model.Float32ToBF16(x))
		}
		return b[:2*len(w)]
	}
	return model.EncodeFloat32(d, w)
}

func isLittleEndian() bool {
	x := uint16(1)
	return *(*byte)(unsafe.Pointer(&x)) == 1
}

// writeModelFiles writes config.json, tokenizer.json, tokenizer_config.json and
// generation_config.json.
func writeModelFiles(dir string, c *model.Config, v *Vocab) error {
	if err := c.WriteConfig(dir); err != nil {
		return err
	}
	tj, err := v.TokenizerJSON()
	if err != nil {
		return err
	}
	tc, err := v.TokenizerConfigJSON(c.MaxPositionEmbeddings)
	if err != nil {
		return err
	}
	gc, err := marshalJSON(v.GenerationConfigJSON(), "  ")
	if err != nil {
		return err
	}
	for name, b := range map[string][]byte{
		"tokenizer.json":           tj,
		model.TokenizerConfigFile:  append(tc, '\n'),
		model.GenerationConfigFile: append(gc, '\n'),
	} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			return err
		}
	}
	return nil
}
