package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"

	"github.com/medassist/medassist/assets"
	"github.com/medassist/medassist/engine"
	"github.com/medassist/medassist/generation"
	"github.com/medassist/medassist/internal/config"
	"github.com/medassist/medassist/model"
	"github.com/medassist/medassist/tokenizer"
	"github.com/medassist/medassist/train"
)

// generateConfig is the configuration of `medassist generate`.
type generateConfig struct {
	Model             string   `koanf:"model" help:"model dir: exported (model.onnx) for onnx, Hugging Face layout for gomlx"`
	Engine            string   `koanf:"engine" help:"onnx, gomlx, or auto (onnx when the dir holds model.onnx)"`
	Prompt            string   `koanf:"prompt" help:"the user's message (or, with --raw, the text to continue)"`
	Raw               bool     `koanf:"raw" help:"tokenize the prompt as plain text with BOS, without the chat template"`
	SystemPrompt      string   `koanf:"system-prompt" help:"system message of the chat (\"\": none)"`
	MaxNewTokens      int      `koanf:"max-new-tokens" help:"most tokens to generate"`
	Temperature       float64  `koanf:"temperature" help:"sampling temperature (0: greedy)"`
	TopK              int      `koanf:"top-k" help:"sample from the K most likely tokens (0: off)"`
	TopP              float64  `koanf:"top-p" help:"sample from the smallest set of tokens holding probability P (0 or 1: off)"`
	RepetitionPenalty float64  `koanf:"repetition-penalty" help:"penalty for tokens already in the text (1: off)"`
	Seed              int64    `koanf:"seed" help:"sampling seed (0: random)"`
	Stop              []string `koanf:"stop" help:"stop strings"`
	JSON              bool     `koanf:"json" help:"print {\"ids\":[new ids],\"text\":\"...\"} instead of streaming text"`
	// Engine settings.
	ORT     ortConfig `koanf:",squash"`
	Backend string    `koanf:"backend" help:"gomlx backend: auto (CUDA plugin with a GPU, else XLA CPU plugin, else pure Go), go, xla:cpu, xla:cuda or xla:/abs/path/pjrt_plugin.so"`
}

func defaultGenerateConfig() generateConfig {
	return generateConfig{Engine: model.EngineAuto, SystemPrompt: assets.SystemPrompt(), MaxNewTokens: 128,
		RepetitionPenalty: 1, ORT: defaultORTConfig(), Backend: train.BackendAuto}
}

func (c generateConfig) sampling() generation.Sampling {
	return generation.Sampling{Temperature: c.Temperature, TopK: c.TopK, TopP: c.TopP,
		RepetitionPenalty: c.RepetitionPenalty, Seed: c.Seed}
}

// Validate names every bad field.
func (c generateConfig) Validate() error {
	return config.Join(
		config.Check(c.Model != "", "model", c.Model, "a model dir: exported (model.onnx) for onnx, Hugging Face layout for gomlx"),
		config.Check(c.Engine == model.EngineAuto || c.Engine == model.EngineONNX || c.Engine == model.EngineGoMLX, "engine", c.Engine, "one of auto, onnx, gomlx"),
		config.Check(c.Prompt != "", "prompt", c.Prompt, "the text to continue or the question to answer"),
		config.Check(c.MaxNewTokens >= 1, "max-new-tokens", c.MaxNewTokens, ">= 1"),
		config.Check(c.Temperature >= 0, "temperature", c.Temperature, ">= 0 (0 is greedy)"),
		config.Check(c.TopK >= 0, "top-k", c.TopK, ">= 0 (0: off)"),
		config.Check(c.TopP >= 0 && c.TopP <= 1, "top-p", c.TopP, "between 0 and 1 (0 or 1: off)"),
		config.Check(c.RepetitionPenalty >= 0, "repetition-penalty", c.RepetitionPenalty, ">= 0 (1: off)"),
		c.ORT.validate(),
	)
}

func init() {
	register(&command{
		name:    "generate",
		summary: "generate text from a prompt with the ONNX (exported) or GoMLX (HF layout) engine",
		usage:   "--model DIR --prompt TEXT [--engine onnx|gomlx] [--raw] [--max-new-tokens N] [--temperature T] [--seed S] [--json]",
		flags:   structFlags(defaultGenerateConfig()),
		run: flagsOnly("generate", ": pass the text with --prompt", defaultGenerateConfig, func(ctx context.Context, env *cmdEnv, cfg generateConfig) error {
			return runGenerate(ctx, cfg, env.log, env.stdout)
		}),
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
	stops, err := model.StopIDs(cfg.Model, tok.EOS())
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

// openGenerator opens the configured engine (auto resolved into kind); close releases it.
func openGenerator(cfg generateConfig, log *slog.Logger) (gen generation.Generator, kind string, close func(), err error) {
	kind = model.ResolveEngine(cfg.Engine, cfg.Model)
	switch kind {
	case model.EngineONNX:
		e, err := engine.Open(cfg.ORT.engineConfig(cfg.Model), log)
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
	ts     *generation.TextStream
	w      io.Writer
	stream bool
	text   []byte
	err    error
}

func newTextOut(tok *tokenizer.Tokenizer, stops []string, w io.Writer, stream bool) *textOut {
	return &textOut{ts: generation.NewTextStream(tok.NewStreamDecoder(true), stops), w: w, stream: stream}
}

func (o *textOut) emit(id int) error {
	piece, stopped := o.ts.Push(id)
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
	tail, _ := o.ts.Close()
	o.write(tail)
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
