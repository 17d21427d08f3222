package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/medassist/medassist/export"
	"github.com/medassist/medassist/internal/config"
)

// exportConfig is the configuration of `medassist export`.
type exportConfig struct {
	Model           string `koanf:"model" help:"Hugging Face layout model dir (config.json, model.safetensors or shards): a Llama decoder, or a BERT encoder such as sentence-transformers' all-MiniLM-L6-v2 (float32, standard operators, mean pooling + normalisation as output sentence_embedding)"`
	Out             string `koanf:"out" help:"output dir: model.onnx (+ model.onnx.data), config and tokenizer files"`
	DType           string `koanf:"dtype" help:"weights, activations and KV cache: float32 or float16 (logits are always float32)"`
	Quantize        string `koanf:"quantize" help:"weight-only quantization of the linear layers (com.microsoft MatMulNBits): none, int8 or int4"`
	Asymmetric      bool   `koanf:"asymmetric" help:"store a zero point per quantization block (default: symmetric, zero point 8 / 128)"`
	BlockSize       int    `koanf:"block-size" help:"weights per quantization block along the input dimension (power of two ≥ 16; 0: 32 for int4, 128 for int8)"`
	AccuracyLevel   int    `koanf:"accuracy-level" help:"MatMulNBits accuracy_level: 0 unset, 1 fp32, 2 fp16, 3 bf16, 4 int8 activations (fastest on CPU)"`
	KeepHead        bool   `koanf:"keep-head" help:"leave the LM head unquantized"`
	Opset           int    `koanf:"opset" help:"ONNX opset of the default domain (17–21)"`
	ExternalData    string `koanf:"external-data" help:"weights in model.onnx.data: auto (above 256 MiB), always or never"`
	Progress        bool   `koanf:"progress" help:"show a progress bar on stderr"`
	Contrib         bool   `koanf:"contrib" help:"use ONNX Runtime's fused com.microsoft operators (GroupQueryAttention, RotaryEmbedding, SkipSimplifiedLayerNormalization): faster, ONNX Runtime only"`
	FuseProjections bool   `koanf:"fuse-projections" help:"apply q/k/v and gate/up as one matrix product each over their stacked weights (same inputs and outputs)"`
}

func defaultExportConfig() exportConfig {
	d := export.DefaultOptions()
	return exportConfig{
		DType: d.DType, Quantize: string(d.Quantize), BlockSize: d.BlockSize, AccuracyLevel: d.AccuracyLevel,
		Opset: d.Opset, ExternalData: d.ExternalData, Progress: true,
	}
}

// options are the export package's options these settings describe.
func (c exportConfig) options() export.Options {
	o := export.DefaultOptions()
	o.DType, o.Quantize, o.Asymmetric = c.DType, export.Quantization(c.Quantize), c.Asymmetric
	o.BlockSize, o.AccuracyLevel, o.KeepHead = c.BlockSize, c.AccuracyLevel, c.KeepHead
	o.Opset, o.ExternalData, o.Contrib = c.Opset, c.ExternalData, c.Contrib
	o.FuseProjections = c.FuseProjections
	return o
}

// Validate names every bad field.
func (c exportConfig) Validate() error {
	return config.Join(
		config.Check(c.Model != "", "model", c.Model, "a Hugging Face Llama or BERT model dir (config.json + safetensors)"),
		config.Check(c.Out != "", "out", c.Out, "the dir to write model.onnx into"),
		c.options().Validate(),
	)
}

func init() {
	register(&command{
		name:    "export",
		summary: "export a Llama model dir to ONNX (decoder with KV cache; float32/float16, int8/int4 weights), or a BERT sentence encoder",
		usage:   "--model DIR --out DIR [--dtype float32|float16] [--quantize none|int8|int4]",
		flags:   structFlags(defaultExportConfig()),
		run: flagsOnly("export", "", defaultExportConfig, func(ctx context.Context, env *cmdEnv, cfg exportConfig) error {
			return runExport(ctx, cfg, env)
		}),
	})
}

// progressMinBytes is the weight size from which export shows a progress bar.
const progressMinBytes = 64 << 20

func runExport(ctx context.Context, cfg exportConfig, env *cmdEnv) error {
	var progress export.Progress
	var bar *progressbar.ProgressBar
	if cfg.Progress {
		progress = func(done, total int64) {
			if bar == nil && total >= progressMinBytes {
				bar = progressbar.NewOptions64(total,
					progressbar.OptionSetWriter(os.Stderr),
					progressbar.OptionSetDescription("writing weights"),
					progressbar.OptionShowBytes(true),
					progressbar.OptionThrottle(200*time.Millisecond),
					progressbar.OptionClearOnFinish(),
				)
			}
			if bar != nil {
				_ = bar.Set64(done)
			}
		}
	}
	sum, err := export.Export(ctx, cfg.Model, cfg.Out, cfg.options(), env.log, progress)
	if bar != nil {
		_ = bar.Finish()
	}
	if err != nil {
		return err
	}
	env.log.Info("exported", "out", sum.OutDir, "elapsed", sum.Duration.Round(time.Millisecond))
	printExportSummary(env.stdout, sum)
	return nil
}

func printExportSummary(w io.Writer, s *export.Summary) {
	o := s.Options
	fmt.Fprintf(w, "exported %s in %s\n", s.OutDir, s.Duration.Round(time.Millisecond))
	fmt.Fprintf(w, "  model:    %d layers, %s parameters (%s weights, %s)\n", s.Layers, exportCount(s.Params), s.SourceDType, exportSize(s.WeightBytesIn))
	quant := string(o.Quantize)
	if o.Quantize != export.QuantNone {
		scheme := "symmetric"
		if o.Asymmetric {
			scheme = "asymmetric"
		}
		head := "head quantized"
		if o.KeepHead {
			head = "head kept"
		}
		block := fmt.Sprint(o.BlockSize)
		if o.BlockSize == 0 {
			block = fmt.Sprintf("%d (default)", export.DefaultBlockSize(o.Quantize, math.MaxInt))
		}
		quant = fmt.Sprintf("%s (MatMulNBits, block %s, %s, accuracy_level %d, %s)", quant, block, scheme, o.AccuracyLevel, head)
	}
	fmt.Fprintf(w, "  storage:  %s, quantize %s\n", o.DType, quant)
	var opsets []string
	for d, v := range s.OpsetImports {
		if d == "" {
			d = "ai.onnx"
		}
		opsets = append(opsets, fmt.Sprintf("%s %d", d, v))
	}
	sort.Strings(opsets)
	kind := "standard ONNX operators"
	if o.Contrib {
		kind = "ONNX Runtime contrib operators"
	}
	if o.FuseProjections {
		kind += ", fused q/k/v and gate/up projections"
	}
	fmt.Fprintf(w, "  graph:    %d nodes (%s), %d initializers, opsets %s\n", s.Nodes, kind, s.Initializers, strings.Join(opsets, ", "))
	fmt.Fprintf(w, "  %s %s\n", export.ModelFile, exportSize(s.ModelBytes))
	if s.ExternalData {
		fmt.Fprintf(w, "  %s %s\n", export.ExternalDataFile, exportSize(s.DataBytes))
	}
	fmt.Fprintf(w, "  copied:   %s\n", strings.Join(s.CopiedFiles, ", "))
}

func exportSize(b int64) string {
	switch {
	case b >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(b)/(1<<30))
	case b >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20))
	case b >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(b)/(1<<10))
	}
	return fmt.Sprintf("%d B", b)
}

func exportCount(n int64) string {
	switch {
	case n >= 1e9:
		return fmt.Sprintf("%.2fB", float64(n)/1e9)
	case n >= 1e6:
		return fmt.Sprintf("%.1fM", float64(n)/1e6)
	case n >= 1e3:
		return fmt.Sprintf("%.1fK", float64(n)/1e3)
	}
	return fmt.Sprint(n)
}
