package main

import (
	"context"
	"fmt"

	"github.com/spf13/pflag"

	"github.com/medassist/medassist/serve"
)

func init() {
	register(&command{
		name:    "prepare",
		summary: "pull, import and export a model as serve would, then exit (bakes a model into an image); prints the export dir",
		usage:   "--model-id ID [--model-dir DIR] [--quantize none|int8|int4]",
		flags: func(fs *pflag.FlagSet) {
			modelSourceFlags(fs, serve.DefaultConfig())
		},
		run: func(ctx context.Context, env *cmdEnv, args []string) error {
			if len(args) > 0 {
				return usageError{"prepare takes no positional arguments"}
			}
			cfg := serve.DefaultConfig()
			if err := env.loadConfig(&cfg, "serve"); err != nil {
				return err
			}
			dir, err := newLoader(env).Prepare(ctx, cfg)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintln(env.stdout, dir)
			return err
		},
	})
}
