package main

import (
	"context"

	"github.com/spf13/pflag"

	"github.com/medassist/medassist/serve"
)

func init() {
	register(&command{
		name:    "serve",
		logJSON: true, // one JSON line per request, with its request id
		summary: "serve the chat API (OpenAI-style, streaming), the chat page, health and metrics",
		usage:   "--model DIR [--addr HOST:PORT]",
		flags: func(fs *pflag.FlagSet) {
			d := serve.DefaultConfig()
			fs.String("model", d.Model, "exported model dir (model.onnx + config/tokenizer files); env MEDASSIST_MODEL")
			fs.String("addr", d.Addr, "listen address (7860 as on Hugging Face Spaces)")
			fs.String("model-name", d.ModelName, "model id reported by /v1/models (default: the model dir's name)")
			fs.String("device", d.Device, "auto (CUDA when the machine has an NVIDIA GPU, else the CPU), cpu or cuda")
			fs.String("ort-lib", d.ORTLib, "ONNX Runtime shared library (default: $MEDASSIST_ORT_LIB or .cache/native/lib/libonnxruntime.so)")
			fs.Int("threads", d.Threads, "intra-op threads per sequence (0: cores ÷ max-concurrent)")
			fs.Bool("allow-spinning", d.AllowSpinning, "let ONNX Runtime's threads spin while waiting for work (faster for one stream on dedicated cores; off by default because concurrent sequences share them)")
			fs.Int("max-concurrent", d.MaxConcurrent, "sequences generating at once, each with its own KV cache")
			fs.Int("queue-size", d.QueueSize, "requests that may wait for a slot; beyond that 429 with Retry-After")
			fs.Int64("max-body-bytes", d.MaxBodyBytes, "largest request body accepted (413 above)")
			fs.Duration("request-timeout", d.RequestTimeout, "deadline of one request, generation included")
			fs.Duration("shutdown-timeout", d.ShutdownTimeout, "how long SIGTERM waits for in-flight requests")
			fs.Int("default-max-tokens", d.DefaultMaxTok, "max_tokens when a request sets none")
			fs.Int("max-tokens-limit", d.MaxTokensLimit, "largest max_tokens a request may ask for")
			fs.Float64("temperature", d.Temperature, "default sampling temperature (0 = greedy)")
			fs.Float64("top-p", d.TopP, "default nucleus sampling mass")
			fs.Int("top-k", d.TopK, "top-k sampling (0 = off)")
			fs.Float64("repetition-penalty", d.RepetitionPen, "repetition penalty (1 = off)")
			fs.String("system-prompt", d.SystemPrompt, "system prompt (default: the built-in medical assistant prompt)")
			fs.Bool("log-content", d.LogContent, "log message contents (off by default: they may be health data)")
		},
		run: func(ctx context.Context, env *cmdEnv, args []string) error {
			if len(args) > 0 {
				return usageError{"serve takes no positional arguments"}
			}
			cfg := serve.DefaultConfig()
			if err := env.loadConfig(&cfg, "serve"); err != nil {
				return err
			}
			log := env.log
			srv, err := serve.New(cfg, log)
			if err != nil {
				return err
			}
			return srv.Run(ctx, func(ctx context.Context) (*serve.Backend, error) {
				return serve.OpenBackend(ctx, cfg, log)
			})
		},
	})
}
