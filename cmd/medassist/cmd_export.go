package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/pflag"

	"github.com/medassist/medassist/export"
	"github.com/medassist/medassist/internal/config"
)

// exportConfig is the configuration of `medassist export`.
type exportConfig struct {
	Model         string `koanf:"model"`
	Out           string `koanf:"out"`
	DType         string `koanf:"dtype"`
	Quantize      string `koanf:"quantize"`
	Asymmetric    bool   `koanf:"asymmetric"`
	BlockSize     int    `koanf:"block-size"`
	AccuracyLevel int    `koanf:"accuracy-level"`
	KeepHead      bool   `koanf:"keep-head"`
	Opset         int    `koanf:"opset"`
	ExternalData  string `koanf:"external-data"`
	Progress      bool   `koanf:"progress"`
	Contrib       bool   `koanf:"contrib"`
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
		flags: func(fs *pflag.FlagSet) {
			d := defaultExportConfig()
			fs.String("model", d.Model, "Hugging Face layout model dir (config.json, model.safetensors or shards): a Llama decoder, or a BERT encoder such as sentence-transformers' all-MiniLM-L6-v2 (float32, standard operators, mean pooling + normalisation as output sentence_embedding)")
			fs.String("out", d.Out, "output dir: model.onnx (+ model.onnx.data), config and tokenizer files")
			fs.String("dtype", d.DType, "weights, activations and KV cache: float32 or float16 (logits are always float32)")
			fs.String("quantize", d.Quantize, "weight-only quantization of the linear layers (com.microsoft MatMulNBits): none, int8 or int4")
			fs.Bool("asymmetric", d.Asymmetric, "store a zero point per quantization block (default: symmetric, zero point 8 / 128)")
			fs.Int("block-size", d.BlockSize, "weights per quantization block along the input dimension (power of two ≥ 16)")
			fs.Int("accuracy-level", d.AccuracyLevel, "MatMulNBits accuracy_level: 0 unset, 1 fp32, 2 fp16, 3 bf16, 4 int8 activations (fastest on CPU)")
			fs.Bool("keep-head", d.KeepHead, "leave the LM head unquantized")
			fs.Int("opset", d.Opset, "ONNX opset of the default domain (17–21)")
			fs.String("external-data", d.ExternalData, "weights in model.onnx.data: auto (above 256 MiB), always or never")
			fs.Bool("progress", d.Progress, "show a progress bar on stderr")
			fs.Bool("contrib", d.Contrib, "use ONNX Runtime's fused com.microsoft operators (GroupQueryAttention, RotaryEmbedding, SkipSimplifiedLayerNormalization): faster, ONNX Runtime only")
		},
		run: func(ctx context.Context, env *cmdEnv, args []string) error {
			if len(args) > 0 {
				return usageError{"export takes no positional arguments"}
			}
			cfg := defaultExportConfig()
			if err := env.loadConfig(&cfg, "export"); err != nil {
				return err
			}
			return runExport(ctx, cfg, env)
		},
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
		quant = fmt.Sprintf("%s (MatMulNBits, block %d, %s, accuracy_level %d, %s)", quant, o.BlockSize, scheme, o.AccuracyLevel, head)
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
