package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/spf13/pflag"

	"github.com/medassist/medassist/assets"
	"github.com/medassist/medassist/engine"
	"github.com/medassist/medassist/generation"
	"github.com/medassist/medassist/internal/config"
	"github.com/medassist/medassist/model"
	"github.com/medassist/medassist/tokenizer"
	"github.com/medassist/medassist/train"
)

// Engines `medassist generate` can run.
const (
	genEngineAuto  = "auto"  // onnx when the dir holds model.onnx, else gomlx
	genEngineONNX  = "onnx"  // an exported dir on ONNX Runtime
	genEngineGoMLX = "gomlx" // a Hugging Face-layout dir on GoMLX
)

// generateConfig is the configuration of `medassist generate`.
type generateConfig struct {
	Model             string   `koanf:"model"`
	Engine            string   `koanf:"engine"`
	Prompt            string   `koanf:"prompt"`
	Raw               bool     `koanf:"raw"`
	SystemPrompt      string   `koanf:"system-prompt"`
	MaxNewTokens      int      `koanf:"max-new-tokens"`
	Temperature       float64  `koanf:"temperature"`
	TopK              int      `koanf:"top-k"`
	TopP              float64  `koanf:"top-p"`
	RepetitionPenalty float64  `koanf:"repetition-penalty"`
	Seed              int64    `koanf:"seed"`
	Stop              []string `koanf:"stop"`
	JSON              bool     `koanf:"json"`
	// Engine settings.
	ORTLib  string `koanf:"ort-lib"`
	Device  string `koanf:"device"`
	KVCache string `koanf:"kv-cache"`
	Threads int    `koanf:"threads"`
	Spin    bool   `koanf:"allow-spinning"`
	Backend string `koanf:"backend"`
}

func defaultGenerateConfig() generateConfig {
	return generateConfig{Engine: genEngineAuto, SystemPrompt: assets.SystemPrompt(), MaxNewTokens: 128,
		RepetitionPenalty: 1, Device: engine.DeviceAuto, KVCache: engine.KVCacheAuto, Backend: train.BackendAuto, Spin: true}
}

func (c generateConfig) sampling() generation.Sampling {
	return generation.Sampling{Temperature: c.Temperature, TopK: c.TopK, TopP: c.TopP,
		RepetitionPenalty: c.RepetitionPenalty, Seed: c.Seed}
}

// Validate names every bad field.
func (c generateConfig) Validate() error {
	return config.Join(
		config.Check(c.Model != "", "model", c.Model, "a model dir: exported (model.onnx) for onnx, Hugging Face layout for gomlx"),
		config.Check(c.Engine == genEngineAuto || c.Engine == genEngineONNX || c.Engine == genEngineGoMLX, "engine", c.Engine, "one of auto, onnx, gomlx"),
		config.Check(c.Prompt != "", "prompt", c.Prompt, "the text to continue or the question to answer"),
		config.Check(c.MaxNewTokens >= 1, "max-new-tokens", c.MaxNewTokens, ">= 1"),
		config.Check(c.Temperature >= 0, "temperature", c.Temperature, ">= 0 (0 is greedy)"),
		config.Check(c.TopK >= 0, "top-k", c.TopK, ">= 0 (0: off)"),
		config.Check(c.TopP >= 0 && c.TopP <= 1, "top-p", c.TopP, "between 0 and 1 (0 or 1: off)"),
		config.Check(c.RepetitionPenalty >= 0, "repetition-penalty", c.RepetitionPenalty, ">= 0 (1: off)"),
		config.Check(c.Threads >= 0, "threads", c.Threads, ">= 0 (0: one per core)"),
		config.Check(c.Device == engine.DeviceAuto || c.Device == engine.DeviceCPU || c.Device == engine.DeviceCUDA,
			"device", c.Device, "one of auto, cpu, cuda"),
	)
}

func init() {
	register(&command{
		name:    "generate",
		summary: "generate text from a prompt with the ONNX (exported) or GoMLX (HF layout) engine",
		usage:   "--model DIR --prompt TEXT [--engine onnx|gomlx] [--raw] [--max-new-tokens N] [--temperature T] [--seed S] [--json]",
		flags: func(fs *pflag.FlagSet) {
			d := defaultGenerateConfig()
			fs.String("model", d.Model, "model dir: exported (model.onnx) for onnx, Hugging Face layout for gomlx")
			fs.String("engine", d.Engine, "onnx, gomlx, or auto (onnx when the dir holds model.onnx)")
			fs.String("prompt", d.Prompt, "the user's message (or, with --raw, the text to continue)")
			fs.Bool("raw", d.Raw, "tokenize the prompt as plain text with BOS, without the chat template")
			fs.String("system-prompt", d.SystemPrompt, "system message of the chat (\"\": none)")
			fs.Int("max-new-tokens", d.MaxNewTokens, "most tokens to generate")
			fs.Float64("temperature", d.Temperature, "sampling temperature (0: greedy)")
			fs.Int("top-k", d.TopK, "sample from the K most likely tokens (0: off)")
			fs.Float64("top-p", d.TopP, "sample from the smallest set of tokens holding probability P (0 or 1: off)")
			fs.Float64("repetition-penalty", d.RepetitionPenalty, "penalty for tokens already in the text (1: off)")
			fs.Int64("seed", d.Seed, "sampling seed (0: random)")
			fs.StringSlice("stop", d.Stop, "stop strings (repeat or comma-separate)")
			fs.Bool("json", d.JSON, `print {"ids":[new ids],"text":"..."} instead of streaming text`)
			fs.String("ort-lib", d.ORTLib, "ONNX Runtime shared library (env MEDASSIST_ORT_LIB; default .cache/native/lib/libonnxruntime.so)")
			fs.String("device", d.Device, "onnx device: auto, cpu or cuda")
			fs.String("kv-cache", d.KVCache, kvCacheHelp)
			fs.Int("threads", d.Threads, "onnx intra-op threads (0: one per core)")
			fs.Bool("allow-spinning", d.Spin, "let ONNX Runtime's threads spin while waiting for work (its default; --allow-spinning=false on a busy machine)")
			fs.String("backend", d.Backend, `gomlx backend: auto (CUDA plugin with a GPU, else XLA CPU plugin, else pure Go), go, xla:cpu, xla:cuda or xla:/abs/path/pjrt_plugin.so`)
		},
		run: func(ctx context.Context, env *cmdEnv, args []string) error {
			if len(args) > 0 {
				return usageError{"generate takes no positional arguments: pass the text with --prompt"}
			}
			cfg := defaultGenerateConfig()
			if err := env.loadConfig(&cfg, "generate"); err != nil {
				return err
			}
			return runGenerate(ctx, cfg, env.log, env.stdout)
		},
	})
}

func runGenerate(ctx context.Context, cfg generateConfig, log *slog.Logger, stdout io.Writer) error {
	tok, err := tokenizer.Load(cfg.Model)
	if err != nil {
		return err
	}
	defer tok.Close()
	prompt, err := promptIDs(cfg, tok)
	if err != nil {
		return err
	}
	stops, err := generateStopIDs(cfg.Model, tok)
	if err != nil {
		return err
	}
	gen, kind, closeGen, err := openGenerator(cfg, log)
	if err != nil {
		return err
	}
	defer closeGen()

	out := newTextOut(tok, cfg.Stop, stdout, !cfg.JSON)
	req := generation.Request{PromptIDs: prompt, MaxNewTokens: cfg.MaxNewTokens, Sampling: cfg.sampling(), StopIDs: stops}
	res, err := gen.Generate(ctx, req, out.emit)
	if err != nil {
		return err
	}
	text := out.finish()
	log.Info("generated", "engine", kind, "prompt_tokens", res.PromptTokens, "new_tokens", len(res.IDs),
		"finish", res.Finish, "ttft_ms", res.TTFT.Milliseconds(), "tokens_per_s", decodeRate(res))
	if cfg.JSON {
		ids := res.IDs
		if ids == nil {
			ids = []int{}
		}
		return json.NewEncoder(stdout).Encode(struct {
			IDs  []int  `json:"ids"`
			Text string `json:"text"`
		}{ids, text})
	}
	_, err = fmt.Fprintln(stdout)
	return err
}

// promptIDs tokenizes the prompt: plain text with BOS when raw, else the chat template with the
// system message (message contents never become control tokens).
func promptIDs(cfg generateConfig, tok *tokenizer.Tokenizer) ([]int, error) {
	if cfg.Raw {
		return tok.Encode(cfg.Prompt, true), nil
	}
	tpl, err := model.LoadChatTemplate(cfg.Model)
	if err != nil {
		return nil, fmt.Errorf("%w (use --raw to continue plain text)", err)
	}
	var msgs []model.Message
	if cfg.SystemPrompt != "" {
		msgs = append(msgs, model.Message{Role: "system", Content: cfg.SystemPrompt})
	}
	msgs = append(msgs, model.Message{Role: "user", Content: cfg.Prompt})
	text, spans, err := tpl.RenderSpans(msgs, true)
	if err != nil {
		return nil, err
	}
	return tok.EncodeRendered(text, spans, true), nil
}

// generateStopIDs are the EOS ids of generation_config.json, else config.json, else the tokenizer's.
func generateStopIDs(dir string, tok *tokenizer.Tokenizer) ([]int, error) {
	if gc, err := model.LoadGenerationConfig(dir); err == nil && len(gc.EOSTokenIDs) > 0 {
		return gc.EOSTokenIDs, nil
	}
	if mc, err := model.LoadConfig(dir); err == nil && len(mc.EOSTokenIDs()) > 0 {
		return mc.EOSTokenIDs(), nil
	}
	if tok.EOS() >= 0 {
		return []int{tok.EOS()}, nil
	}
	return nil, fmt.Errorf("%s: no eos_token_id in generation_config.json, config.json or the tokenizer; generation would never stop", dir)
}

// openGenerator opens the configured engine (auto resolved into kind); close releases it.
func openGenerator(cfg generateConfig, log *slog.Logger) (gen generation.Generator, kind string, close func(), err error) {
	kind = cfg.Engine
	if kind == genEngineAuto {
		kind = genEngineGoMLX
		if _, err := os.Stat(filepath.Join(cfg.Model, engine.ModelFile)); err == nil {
			kind = genEngineONNX
		}
	}
	switch kind {
	case genEngineONNX:
		e, err := engine.Open(engine.Config{ModelDir: cfg.Model, ORTLib: cfg.ORTLib, Device: cfg.Device, IntraOpThreads: cfg.Threads, AllowSpinning: cfg.Spin, KVCache: cfg.KVCache}, log)
		if err != nil {
			return nil, kind, nil, err
		}
		return e, kind, func() { e.Close() }, nil
	default:
		g, err := train.OpenGeneratorOn(cfg.Model, cfg.Backend, log)
		if err != nil {
			return nil, kind, nil, err
		}
		return g, kind, func() {
			if c, ok := g.(io.Closer); ok {
				c.Close()
			}
		}, nil
	}
}

// textOut turns streamed ids into text: incremental decoding, stop strings held back until they
// are ruled out, and (when streaming) each piece written as soon as it is safe.
type textOut struct {
	dec    *tokenizer.StreamDecoder
	stops  *generation.StopMatcher
	w      io.Writer
	stream bool
	text   []byte
	err    error
}

func newTextOut(tok *tokenizer.Tokenizer, stops []string, w io.Writer, stream bool) *textOut {
	return &textOut{dec: tok.NewStreamDecoder(true), stops: generation.NewStopMatcher(stops), w: w, stream: stream}
}

func (o *textOut) emit(id int) error {
	piece, stopped := o.stops.Push(o.dec.Add(id))
	o.write(piece)
	if o.err != nil {
		return o.err
	}
	if stopped {
		return generation.ErrStop
	}
	return nil
}

// finish writes what was held back and returns the whole text.
func (o *textOut) finish() string {
	if !o.stops.Stopped() {
		piece, _ := o.stops.Push(o.dec.Flush())
		o.write(piece + o.stops.Flush())
	}
	return string(o.text)
}

func (o *textOut) write(s string) {
	o.text = append(o.text, s...)
	if o.stream && s != "" && o.err == nil {
		_, o.err = io.WriteString(o.w, s)
	}
}

// decodeRate is the generation's tokens per second after the first token.
func decodeRate(r generation.Result) float64 {
	d := r.Duration - r.TTFT
	if len(r.IDs) < 2 || d <= 0 {
		return 0
	}
	return float64(len(r.IDs)-1) / d.Seconds()
}
