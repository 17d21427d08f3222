package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/pflag"

	"github.com/medassist/medassist/internal/config"
	"github.com/medassist/medassist/model"
	"github.com/medassist/medassist/model/gguf"
)

// importConfig is the configuration of `medassist import`.
type importConfig struct {
	Out          string `koanf:"out"`
	DType        string `koanf:"dtype"`
	MaxShardSize string `koanf:"max-shard-size"`
}

func defaultImportConfig() importConfig {
	return importConfig{DType: "float32", MaxShardSize: "2GB"}
}

// Validate names every bad field.
func (c importConfig) Validate() error {
	dt, dtErr := model.ParseTorchDtype(c.DType)
	_, szErr := parseByteSize(c.MaxShardSize)
	return config.Join(
		config.Check(c.Out != "", "out", c.Out, "the dir to write the Hugging Face model into"),
		config.Check(dtErr == nil && dt != model.F16, "dtype", c.DType, "float32 (exact dequantization) or bfloat16"),
		config.Check(szErr == nil, "max-shard-size", c.MaxShardSize, "a size such as 2GB, 500MB, 10GiB or a byte count (0: one file)"),
	)
}

func init() {
	register(&command{
		name:    "import",
		summary: "convert a llama.cpp GGUF model (Llama architecture) into an HF-layout model dir",
		usage:   "FILE.gguf --out DIR",
		flags: func(fs *pflag.FlagSet) {
			d := defaultImportConfig()
			fs.String("out", d.Out, "output model dir: config.json, model.safetensors, tokenizer.json, tokenizer_config.json, generation_config.json")
			fs.String("dtype", d.DType, "weight type: float32 (every dequantized value exactly) or bfloat16")
			fs.String("max-shard-size", d.MaxShardSize, "largest weights file before sharding (2GB = 2·10⁹ bytes; 0: never shard)")
		},
		run: func(ctx context.Context, env *cmdEnv, args []string) error {
			if len(args) != 1 {
				return usageError{"import takes one GGUF file"}
			}
			cfg := defaultImportConfig()
			if err := env.loadConfig(&cfg, "import"); err != nil {
				return err
			}
			return runImport(ctx, args[0], cfg, env)
		},
	})
}

func runImport(ctx context.Context, file string, cfg importConfig, env *cmdEnv) error {
	dtype, _ := model.ParseTorchDtype(cfg.DType)
	shard, _ := parseByteSize(cfg.MaxShardSize)
	start := time.Now()
	res, err := gguf.Import(ctx, file, cfg.Out, gguf.Options{DType: dtype, MaxShardBytes: shard}, env.log)
	if err != nil {
		return err
	}
	env.log.Info("imported", "out", cfg.Out, "params", res.Params, "bytes", res.Bytes,
		"layers", res.Config.NumHiddenLayers, "vocab", res.Config.VocabSize,
		"chat_template", res.Vocab.ChatTemplate != "", "elapsed", time.Since(start).Round(time.Millisecond))
	fmt.Fprintln(env.stdout, cfg.Out)
	return nil
}
