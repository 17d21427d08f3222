package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

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
	Model        string `koanf:"model" help:"fine-tuned model dir: HF layout (merged) or exported (model.onnx)"`
	Base         string `koanf:"base" help:"base model dir to compare with (optional)"`
	Data         string `koanf:"data" help:"flashcard file the model was trained on (JSON, JSON Lines or Parquet)"`
	Out          string `koanf:"out" help:"results JSON file (a dir gets evaluation_results.json)"`
	Engine       string `koanf:"engine" help:"auto (onnx when a dir holds model.onnx, else gomlx), onnx or gomlx"`
	MaxExamples  int    `koanf:"max-examples" help:"validation examples answered greedily and scored with ROUGE (0: all)"`
	MaxNewTokens int    `koanf:"max-new-tokens" help:"longest generated answer, in tokens"`
	// MaxPerplexityExamples bounds the validation examples scored for perplexity (0: all).
	MaxPerplexityExamples int    `koanf:"max-perplexity-examples" help:"validation examples scored for perplexity (0: all)"`
	Prompts               string `koanf:"prompts" help:"manual test prompts, one per line ('#' comments); default: the built-in set"`
	Report                string `koanf:"report" help:"also write a Markdown report with SVG plots into this dir"`
	TrainDir              string `koanf:"train-dir" help:"finished training run dir (medassist train --out, or OUT/runs/NAME of a sweep): the split settings are the run's (its summary.json; different ones are refused) and the report plots its metrics.csv"`
	// The trainer's split settings (medassist train's flags of the same meaning).
	MaxLength       int     `koanf:"max-length" help:"split setting (with --train-dir, the run's; another value is refused): tokens per example"`
	ValFraction     float64 `koanf:"val-fraction" help:"split setting (with --train-dir, the run's; another value is refused): validation share"`
	Seed            int64   `koanf:"seed" help:"split setting (with --train-dir, the run's; another value is refused): shuffle and split seed"`
	DataMaxExamples int     `koanf:"data-max-examples" help:"split setting, medassist train's --max-examples (with --train-dir, the run's; another value is refused; 0: all)"`
	SystemPrompt    string  `koanf:"system-prompt" help:"split setting (with --train-dir, the run's; another value is refused): the system message"`
	// Engine settings.
	Backend string    `koanf:"backend" help:"GoMLX backend (gomlx engine): auto (CUDA plugin with a GPU, else XLA CPU plugin, else pure Go), go, xla:cpu, xla:cuda or xla:/abs/path/pjrt_plugin.so"`
	ORT     ortConfig `koanf:",squash"`
}

func defaultEvalConfig() evalConfig {
	c := evalConfig{Engine: model.EngineAuto, MaxExamples: 50, MaxNewTokens: 128, ORT: defaultORTConfig(), Backend: train.BackendAuto}
	c.setSplit(data.DefaultSplit())
	return c
}

// dataConfig is the trainer's data configuration these settings re-make.
func (c evalConfig) dataConfig() data.Config {
	return data.Config{Path: c.Data, Split: c.split()}
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
		c.ORT.validate(),
		c.dataConfig().Validate(),
	)
}

func init() {
	register(&command{
		name:    "eval",
		summary: "perplexity and ROUGE of a fine-tuned model on the validation split, side by side with its base",
		usage:   "--model DIR --data FILE --out FILE [--base DIR] [--report DIR --train-dir DIR]",
		flags:   structFlags(defaultEvalConfig()),
		run: flagsOnly("eval", "", defaultEvalConfig, func(ctx context.Context, env *cmdEnv, cfg evalConfig) error {
			given, err := env.explicit("eval")
			if err != nil {
				return err
			}
			if err := useTrainSplit(&cfg, given); err != nil {
				return err
			}
			env.log.Info("validation split", "train_dir", cfg.TrainDir, "split", cfg.split())
			return runEval(ctx, cfg, env)
		}),
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

// split is the data split these settings make.
func (c evalConfig) split() data.Split {
	return data.Split{MaxLength: c.MaxLength, MaxExamples: c.DataMaxExamples, ValFraction: c.ValFraction,
		Seed: c.Seed, SystemPrompt: c.SystemPrompt}
}

// setSplit sets the split settings to s.
func (c *evalConfig) setSplit(s data.Split) {
	c.MaxLength, c.DataMaxExamples, c.ValFraction, c.Seed, c.SystemPrompt = s.MaxLength, s.MaxExamples, s.ValFraction, s.Seed, s.SystemPrompt
}

// useTrainSplit makes cfg score the validation split of the training run in cfg.TrainDir, the
// split its summary records. Split settings the user gave (given: keys set by --config, the
// environment or flags) must equal the run's, and --data must be the run's flashcard file (same
// SHA-256): another split would score training examples, so it is refused. Settings left unset
// take the run's values.
func useTrainSplit(cfg *evalConfig, given map[string]bool) error {
	if cfg.TrainDir == "" {
		return nil
	}
	s, ok, err := eval.ReadTrainSummary(cfg.TrainDir)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("train-dir %s has no %s: not a finished medassist train run (re-run the same train command to finish it)", cfg.TrainDir, eval.TrainSummaryFile)
	}
	if s.Split == nil {
		return s.CheckSplit(cfg.split())
	}
	asked, mine := *s.Split, cfg.split()
	if given["max-length"] {
		asked.MaxLength = mine.MaxLength
	}
	if given["data-max-examples"] {
		asked.MaxExamples = mine.MaxExamples
	}
	if given["val-fraction"] {
		asked.ValFraction = mine.ValFraction
	}
	if given["seed"] {
		asked.Seed = mine.Seed
	}
	if given["system-prompt"] {
		asked.SystemPrompt = mine.SystemPrompt
	}
	if err := s.CheckSplit(asked); err != nil {
		return usageError{err.Error()}
	}
	if err := s.CheckData(cfg.Data); err != nil {
		return usageError{err.Error()}
	}
	cfg.setSplit(*s.Split)
	return nil
}

// attachTrainSummary records the training run's own perplexities and warns when its base
// perplexity differs from this evaluation's although the split settings are the run's: then the
// data file differs from the one the run was trained on.
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
		log.Warn("the training run measured another base perplexity on the same split settings: is --data the file the run was trained on?",
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
	e, err := engine.Open(cfg.ORT.engineConfig(dir), log)
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
