// Package export writes a Hugging Face Llama model as an ONNX decoder with a KV cache, in the
// input/output layout of Hugging Face Optimum and transformers.js (see DESIGN.md): inputs
// input_ids, attention_mask, position_ids and past_key_values.{i}.key/value; outputs logits and
// present.{i}.key/value. Weights can be stored as float32 or float16, and the linear layers
// quantized to 8 or 4 bits for ONNX Runtime's MatMulNBits.
//
// It also writes a BERT encoder (a sentence-transformers model such as all-MiniLM-L6-v2) in
// Optimum's feature-extraction layout, input_ids, attention_mask and token_type_ids →
// last_hidden_state, plus the pooled, normalised sentence_embedding (bert.go); config.json's
// model_type or architectures tells the two apart.
//
// The protobuf types come from the generated package export/onnxpb; the graph is built in
// llama.go (bert.go), one method per block of the model.
package export

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/medassist/medassist/internal/config"
	"github.com/medassist/medassist/model"
)

// Quantization is the weight-only quantization of the linear layers.
type Quantization string

// Quantization modes.
const (
	QuantNone Quantization = "none"
	QuantInt8 Quantization = "int8"
	QuantInt4 Quantization = "int4"
)

// Bits is the number of bits per quantized weight, 0 for none.
func (q Quantization) Bits() int {
	switch q {
	case QuantInt8:
		return 8
	case QuantInt4:
		return 4
	}
	return 0
}

// External data modes.
const (
	ExternalAuto   = "auto"   // external when the weights exceed Options.ExternalThreshold
	ExternalAlways = "always" // always write model.onnx.data
	ExternalNever  = "never"  // everything in model.onnx (fails above the 2 GB protobuf limit)
)

// DefaultExternalThreshold is the weight size above which "auto" writes external data. Above
// the 2 GB protobuf limit it is required; well below it, it still pays: ONNX Runtime holds an
// inline model's protobuf bytes while it builds its weights (a TinyLlama int4 model of 0.87 GB
// peaked at 2.1 GB in a CPU session, 0.8 GB with external data), while external data is read (or
// mapped) straight into place.
const DefaultExternalThreshold int64 = 256 << 20

// maxInlineBytes is the most weight data model.onnx may hold: protobuf readers refuse messages
// of 2 GiB or more, and the graph needs some room too.
const maxInlineBytes int64 = 2<<30 - 64<<20

// Options choose the exported graph's storage and operators.
type Options struct {
	DType    string       // "float32" or "float16": weights, activations and KV cache; logits are always float32
	Quantize Quantization // weight-only quantization of the linear layers
	// Asymmetric stores a zero point per block; otherwise the zero point is the middle level
	// (8 for 4 bits, 128 for 8 bits) and is not stored.
	Asymmetric bool
	// BlockSize is the number of values per quantization block along the input dimension (a power
	// of two ≥ 16); 0 picks DefaultBlockSize for the bit width.
	BlockSize int
	// AccuracyLevel is MatMulNBits' accuracy_level: 0 (unset), 1 fp32, 2 fp16, 3 bf16 or 4 int8
	// compute. 4 lets ONNX Runtime's CPU kernels quantize activations to int8 per block: on a
	// TinyLlama-shaped model it decoded int4 1.5× faster than 0, and int8 38× faster (at 0 ONNX
	// Runtime 1.30 dequantizes 8-bit weights whole on every call), for +0.1% perplexity.
	AccuracyLevel int
	KeepHead      bool // leave the LM head unquantized
	// Contrib builds the graph from ONNX Runtime's fused com.microsoft operators (see contrib.go)
	// instead of standard ONNX operators only.
	Contrib bool
	// FuseProjections applies the projections that read the same input (q/k/v, gate/up) as one
	// MatMul or MatMulNBits over their stacked weights, split afterwards. The graph's inputs and
	// outputs do not change.
	FuseProjections bool
	Opset           int // ONNX opset of the default domain (17–21)
	ExternalData    string
	// ExternalThreshold is the weight size (bytes) above which ExternalAuto writes external data.
	ExternalThreshold int64
}

// DefaultOptions are the options of a plain `medassist export`.
func DefaultOptions() Options {
	return Options{
		DType:             "float32",
		Quantize:          QuantNone,
		BlockSize:         0,
		AccuracyLevel:     4,
		Opset:             17,
		ExternalData:      ExternalAuto,
		ExternalThreshold: DefaultExternalThreshold,
	}
}

// DefaultBlockSize is the quantization block of a plain export for a weight with k inputs: 32
// values for int4 (llama.cpp's Q4_0 block; larger 4-bit blocks cost accuracy), 128 for int8, whose
// error stays small with larger blocks and whose ONNX Runtime kernels (accuracy_level 4) ran faster
// with them on AVX-512 VNNI: a TinyLlama-shaped model decoded 1.2–1.6× (median of each of three A/B
// runs) and prefilled 1.3–1.5× faster than with block 32 (BENCHMARKS.md). The int8 block never
// exceeds k (rounded down to a power of two): with a block wider than the row, ONNX Runtime's
// one-token and many-token kernels disagreed (a cached decode no longer equalled a full recompute).
func DefaultBlockSize(q Quantization, k int) int {
	if q != QuantInt8 {
		return 32
	}
	b := 128
	for b > 16 && b > k {
		b /= 2
	}
	return b
}

// blockSize is the block size of a weight with k inputs: BlockSize, or DefaultBlockSize when 0.
func (o Options) blockSize(k int) int {
	if o.BlockSize == 0 {
		return DefaultBlockSize(o.Quantize, k)
	}
	return o.BlockSize
}

// Validate reports every bad option at once.
func (o Options) Validate() error {
	return config.Join(
		config.Check(o.DType == "float32" || o.DType == "float16", "dtype", o.DType, "one of float32, float16"),
		config.Check(o.Quantize == QuantNone || o.Quantize == QuantInt8 || o.Quantize == QuantInt4,
			"quantize", o.Quantize, "one of none, int8, int4"),
		config.Check(o.BlockSize == 0 || o.BlockSize >= 16 && o.BlockSize&(o.BlockSize-1) == 0,
			"block-size", o.BlockSize, "a power of two ≥ 16, or 0 for the default of the bit width"),
		config.Check(o.AccuracyLevel >= 0 && o.AccuracyLevel <= 4, "accuracy-level", o.AccuracyLevel, "between 0 and 4"),
		config.Check(o.Opset >= 17 && o.Opset <= 21, "opset", o.Opset, "between 17 and 21"),
		config.Check(o.ExternalData == ExternalAuto || o.ExternalData == ExternalAlways || o.ExternalData == ExternalNever,
			"external-data", o.ExternalData, "one of auto, always, never"),
	)
}

func (o Options) activationType() DType {
	if o.DType == "float16" {
		return Float16
	}
	return Float32
}

// irVersionFor is the lowest IR version that carries opset: 8 up to opset 18, 9 for 19–20, 10 for 21.
func irVersionFor(opset int) int64 {
	switch {
	case opset >= 21:
		return 10
	case opset >= 19:
		return 9
	}
	return irVersion
}

// Summary describes a finished export.
type Summary struct {
	OutDir        string
	Params        int64 // parameters of the source model
	Layers        int
	Nodes         int
	Initializers  int
	ModelBytes    int64 // size of model.onnx
	DataBytes     int64 // size of model.onnx.data (0 when inline)
	ExternalData  bool
	Options       Options
	Duration      time.Duration
	SourceDType   string
	OpsetImports  map[string]int64
	CopiedFiles   []string
	WeightBytesIn int64 // bytes of the source weights
}

// Progress is called with the tensor bytes written so far and the total.
type Progress func(done, total int64)

// Export writes modelDir (a Hugging Face Llama or BERT dir, told apart by config.json) into
// outDir: model.onnx (a decoder with a KV cache, or an encoder, see bert.go), model.onnx.data when
// the weights are large, config.json and the tokenizer, generation and sentence-transformers files.
func Export(ctx context.Context, modelDir, outDir string, opt Options, log *slog.Logger, progress Progress) (*Summary, error) {
	start := time.Now()
	if err := opt.Validate(); err != nil {
		return nil, err
	}
	arch, err := model.DetectArchitecture(modelDir)
	if err != nil {
		return nil, err
	}
	var sum *Summary
	if arch == model.ArchBert {
		sum, err = exportBert(ctx, modelDir, outDir, opt, log, progress)
	} else {
		sum, err = exportLlama(ctx, modelDir, outDir, opt, log, progress)
	}
	if err != nil {
		return nil, err
	}
	sum.Duration = time.Since(start)
	return sum, nil
}

// exportLlama writes a Llama decoder with a KV cache.
func exportLlama(ctx context.Context, modelDir, outDir string, opt Options, log *slog.Logger, progress Progress) (*Summary, error) {
	cfg, err := model.LoadConfig(modelDir)
	if err != nil {
		return nil, err
	}
	if opt.Contrib && cfg.HeadDim()%8 != 0 {
		return nil, fmt.Errorf("export: the contrib graph needs head_dim to be a multiple of 8 (GroupQueryAttention), this model has %d; export without contrib operators", cfg.HeadDim())
	}
	src, err := model.OpenWeights(modelDir)
	if err != nil {
		return nil, err
	}
	defer src.Close()
	sum := &Summary{OutDir: outDir, Layers: cfg.NumHiddenLayers, Options: opt}
	if sum.Params, sum.WeightBytesIn, sum.SourceDType, err = checkWeights(cfg, src); err != nil {
		return nil, err
	}
	g := buildDecoder(cfg, src, opt)
	files := append([]string{model.ConfigFile}, model.TokenizerFiles...)
	if err := writeExport(ctx, g, modelDir, files, sum, log, progress); err != nil {
		return nil, err
	}
	return sum, nil
}

// writeExport writes graph g into sum.OutDir (with external data as the options and the weights'
// size decide), copies the named files of modelDir beside it and fills in the rest of sum.
func writeExport(ctx context.Context, g *graph, modelDir string, files []string, sum *Summary, log *slog.Logger, progress Progress) error {
	opt, outDir := sum.Options, sum.OutDir
	var total int64
	for _, in := range g.inits {
		total += in.Bytes()
	}
	switch opt.ExternalData {
	case ExternalAlways:
		sum.ExternalData = true
	case ExternalAuto:
		sum.ExternalData = total > opt.ExternalThreshold
	}
	if !sum.ExternalData && total > maxInlineBytes {
		return fmt.Errorf("export: %.2f GB of weights do not fit in one protobuf file (2 GB limit); use --external-data auto or always", float64(total)/1e9)
	}
	log.Info("exporting", "model", modelDir, "out", outDir, "dtype", opt.DType, "quantize", opt.Quantize,
		"layers", sum.Layers, "nodes", len(g.nodes), "weights_mb", total>>20, "external_data", sum.ExternalData)
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	var report func(int64)
	if progress != nil {
		report = func(done int64) { progress(done, total) }
	}
	st, err := writeModel(ctx, g, outDir, sum.ExternalData, irVersionFor(opt.Opset), report)
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	if err := model.CopyModelFiles(modelDir, outDir, files); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	for _, f := range files {
		if _, err := os.Stat(outDir + "/" + f); err == nil {
			sum.CopiedFiles = append(sum.CopiedFiles, f)
		}
	}
	sum.Nodes, sum.Initializers = len(g.nodes), st.Initializers
	sum.ModelBytes, sum.DataBytes = st.ModelBytes, st.DataBytes
	sum.OpsetImports = g.opsets
	return nil
}

// checkWeights requires every tensor of the config with its expected shape and a float type, and
// returns the parameter count, the weights' byte size and their element type(s).
func checkWeights(cfg *model.Config, src *model.Weights) (params, bytes int64, dtype string, err error) {
	dtypes := map[model.DType]bool{}
	for _, name := range cfg.TensorNames() {
		want, err := cfg.TensorShape(name)
		if err != nil {
			return 0, 0, "", err
		}
		info, ok := src.Info(name)
		if !ok {
			return 0, 0, "", fmt.Errorf("export: the weights lack %s (is this a Llama model dir? a LoRA adapter must be merged first)", name)
		}
		if fmt.Sprint(info.Shape) != fmt.Sprint(want) {
			return 0, 0, "", fmt.Errorf("export: %s has shape %v, config.json implies %v", name, info.Shape, want)
		}
		if !info.DType.IsFloat() {
			return 0, 0, "", fmt.Errorf("export: %s is %s; only F32, F16 and BF16 weights can be exported", name, info.DType)
		}
		dtypes[info.DType] = true
		params += int64(info.NumElements())
		bytes += int64(info.NumBytes())
	}
	for _, d := range []model.DType{model.F32, model.F16, model.BF16} {
		if dtypes[d] {
			if dtype != "" {
				dtype += "+"
			}
			dtype += string(d)
		}
	}
	return params, bytes, dtype, nil
}
