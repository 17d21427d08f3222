package main

import (
	"context"

	"github.com/spf13/pflag"

	"github.com/medassist/medassist/model"
	"github.com/medassist/medassist/model/gguf"
	"github.com/medassist/medassist/serve"
)

func init() {
	register(&command{
		name:    "serve",
		logJSON: true, // one JSON line per request, with its request id
		summary: "serve the chat API (OpenAI-style, streaming), the chat page, health and metrics",
		usage:   "--model DIR | --model-id ID [--model-dir DIR] [--addr HOST:PORT]",
		flags: func(fs *pflag.FlagSet) {
			d := serve.DefaultConfig()
			fs.String("model", d.Model, "exported model dir (model.onnx + config/tokenizer files); env MEDASSIST_MODEL")
			modelSourceFlags(fs, d)
			fs.String("addr", d.Addr, "listen address (7860 as on Hugging Face Spaces)")
			fs.String("model-name", d.ModelName, "model id reported by /v1/models (default: the model dir's name)")
			fs.String("device", d.Device, "auto (CUDA when the machine has an NVIDIA GPU and the ONNX Runtime build has the CUDA provider, else the CPU), cpu or cuda")
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
		run: flagsOnly("serve", "", serve.DefaultConfig, func(ctx context.Context, env *cmdEnv, cfg serve.Config) error {
			log := env.log
			srv, err := serve.New(cfg, log)
			if err != nil {
				return err
			}
			loader := newLoader(env)
			loader.Status = srv.SetLoadStatus
			return srv.Run(ctx, func(ctx context.Context) (*serve.Backend, error) {
				return loader.Open(ctx, cfg)
			})
		}),
	})
}

// modelSourceFlags declares the flags that say which model to serve when it is not an exported dir
// (serve and prepare share them).
func modelSourceFlags(fs *pflag.FlagSet, d serve.Config) {
	fs.String("model-id", d.ModelID, "model to serve instead of --model: a Hub id (pulled), a Hugging Face folder or a GGUF file (exported into --model-dir), or an exported folder; env MEDASSIST_MODEL_ID")
	fs.String("revision", d.Revision, "branch, tag or commit of a Hub --model-id")
	fs.String("model-dir", d.ModelDir, "where --model-id is exported (re-exported when its stamp names another model, revision or quantization; default: a folder per model in the user cache dir)")
	fs.String("quantize", d.Quantize, "weights of that export: none, int8 or int4")
}

// newLoader pulls with the Hugging Face environment's settings (HF_HOME, HF_ENDPOINT, HF_TOKEN, HF_HUB_OFFLINE)
// and imports GGUF files as `medassist import` does (float32).
func newLoader(env *cmdEnv) *serve.Loader {
	return &serve.Loader{Hub: hubConfig(defaultPullConfig(), env), Log: env.log, Import: importGGUF(env)}
}

// importGGUF is the loader's importer: a GGUF file into an HF-layout folder, float32.
func importGGUF(env *cmdEnv) serve.ImportFunc {
	return func(ctx context.Context, file, out string) error {
		_, err := gguf.Import(ctx, file, out, gguf.Options{DType: model.F32}, env.log)
		return err
	}
}
