package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/spf13/pflag"
	"golang.org/x/term"

	"github.com/medassist/medassist/hub"
	"github.com/medassist/medassist/internal/config"
)

// pullConfig is the configuration of `medassist pull`. Where the cache is, the endpoint and the
// token come from the Hugging Face environment (HF_HOME, HF_HUB_CACHE, HF_ENDPOINT, HF_TOKEN,
// HF_HUB_OFFLINE); --cache-dir, --endpoint and --offline override them.
type pullConfig struct {
	Revision string   `koanf:"revision"`
	Type     string   `koanf:"type"`
	Include  []string `koanf:"include"`
	Offline  bool     `koanf:"offline"`
	Quiet    bool     `koanf:"quiet"`
	CacheDir string   `koanf:"cache-dir"`
	Endpoint string   `koanf:"endpoint"`
	Retries  int      `koanf:"retries"`
}

func defaultPullConfig() pullConfig {
	return pullConfig{Revision: "main", Type: string(hub.Model), Retries: hub.Defaults().MaxRetries}
}

// Validate names every bad field.
func (c pullConfig) Validate() error {
	_, typeErr := hub.ParseRepoType(c.Type)
	return config.Join(
		config.Check(c.Revision != "", "revision", c.Revision, "a branch, tag or commit hash"),
		config.Check(typeErr == nil, "type", c.Type, "model or dataset"),
		config.Check(c.Retries >= 0, "retries", c.Retries, ">= 0"),
	)
}

func init() {
	register(&command{
		name:    "pull",
		summary: "download a model or dataset from the Hugging Face Hub into the HF cache; prints the snapshot dir",
		usage:   "REPO_ID [--revision R] [--type model|dataset]",
		flags: func(fs *pflag.FlagSet) {
			d := defaultPullConfig()
			fs.String("revision", d.Revision, "branch, tag or commit hash")
			fs.String("type", d.Type, "repository type: model or dataset")
			fs.StringSlice("include", d.Include, "only files matching these globs (fnmatch: '*' crosses '/'), e.g. '*.safetensors,*.json,tokenizer.model'; default: every file, less other weight formats (*.bin, *.pth, *.h5, *.msgpack, *.gguf, onnx) when a model has safetensors")
			fs.Bool("offline", d.Offline, "no network: serve from the cache (also HF_HUB_OFFLINE=1)")
			fs.BoolP("quiet", "q", d.Quiet, "no progress bars and no per-file log lines")
			fs.String("cache-dir", d.CacheDir, "hub cache dir (default HF_HUB_CACHE, else HF_HOME/hub, HF_HOME defaulting to ~/.cache/huggingface)")
			fs.String("endpoint", d.Endpoint, "Hub URL (default HF_ENDPOINT, else https://huggingface.co)")
			fs.Int("retries", d.Retries, "retries of a transient failure (5xx, 429, connection lost) before giving up")
		},
		run: func(ctx context.Context, env *cmdEnv, args []string) error {
			if len(args) != 1 {
				return usageError{"pull takes one REPO_ID, such as TinyLlama/TinyLlama-1.1B-Chat-v1.0"}
			}
			cfg := defaultPullConfig()
			if err := env.loadConfig(&cfg, "pull"); err != nil {
				return err
			}
			return runPull(ctx, cfg, env, args[0])
		},
	})
}

func runPull(ctx context.Context, cfg pullConfig, env *cmdEnv, repoID string) error {
	repoType, _ := hub.ParseRepoType(cfg.Type)
	client, err := hub.New(hubConfig(cfg, env))
	if err != nil {
		return err
	}
	dir, err := client.Snapshot(ctx, repoID, repoType, cfg.Revision, cfg.Include)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(env.stdout, dir)
	return err
}

// hubConfig starts from the Hugging Face environment and applies the command's settings.
func hubConfig(cfg pullConfig, env *cmdEnv) hub.Config {
	hc := hub.FromEnv(os.Getenv)
	if cfg.CacheDir != "" {
		hc.CacheDir = cfg.CacheDir
	}
	if cfg.Endpoint != "" {
		hc.Endpoint = cfg.Endpoint
	}
	hc.Offline = hc.Offline || cfg.Offline
	hc.MaxRetries = cfg.Retries
	hc.Logger = env.log
	if cfg.Quiet {
		hc.Logger = slog.New(minLevel{env.log.Handler(), slog.LevelWarn})
	}
	showBars := !cfg.Quiet && os.Getenv("HF_HUB_DISABLE_PROGRESS_BARS") == "" && term.IsTerminal(int(os.Stderr.Fd()))
	if showBars {
		hc.Progress = os.Stderr
	}
	return hc
}

// minLevel drops records below a level.
type minLevel struct {
	slog.Handler
	level slog.Level
}

func (h minLevel) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.level && h.Handler.Enabled(ctx, l)
}

func (h minLevel) WithAttrs(attrs []slog.Attr) slog.Handler {
	return minLevel{h.Handler.WithAttrs(attrs), h.level}
}

func (h minLevel) WithGroup(name string) slog.Handler {
	return minLevel{h.Handler.WithGroup(name), h.level}
}
