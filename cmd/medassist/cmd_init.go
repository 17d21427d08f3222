package main

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/medassist/medassist/internal/config"
	"github.com/medassist/medassist/model"
)

// initConfig is the configuration of `medassist init`.
type initConfig struct {
	FromConfig   string `koanf:"from-config" help:"model dir whose config.json gives the shapes; its tokenizer and generation files are copied"`
	Random       bool   `koanf:"random" help:"random weights: normal(0, initializer_range), norms = 1 (required)"`
	Seed         int64  `koanf:"seed" help:"random seed; the same seed writes the same bytes"`
	Out          string `koanf:"out" help:"output model dir"`
	DType        string `koanf:"dtype" help:"weight type: float32, float16 or bfloat16"`
	MaxShardSize string `koanf:"max-shard-size" help:"largest weights file before sharding, as in Hugging Face (2GB = 2·10⁹ bytes, 2GiB = 2³¹; 0: never shard)"`
}

func defaultInitConfig() initConfig {
	return initConfig{DType: "float32", MaxShardSize: "2GB"}
}

// Validate names every bad field.
func (c initConfig) Validate() error {
	_, dtErr := model.ParseTorchDtype(c.DType)
	_, szErr := parseByteSize(c.MaxShardSize)
	return config.Join(
		config.Check(c.FromConfig != "", "from-config", c.FromConfig, "a model dir holding config.json"),
		config.Check(c.Out != "", "out", c.Out, "the dir to write the model into"),
		config.Check(c.Random, "random", c.Random, "true (init only creates random weights)"),
		config.Check(c.Seed >= 0, "seed", c.Seed, ">= 0"),
		config.Check(dtErr == nil, "dtype", c.DType, "one of float32, float16, bfloat16"),
		config.Check(szErr == nil, "max-shard-size", c.MaxShardSize, "a size such as 2GB, 500MB, 10GiB or a byte count (0: one file)"),
	)
}

func init() {
	register(&command{
		name:    "init",
		summary: "create an HF-layout model with seeded random weights from a config.json (tests, benchmarks)",
		usage:   "--from-config DIR --random --seed S --out DIR",
		flags:   structFlags(defaultInitConfig()),
		run: flagsOnly("init", "", defaultInitConfig, func(ctx context.Context, env *cmdEnv, cfg initConfig) error {
			return runInit(ctx, cfg, env)
		}),
	})
}

func runInit(ctx context.Context, cfg initConfig, env *cmdEnv) error {
	mc, err := model.LoadConfig(cfg.FromConfig)
	if err != nil {
		return err
	}
	dtype, _ := model.ParseTorchDtype(cfg.DType)
	shard, _ := parseByteSize(cfg.MaxShardSize)
	infos, err := mc.TensorInfos(dtype)
	if err != nil {
		return err
	}
	var params, bytes int64
	for _, ti := range infos {
		params += int64(ti.NumElements())
		bytes += int64(ti.NumBytes())
	}
	env.log.Info("writing random model", "from", cfg.FromConfig, "out", cfg.Out, "params", params,
		"bytes", bytes, "dtype", cfg.DType, "seed", cfg.Seed)
	start := time.Now()
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := model.WriteRandomModel(cfg.Out, mc, dtype, uint64(cfg.Seed), shard); err != nil {
		return err
	}
	if err := model.CopyModelFiles(cfg.FromConfig, cfg.Out, model.TokenizerFiles); err != nil {
		return err
	}
	env.log.Info("random model written", "out", cfg.Out, "elapsed", time.Since(start).Round(time.Millisecond))
	fmt.Fprintln(env.stdout, cfg.Out)
	return nil
}

// parseByteSize reads Hugging Face's max_shard_size notation: a byte count or a number with a
// unit, case-insensitive (KB/MB/GB/TB in powers of ten, KiB/MiB/GiB/TiB in powers of two).
func parseByteSize(s string) (int64, error) {
	t := strings.ToUpper(strings.TrimSpace(s))
	units := []struct {
		suffix string
		mult   float64
	}{
		{"KIB", 1 << 10}, {"MIB", 1 << 20}, {"GIB", 1 << 30}, {"TIB", 1 << 40},
		{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12}, {"B", 1},
	}
	mult := 1.0
	for _, u := range units {
		if strings.HasSuffix(t, u.suffix) {
			t, mult = strings.TrimSpace(strings.TrimSuffix(t, u.suffix)), u.mult
			break
		}
	}
	v, err := strconv.ParseFloat(t, 64)
	if err != nil || v < 0 || math.IsInf(v, 0) {
		return 0, fmt.Errorf("bad size %q", s)
	}
	return int64(v * mult), nil
}
