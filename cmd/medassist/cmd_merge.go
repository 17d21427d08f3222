package main

import (
	"context"
	"fmt"

	"github.com/spf13/pflag"

	"github.com/medassist/medassist/internal/config"
	"github.com/medassist/medassist/train/merge"
)

// mergeConfig is the configuration of `medassist merge`.
type mergeConfig struct {
	Base    string `koanf:"base"`
	Adapter string `koanf:"adapter"`
	Out     string `koanf:"out"`
}

// Validate names every bad field.
func (c mergeConfig) Validate() error {
	return config.Join(
		config.Check(c.Base != "", "base", c.Base, "the base model dir (HF layout)"),
		config.Check(c.Adapter != "", "adapter", c.Adapter, "a PEFT LoRA adapter dir (adapter_config.json, adapter_model.safetensors)"),
		config.Check(c.Out != "", "out", c.Out, "the dir to write the merged model into"),
		config.Check(c.Out == "" || (c.Out != c.Base && c.Out != c.Adapter), "out", c.Out, "a dir other than --base and --adapter"),
	)
}

func init() {
	register(&command{
		name:    "merge",
		summary: "fold a LoRA adapter into its base model (W += scale·B·A) → an HF-layout model dir",
		usage:   "--base DIR --adapter DIR --out DIR",
		flags: func(fs *pflag.FlagSet) {
			fs.String("base", "", "base model dir (HF layout: config.json, model.safetensors, tokenizer files)")
			fs.String("adapter", "", "LoRA adapter dir in PEFT format (written by medassist train or by HF PEFT)")
			fs.String("out", "", "output model dir: merged weights in the base's dtype, config and tokenizer files copied")
		},
		run: flagsOnly("merge", "", zero[mergeConfig], func(ctx context.Context, env *cmdEnv, cfg mergeConfig) error {
			if err := merge.Merge(cfg.Base, cfg.Adapter, cfg.Out, env.log); err != nil {
				return err
			}
			fmt.Fprintln(env.stdout, cfg.Out)
			return nil
		}),
	})
}
