package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spf13/pflag"

	"github.com/medassist/medassist/assets"
	"github.com/medassist/medassist/engine"
	"github.com/medassist/medassist/eval"
	"github.com/medassist/medassist/generation"
	"github.com/medassist/medassist/internal/config"
	"github.com/medassist/medassist/model"
	"github.com/medassist/medassist/train"
	"github.com/medassist/medassist/train/data"
)

// evalConfig is the configuration of `medassist eval`.
type evalConfig struct {
	Model        string `koanf:"model"`
	Base         string `koanf:"base"`
	Data         string `koanf:"data"`
	Out          string `koanf:"out"`
	Engine       string `koanf:"engine"`
	MaxExamples  int    `koanf:"max-examples"`
	MaxNewTokens int    `koanf:"max-new-tokens"`
	// MaxPerplexityExamples bounds the validation examples scored for perplexity (0: all).
	MaxPerplexityExamples int    `koanf:"max-perplexity-examples"`
	Prompts               string `koanf:"prompts"`
	Report                string `koanf:"report"`
	TrainDir              string `koanf:"train-dir"`
	// The trainer's split settings (medassist train's flags of the same meaning).
	MaxLength       int     `koanf:"max-length"`
	ValFraction     float64 `koanf:"val-fraction"`
	Seed            int64   `koanf:"seed"`
	DataMaxExamples int     `koanf:"data-max-examples"`
	SystemPrompt    string  `koanf:"system-prompt"`
	// Engine settings.
	Backend string `koanf:"backend"`
	ORTLib  string `koanf:"ort-lib"`
	Device  string `koanf:"device"`
	Threads int    `koanf:"threads"`
}

func defaultEvalConfig() evalConfig {
	d := data.DefaultConfig()
	return evalConfig{
		Engine: model.EngineAuto, MaxExamples: 50, MaxNewTokens: 128, Device: engine.DeviceAuto,
		MaxLength: d.MaxLength, ValFraction: d.ValFraction, Seed: d.Seed, DataMaxExamples: d.MaxExamples,
		SystemPrompt: d.SystemPrompt,
	}
}

// dataConfig is the trainer's data configuration these settings re-make.
func (c evalConfig) dataConfig() data.Config {
	return data.Config{Path: c.Data, MaxLength: c.MaxLength, MaxExamples: c.DataMaxExamples,
		ValFraction: c.ValFraction, Seed: c.Seed, SystemPrompt: c.SystemPrompt}
}

// Validate names every bad field.
func (c evalConfig) Validate() error {
	return config.Join(
		config.Check(c.Model != "", "model", c.Model, "the fine-tuned model dir (HF layout, or exported with model.onnx)"),
		config.Check(c.Data != "", "data", c.Data, "the flashcard file the model was trained on"),
		config.Check(c.Out != "", "out", c.Out, "the JSON file to write (a dir gets "+eval.ResultsFile+")"),
		config.Check(c.Engine == model.EngineAuto || c.Engine == model.EngineONNX || c.Engine == model.EngineGoMLX, "engine", c.Engine, "one of auto, onnx, gomlx"),
		config.Check(c.MaxExamples >= 0, "max-examples", c.MaxExamples, ">= 0 (0: every validation example)"),
		config.Check(c.MaxNewTokens >= 1, "max-new-tokens", c.MaxNewTokens, ">= 1"),
		config.Check(c.MaxPerplexityExamples >= 0, "max-perplexity-examples", c.MaxPerplexityExamples, ">= 0 (0: every validation example)"),
		config.Check(c.Device == engine.DeviceAuto || c.Device == engine.DeviceCPU || c.Device == engine.DeviceCUDA, "device", c.Device, "one of auto, cpu, cuda"),
		config.Check(c.Threads >= 0, "threads", c.Threads, ">= 0 (0: ONNX Runtime's default)"),
		c.dataConfig().Validate(),
	)
}

func init() {
	register(&command{
		name:    "eval",
		summary: "perplexity and ROUGE of a fine-tuned model on the validation split, side by side with its base",
		usage:   "--model DIR --data FILE --out FILE [--base DIR] [--report DIR --train-dir DIR]",
		flags: func(fs *pflag.FlagSet) {
			d := defaultEvalConfig()
			fs.String("model", d.Model, "fine-tuned model dir: HF layout (merged) or exported (model.onnx)")
			fs.String("base", d.Base, "base model dir to compare with (optional)")
			fs.String("data", d.Data, "flashcard file the model was trained on (JSON, JSON Lines or Parquet)")
			fs.String("out", d.Out, "results JSON file (a dir gets "+eval.ResultsFile+")")
			fs.String("engine", d.Engine, "auto (onnx when a dir holds model.onnx, else gomlx), onnx or gomlx")
			fs.Int("max-examples", d.MaxExamples, "validation examples answered greedily and scored with ROUGE (0: all)")
			fs.Int("max-new-tokens", d.MaxNewTokens, "longest generated answer, in tokens")
			fs.Int("max-perplexity-examples", d.MaxPerplexityExamples, "validation examples scored for perplexity (0: all)")
			fs.String("prompts", d.Prompts, "manual test prompts, one per line ('#' comments); default: the built-in set")
			fs.String("report", d.Report, "also write a Markdown report with SVG plots into this dir")
			fs.String("train-dir", d.TrainDir, "training run dir (medassist train --out): the report plots its metrics.csv, and split settings left at their defaults take the run's (summary.json)")
			fs.Int("max-length", d.MaxLength, "split setting, as given to medassist train: tokens per example")
			fs.Float64("val-fraction", d.ValFraction, "split setting, as given to medassist train: validation share")
			fs.Int64("seed", d.Seed, "split setting, as given to medassist train: shuffle and split seed")
			fs.Int("data-max-examples", d.DataMaxExamples, "split setting, medassist train's --max-examples (0: all)")
			fs.String("system-prompt", d.SystemPrompt, "split setting, as given to medassist train: the system message")
			fs.String("backend", d.Backend, `GoMLX backend: "go" (pure Go, CPU) or "xla:/abs/path/pjrt_plugin.so"`)
			fs.String("ort-lib", d.ORTLib, "ONNX Runtime shared library (env MEDASSIST_ORT_LIB)")
			fs.String("device", d.Device, "ONNX Runtime device: auto (CUDA when available, else CPU), cpu or cuda")
			fs.Int("threads", d.Threads, "ONNX Runtime intra-op threads (0: its default)")
		},
		run: func(ctx context.Context, env *cmdEnv, args []string) error {
			if len(args) > 0 {
				return usageError{"eval takes no positional arguments"}
			}
			cfg := defaultEvalConfig()
			if err := env.loadConfig(&cfg, "eval"); err != nil {
				return err
			}
			if err := adoptTrainSplit(&cfg, env.fs, env.log); err != nil {
				return err
			}
			return runEval(ctx, cfg, env)
		},
	})
}

func runEval(ctx context.Context, cfg evalConfig, env *cmdEnv) error {
	start := time.Now()
	prompts, err := evalPrompts(cfg.Prompts)
	if err != nil {
		return err
	}
	var metrics *eval.Metrics
	if cfg.Report != "" && cfg.TrainDir != "" {
		if metrics, err = eval.ReadMetrics(filepath.Join(cfg.TrainDir, eval.MetricsFile)); err != nil {
			return err
		}
	}
	prep, err := eval.Prepare(eval.InputConfig{
		Data: cfg.dataConfig(), TextDir: cfg.Model, Samples: cfg.MaxExamples,
		PerplexityExamples: cfg.MaxPerplexityExamples, Prompts: prompts,
	}, env.log)
	if err != nil {
		return err
	}
	defer prep.Close()
	opt := eval.Options{MaxNewTokens: cfg.MaxNewTokens}
	fine, base, err := evaluateSides(ctx, cfg, prep.Inputs, opt, env.log)
	if err != nil {
		return err
	}
	res, err := eval.Assemble(fine, base, prep.Inputs, opt, prep.Split, cfg.Data)
	if err != nil {
		return err
	}
	if err := attachTrainSummary(res, cfg.TrainDir, env.log); err != nil {
		return err
	}
	res.Timings.PrepareS = prep.Elapsed.Seconds()
	res.Timings.TotalS = time.Since(start).Seconds()
	if err := writeEvalOutputs(cfg, res, metrics, env.log); err != nil {
		return err
	}
	fmt.Fprintln(env.stdout, summaryLine(res))
	return nil
}

// evalPrompts reads the manual prompts from path, or returns the built-in set when path is "".
func evalPrompts(path string) ([]string, error) {
	if path == "" {
		return assets.EvalPrompts(), nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("prompts: %w", err)
	}
	return assets.ParsePromptLines(string(b)), nil
}

// evaluateSides evaluates the base model (when given) and then the fine-tuned one, one model in
// memory at a time.
func evaluateSides(ctx context.Context, cfg evalConfig, in eval.Inputs, opt eval.Options, log *slog.Logger) (fine, base *eval.SideResult, err error) {
	open := func(dir string) func(context.Context) (*eval.Model, error) {
		return func(ctx context.Context) (*eval.Model, error) { return openEvalModel(ctx, cfg, dir, log) }
	}
	if cfg.Base != "" {
		base, err = eval.EvaluateSide(ctx, eval.Side{Name: eval.SideBase, Dir: cfg.Base, Open: open(cfg.Base)}, in, opt, log)
		if err != nil {
			return nil, nil, err
		}
	}
	fine, err = eval.EvaluateSide(ctx, eval.Side{Name: eval.SideFineTuned, Dir: cfg.Model, Open: open(cfg.Model)}, in, opt, log)
	if err != nil {
		return nil, nil, err
	}
	return fine, base, nil
}

// writeEvalOutputs writes the results JSON (into a dir when --out names one) and the report.
func writeEvalOutputs(cfg evalConfig, res *eval.Results, metrics *eval.Metrics, log *slog.Logger) error {
	out := cfg.Out
	if st, err := os.Stat(out); (err == nil && st.IsDir()) || strings.HasSuffix(out, string(os.PathSeparator)) {
		out = filepath.Join(out, eval.ResultsFile)
	}
	if err := res.Write(out); err != nil {
		return err
	}
	log.Info("results written", "out", out, "total_s", res.Timings.TotalS)
	if cfg.Report == "" {
		return nil
	}
	files, err := eval.WriteReport(cfg.Report, res, metrics)
	if err != nil {
		return err
	}
	log.Info("report written", "dir", cfg.Report, "files", len(files))
	return nil
}

// trainSplitKeys maps the split settings medassist train records (its flag names) to eval's flags.
var trainSplitKeys = map[string]string{
	"max-examples": "data-max-examples", "max-length": "max-length", "seed": "seed",
	"val-fraction": "val-fraction", "system-prompt": "system-prompt",
}

// adoptTrainSplit gives every split setting left at its default the value the training run in
// cfg.TrainDir used (its summary.json), so that eval scores the run's own validation split.
func adoptTrainSplit(cfg *evalConfig, fs *pflag.FlagSet, log *slog.Logger) error {
	if cfg.TrainDir == "" {
		return nil
	}
	s, ok, err := eval.ReadTrainSummary(cfg.TrainDir)
	if err != nil || !ok {
		return err
	}
	d := defaultEvalConfig()
	for trainKey, flag := range trainSplitKeys {
		v, recorded := s.Config[trainKey]
		if !recorded || fs.Changed(flag) {
			continue
		}
		var err error
		switch flag {
		case "data-max-examples":
			err = adopt(&cfg.DataMaxExamples, d.DataMaxExamples, v, strconv.Atoi)
		case "max-length":
			err = adopt(&cfg.MaxLength, d.MaxLength, v, strconv.Atoi)
		case "seed":
			err = adopt(&cfg.Seed, d.Seed, v, func(s string) (int64, error) { return strconv.ParseInt(s, 10, 64) })
		case "val-fraction":
			err = adopt(&cfg.ValFraction, d.ValFraction, v, func(s string) (float64, error) { return strconv.ParseFloat(s, 64) })
		case "system-prompt":
			err = adopt(&cfg.SystemPrompt, d.SystemPrompt, v, func(s string) (string, error) { return s, nil })
		}
		if err != nil {
			return fmt.Errorf("%s: %s = %q: %w", filepath.Join(cfg.TrainDir, eval.TrainSummaryFile), trainKey, v, err)
		}
	}
	log.Info("validation split", "from", cfg.TrainDir, "data_max_examples", cfg.DataMaxExamples, "max_length", cfg.MaxLength,
		"seed", cfg.Seed, "val_fraction", cfg.ValFraction)
	if err := cfg.Validate(); err != nil {
		return usageError{err.Error()}
	}
	return nil
}

// adopt sets *dst to the parsed recorded value when *dst still holds the default.
func adopt[T comparable](dst *T, def T, recorded string, parse func(string) (T, error)) error {
	if *dst != def {
		return nil
	}
	v, err := parse(recorded)
	if err != nil {
		return err
	}
	*dst = v
	return nil
}

// attachTrainSummary records the training run's own perplexities and warns when its base
// perplexity differs from this evaluation's: then the two did not score the same validation split.
func attachTrainSummary(res *eval.Results, dir string, log *slog.Logger) error {
	if dir == "" {
		return nil
	}
	s, ok, err := eval.ReadTrainSummary(dir)
	if err != nil || !ok {
		return err
	}
	res.Training = s
	if !s.SplitMatches(res.Perplexity.Base) {
		log.Warn("the training run measured another base perplexity on its validation split: pass eval the split settings the run used (--data-max-examples, --max-length, --seed, --val-fraction, --system-prompt)",
			"train_dir", dir, "train_base_perplexity", s.BaseValPPL, "eval_base_perplexity", *res.Perplexity.Base)
	}
	return nil
}

// summaryLine is the one line printed on success.
func summaryLine(r *eval.Results) string {
	s := fmt.Sprintf("fine-tuned: perplexity %.3f, ROUGE-1/2/L F1 %.4f/%.4f/%.4f",
		r.Perplexity.FineTuned, r.Rouge.FineTuned.Rouge1.F1, r.Rouge.FineTuned.Rouge2.F1, r.Rouge.FineTuned.RougeL.F1)
	if b := r.Rouge.Base; b != nil {
		s = fmt.Sprintf("base: perplexity %.3f, ROUGE-1/2/L F1 %.4f/%.4f/%.4f; %s; perplexity change %+.1f%%",
			*r.Perplexity.Base, b.Rouge1.F1, b.Rouge2.F1, b.RougeL.F1, s, *r.Perplexity.ChangePct)
	}
	return s
}

// openEvalModel opens dir on its engine.
func openEvalModel(ctx context.Context, cfg evalConfig, dir string, log *slog.Logger) (*eval.Model, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	stop, err := model.StopIDs(dir, -1) // no tokenizer is loaded here: EOS comes from the model files
	if err != nil {
		return nil, err
	}
	switch engine := model.ResolveEngine(cfg.Engine, dir); engine {
	case model.EngineONNX:
		return openEvalONNX(cfg, dir, stop, log)
	case model.EngineGoMLX:
		return openEvalGoMLX(cfg, dir, stop, log)
	default:
		return nil, fmt.Errorf("engine %q: must be onnx or gomlx", engine)
	}
}

// openEvalONNX opens an exported dir in ONNX Runtime: the engine both generates and returns the
// logits that perplexity is computed from.
func openEvalONNX(cfg evalConfig, dir string, stop []int, log *slog.Logger) (*eval.Model, error) {
	e, err := engine.Open(engine.Config{ModelDir: dir, ORTLib: cfg.ORTLib, Device: cfg.Device, IntraOpThreads: cfg.Threads}, log)
	if err != nil {
		return nil, err
	}
	return &eval.Model{
		Engine: model.EngineONNX + "/" + e.Device(), Scorer: eval.LogitsScorer{Forward: e.Forward, Log: log},
		Gen: e, StopIDs: stop, Close: e.Close,
	}, nil
}

// openEvalGoMLX runs an HF-layout dir on GoMLX: train.Perplexity scores (it loads the weights
// for the call and lets them go), then the generator loads them for the answers. Loading the
// generator lazily keeps one copy of a large model in memory at a time.
func openEvalGoMLX(cfg evalConfig, dir string, stop []int, log *slog.Logger) (*eval.Model, error) {
	if _, err := model.LoadConfig(dir); err != nil {
		return nil, fmt.Errorf("%w (engine gomlx reads an HF-layout dir; an exported dir with %s runs on --engine onnx)", err, model.OnnxModelFile)
	}
	score := func(ctx context.Context, examples []data.Example) (float64, error) {
		return train.Perplexity(ctx, dir, "", examples, cfg.Backend)
	}
	gen := &lazyGenerator{open: func() (generation.Generator, error) { return train.OpenGeneratorOn(dir, cfg.Backend, log) }}
	return &eval.Model{Engine: model.EngineGoMLX, Scorer: eval.PerplexityScorer(score), Gen: gen, StopIDs: stop}, nil
}

// lazyGenerator opens its generator on the first call.
type lazyGenerator struct {
	once sync.Once
	open func() (generation.Generator, error)
	gen  generation.Generator
	err  error
}

func (l *lazyGenerator) Generate(ctx context.Context, req generation.Request, emit func(id int) error) (generation.Result, error) {
	l.once.Do(func() { l.gen, l.err = l.open() })
	if l.err != nil {
		return generation.Result{}, l.err
	}
	return l.gen.Generate(ctx, req, emit)
}
