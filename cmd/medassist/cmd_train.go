package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"go.yaml.in/yaml/v3"

	"github.com/medassist/medassist/eval"
	"github.com/medassist/medassist/internal/config"
	"github.com/medassist/medassist/model"
	"github.com/medassist/medassist/tokenizer"
	"github.com/medassist/medassist/train"
	"github.com/medassist/medassist/train/data"
	"github.com/medassist/medassist/train/merge"
)

// trainOptions is the configuration of `medassist train`: the data preparation and the training
// run (base and output dirs included), or a sweep of them. Keys are the flag names; data.Config and
// train.Config are flattened into it (both read the one seed).
type trainOptions struct {
	Sweep string       `koanf:"sweep"`
	Data  data.Config  `koanf:",squash"`
	Train train.Config `koanf:",squash"`
}

func defaultTrainOptions() trainOptions {
	return trainOptions{Data: data.DefaultConfig(), Train: train.DefaultConfig()}
}

// Validate names every bad field. With a sweep only the output is checked here: each variant is
// validated once the sweep's values are applied.
func (o trainOptions) Validate() error {
	if o.Sweep != "" {
		return config.Check(o.Train.Out != "", "out", o.Train.Out, "the sweep's output dir (runs/, experiment_results.csv, best.txt, adapter/, merged/)")
	}
	return config.Join(o.Data.Validate(), o.Train.Validate())
}

// trainFlagHelp documents the flags (a field's help tag, when it has one, wins).
var trainFlagHelp = map[string]string{
	"base":             "base model dir (HF layout: config.json, safetensors weights, tokenizer files)",
	"out":              "output dir: adapter/ (PEFT LoRA), merged/ (HF layout), metrics.csv, checkpoints/; re-running resumes",
	"targets":          "LoRA target projections: q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj",
	"rank":             "LoRA rank r",
	"alpha":            "LoRA alpha (the update is scaled by alpha/r)",
	"dropout":          "dropout on the adapters' input (PEFT's lora_dropout)",
	"lr":               "peak learning rate (AdamW)",
	"warmup-steps":     "optimizer steps of linear warmup from 0",
	"schedule":         "learning-rate schedule after warmup: cosine, linear or constant",
	"weight-decay":     "AdamW's decoupled weight decay",
	"batch-size":       "examples per micro-batch",
	"grad-accum":       "micro-batches per optimizer step (gradient accumulation)",
	"epochs":           "passes over the training examples",
	"clip-norm":        "global gradient-norm clipping (0: off)",
	"eval-every":       "optimizer steps between validations (0: at epoch ends only)",
	"checkpoint-every": "optimizer steps between checkpoints (0: at epoch ends only)",
	"keep-checkpoints": "newest checkpoints kept on disk",
	"backend":          `GoMLX backend: "auto" (the CUDA PJRT plugin with a GPU, else XLA's CPU plugin, else pure Go; make setup installs the plugins), "go", "xla:cpu", "xla:cuda" or "xla:/abs/path/to/pjrt_plugin.so"`,
	"sweep":            "YAML file with several configurations (defaults + named variants, keys as flags, no base/data/out): they sit just above the flag defaults, so --config, MEDASSIST_* and flags override them; runs go to OUT/runs/NAME, results to OUT/experiment_results.csv",
	"data":             "flashcard file: JSON array, JSON Lines or Parquet with fields instruction, input (question), output (answer)",
	"max-length":       "tokens per example, prompt included; longer examples lose the question's tail first",
	"max-examples":     "use a seeded random subset of this many examples (0: all)",
	"val-fraction":     "share of the examples held out for validation perplexity",
	"seed":             "seed of the data shuffle and split, LoRA initialisation and dropout",
	"system-prompt":    "system message of every training conversation (\"\" for none)",
}

func init() {
	register(&command{
		name:    "train",
		summary: "LoRA fine-tuning (GoMLX): prepare data, train with checkpoints, merge; --sweep compares configurations",
		usage:   "--base DIR --data FILE --out DIR",
		flags:   structFlags(defaultTrainOptions(), "base", "data", "out", "sweep"),
		run: flagsOnly("train", "", defaultTrainOptions, func(ctx context.Context, env *cmdEnv, opts trainOptions) error {
			if opts.Sweep != "" {
				return runSweep(ctx, opts, env)
			}
			sum, err := trainOne(ctx, opts, env.log)
			if err != nil {
				return err
			}
			printSummary(env.stdout, opts.Train.Out, sum)
			return nil
		}),
	})
}

// formatValue writes a config value as a CSV cell.
func formatValue(v reflect.Value) string {
	switch {
	case v.Type() == durationType:
		return time.Duration(v.Int()).String()
	case v.Kind() == reflect.Slice:
		parts := make([]string, v.Len())
		for i := range parts {
			parts[i] = fmt.Sprint(v.Index(i).Interface())
		}
		return strings.Join(parts, ",")
	case v.Kind() == reflect.Float64 || v.Kind() == reflect.Float32:
		return strconv.FormatFloat(v.Float(), 'g', -1, 64)
	}
	return fmt.Sprint(v.Interface())
}

// ---- one training run -----------------------------------------------------------------------

// Output layout of a training run (the train command's contract).
const (
	adapterDirName = train.AdapterDir
	mergedDirName  = "merged"
)

// trainOne prepares the data, trains (train.Run resumes from OUT/checkpoints), and merges the
// best adapter into OUT/merged.
func trainOne(ctx context.Context, opts trainOptions, log *slog.Logger) (eval.TrainSummary, error) {
	ds, err := prepareData(opts, log)
	if err != nil {
		return eval.TrainSummary{}, err
	}
	sum, err := runTraining(ctx, opts, ds, log)
	if err != nil {
		return eval.TrainSummary{}, err
	}
	out := opts.Train.Out
	if err := merge.Merge(opts.Train.Base, filepath.Join(out, adapterDirName), filepath.Join(out, mergedDirName), log); err != nil {
		return eval.TrainSummary{}, err
	}
	return sum, writeJSON(filepath.Join(out, eval.TrainSummaryFile), sum)
}

// prepareData loads the base's tokenizer and chat template and prepares opts.Data.
func prepareData(opts trainOptions, log *slog.Logger) (*data.Dataset, error) {
	tok, err := tokenizer.Load(opts.Train.Base)
	if err != nil {
		return nil, err
	}
	defer tok.Close()
	tpl, err := model.LoadChatTemplate(opts.Train.Base)
	if err != nil {
		return nil, err
	}
	return data.Prepare(opts.Data, tok, tpl, log)
}

// runTraining runs train.Run into opts.Train.Out and reads off its summary.
func runTraining(ctx context.Context, opts trainOptions, ds *data.Dataset, log *slog.Logger) (eval.TrainSummary, error) {
	res, err := train.Run(ctx, opts.Train, ds, log)
	if err != nil {
		return eval.TrainSummary{}, err
	}
	dataSum, err := data.FileSHA256(opts.Data.Path)
	if err != nil {
		return eval.TrainSummary{}, err
	}
	return eval.TrainSummary{
		BaseValPPL:    res.BaseValPerplexity,
		EpochValPPL:   res.ValPerplexity,
		BestValPPL:    res.BestPerplexity,
		WallSeconds:   res.WallTime.Seconds(),
		TokensPerSec:  res.TokensPerSecond,
		TrainExamples: len(ds.Train),
		ValExamples:   len(ds.Val),
		Split:         &opts.Data.Split,
		DataSHA256:    dataSum,
		Backend:       res.Backend,
		Config:        configValues(opts),
	}, nil
}

// configValues is opts as key → value text, without the keys that only place the output.
func configValues(opts trainOptions) map[string]string {
	v := reflect.ValueOf(opts)
	out := map[string]string{}
	for _, f := range configFields(v.Type()) {
		if !placementKey(f.Key) {
			out[f.Key] = formatValue(v.FieldByIndex(f.Index))
		}
	}
	return out
}

// placementKey reports keys that say where outputs go rather than what is trained.
func placementKey(k string) bool { return k == "out" || k == "sweep" }

func printSummary(w io.Writer, out string, s eval.TrainSummary) {
	change := 100 * (s.BestValPPL - s.BaseValPPL) / s.BaseValPPL
	fmt.Fprintf(w, "validation perplexity (answer tokens, %d examples): base %.2f → fine-tuned %.2f (%+.1f%%)\n",
		s.ValExamples, s.BaseValPPL, s.BestValPPL, change)
	fmt.Fprintf(w, "per epoch: %s; %d training examples; %.0f s; %.0f tokens/s on %s\n",
		joinFloats(s.EpochValPPL, "%.2f", " "), s.TrainExamples, s.WallSeconds, s.TokensPerSec, s.Backend)
	fmt.Fprintf(w, "adapter: %s\nmerged model: %s\n", filepath.Join(out, adapterDirName), filepath.Join(out, mergedDirName))
}

func joinFloats(v []float64, format, sep string) string {
	parts := make([]string, len(v))
	for i, x := range v {
		parts[i] = fmt.Sprintf(format, x)
	}
	return strings.Join(parts, sep)
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// ---- sweeps ---------------------------------------------------------------------------------

// sweepFile is a sweep YAML: defaults apply to every variant, each variant overrides some keys
// (flag names) and has a name (its run dir under OUT/runs).
type sweepFile struct {
	Defaults map[string]any   `yaml:"defaults"`
	Variants []map[string]any `yaml:"variants"`
}

// sweepVariant is one resolved configuration of a sweep.
type sweepVariant struct {
	Name string
	Opts trainOptions
}

var variantName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// Sweep outputs inside OUT.
const (
	runsDirName     = "runs"
	resultsFileName = "experiment_results.csv"
	bestFileName    = "best.txt"
)

// loadSweep reads a sweep file and resolves each variant into out/runs/NAME. The sweep's values
// are the variant's own defaults, so a variant's configuration is, each layer overriding the ones
// before it: flag defaults < the sweep's defaults < the variant's values < the --config file
// (configPath) < MEDASSIST_* environment < flags given on the command line (fs). A key that a layer
// above the sweep sets, and that the variants vary, makes them alike: that is logged as a warning.
func loadSweep(path, out, configPath string, fs *pflag.FlagSet, log *slog.Logger) ([]sweepVariant, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("sweep: %w", err)
	}
	var sf sweepFile
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	dec.KnownFields(true)
	if err := dec.Decode(&sf); err != nil {
		return nil, fmt.Errorf("sweep %s: %w (expected the keys defaults and variants)", path, err)
	}
	if len(sf.Variants) == 0 {
		return nil, fmt.Errorf("sweep %s: no variants", path)
	}
	fields := map[string]configField{}
	for _, f := range configFields(reflect.TypeOf(trainOptions{})) {
		fields[f.Key] = f
	}
	if err := checkSweepKeys(sf.Defaults, fields, "defaults"); err != nil {
		return nil, fmt.Errorf("sweep %s: %w", path, err)
	}
	given, err := config.Explicit("train", configPath, fs)
	if err != nil {
		return nil, err
	}
	var variants []sweepVariant
	names := map[string]bool{}
	for i, v := range sf.Variants {
		name, _ := v["name"].(string)
		if !variantName.MatchString(name) || names[name] {
			return nil, fmt.Errorf("sweep %s: variant %d: name %q must be unique and made of letters, digits, '.', '_' and '-'", path, i+1, name)
		}
		names[name] = true
		over := maps(v)
		delete(over, "name")
		if err := checkSweepKeys(over, fields, "variant "+name); err != nil {
			return nil, fmt.Errorf("sweep %s: %w", path, err)
		}
		for k := range over {
			if given[k] && log != nil {
				log.Warn("a setting given outside the sweep overrides the variant's own value", "sweep", path, "variant", name, "key", k)
			}
		}
		vo := defaultTrainOptions()
		if err := config.Decode(&vo, "train", configPath, fs, splitLists(sf.Defaults, fields), splitLists(over, fields)); err != nil {
			return nil, fmt.Errorf("sweep %s: variant %s: %w", path, name, err)
		}
		vo.Sweep = ""
		vo.Train.Out = filepath.Join(out, runsDirName, name)
		if err := vo.Validate(); err != nil {
			return nil, fmt.Errorf("sweep %s: variant %s: invalid configuration: %w", path, name, err)
		}
		variants = append(variants, sweepVariant{Name: name, Opts: vo})
	}
	return variants, nil
}

func maps(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// checkSweepKeys rejects keys that are not train flags (typos would silently do nothing) and the
// keys a sweep does not decide: where runs go, and the base model and data (--base and --data).
func checkSweepKeys(m map[string]any, fields map[string]configField, where string) error {
	var errs []error
	for k := range m {
		if _, ok := fields[k]; !ok {
			errs = append(errs, fmt.Errorf("%s: unknown key %q (keys are `medassist train` flag names)", where, k))
		} else if placementKey(k) {
			errs = append(errs, fmt.Errorf("%s: %q cannot be set in a sweep (each run goes to OUT/runs/NAME)", where, k))
		} else if inputKey(k) {
			errs = append(errs, fmt.Errorf("%s: %q cannot be set in a sweep (give it with --%s)", where, k, k))
		}
	}
	return errors.Join(errs...)
}

// inputKey reports the keys that name a sweep's inputs, which the command line gives.
func inputKey(k string) bool { return k == "base" || k == "data" }

// splitLists turns "a,b" into a list for list-valued keys, as the flag would.
func splitLists(m map[string]any, fields map[string]configField) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		if s, ok := v.(string); ok && fields[k].Type != nil && fields[k].Type.Kind() == reflect.Slice {
			parts := strings.Split(s, ",")
			for i := range parts {
				parts[i] = strings.TrimSpace(parts[i])
			}
			v = parts
		}
		out[k] = v
	}
	return out
}

// sweepResult is one row of experiment_results.csv.
type sweepResult struct {
	Name    string
	Opts    trainOptions
	Summary eval.TrainSummary
}

// runSweep trains every variant into OUT/runs/NAME (finished runs are skipped, interrupted ones
// resume), writes OUT/experiment_results.csv after each run, then records the variant with the
// lowest best validation perplexity in OUT/best.txt, copies its adapter to OUT/adapter and merges it
// into OUT/merged.
func runSweep(ctx context.Context, opts trainOptions, env *cmdEnv) error {
	variants, err := loadSweep(opts.Sweep, opts.Train.Out, env.config, env.fs, env.log)
	if err != nil {
		return usageError{err.Error()}
	}
	env.log.Info("sweep", "file", opts.Sweep, "variants", len(variants), "out", opts.Train.Out)
	if err := os.MkdirAll(filepath.Join(opts.Train.Out, runsDirName), 0o755); err != nil {
		return err
	}
	datasets := map[string]*data.Dataset{} // variants that prepare the data alike share it
	var results []sweepResult
	for i, v := range variants {
		if err := ctx.Err(); err != nil {
			return err
		}
		log := env.log.With("variant", v.Name)
		prev, done, err := eval.ReadTrainSummary(v.Opts.Train.Out)
		if err != nil {
			return fmt.Errorf("variant %s: %w", v.Name, err)
		}
		var sum eval.TrainSummary
		if done {
			sum = *prev
			if diff := diffConfig(sum.Config, configValues(v.Opts)); diff != "" {
				return fmt.Errorf("variant %s: %s holds a finished run of another configuration (%s); remove that dir or rename the variant",
					v.Name, v.Opts.Train.Out, diff)
			}
			log.Info("run already finished; skipping", "best_val_ppl", sum.BestValPPL)
		} else {
			log.Info("training variant", "n", i+1, "of", len(variants), "out", v.Opts.Train.Out)
			key := v.Opts.Train.Base + "\x00" + fmt.Sprintf("%+v", v.Opts.Data)
			ds, ok := datasets[key]
			if !ok {
				if ds, err = prepareData(v.Opts, log); err != nil {
					return fmt.Errorf("variant %s: %w", v.Name, err)
				}
				datasets[key] = ds
			}
			if sum, err = runTraining(ctx, v.Opts, ds, log); err != nil {
				return fmt.Errorf("variant %s: %w", v.Name, err)
			}
			if err := writeJSON(filepath.Join(v.Opts.Train.Out, eval.TrainSummaryFile), sum); err != nil {
				return err
			}
		}
		results = append(results, sweepResult{Name: v.Name, Opts: v.Opts, Summary: sum})
		if err := writeResults(filepath.Join(opts.Train.Out, resultsFileName), results, ""); err != nil {
			return err
		}
	}
	best := bestResult(results)
	if err := writeResults(filepath.Join(opts.Train.Out, resultsFileName), results, best.Name); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(opts.Train.Out, bestFileName),
		fmt.Appendf(nil, "%s\t%s\n", best.Name, strconv.FormatFloat(best.Summary.BestValPPL, 'g', 8, 64)), 0o644); err != nil {
		return err
	}
	if err := copyDir(filepath.Join(best.Opts.Train.Out, adapterDirName), filepath.Join(opts.Train.Out, adapterDirName)); err != nil {
		return fmt.Errorf("copy the winner's adapter: %w", err)
	}
	if err := merge.Merge(best.Opts.Train.Base, filepath.Join(opts.Train.Out, adapterDirName), filepath.Join(opts.Train.Out, mergedDirName), env.log); err != nil {
		return err
	}
	env.log.Info("sweep finished", "winner", best.Name, "best_val_ppl", best.Summary.BestValPPL,
		"results", filepath.Join(opts.Train.Out, resultsFileName))
	fmt.Fprintf(env.stdout, "winner: %s (validation perplexity %.3f); results: %s\n", best.Name, best.Summary.BestValPPL,
		filepath.Join(opts.Train.Out, resultsFileName))
	printSummary(env.stdout, opts.Train.Out, best.Summary)
	return nil
}

// diffConfig names the first key whose value differs between two configurations ("" if none).
func diffConfig(was, now map[string]string) string {
	keys := make([]string, 0, len(now))
	for k := range now {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if old, ok := was[k]; !ok || old != now[k] {
			return fmt.Sprintf("%s was %q, now %q", k, old, now[k])
		}
	}
	return ""
}

// bestResult is the run with the lowest best validation perplexity (the first on ties; NaN loses).
func bestResult(rs []sweepResult) sweepResult {
	best := rs[0]
	for _, r := range rs[1:] {
		if p := r.Summary.BestValPPL; !math.IsNaN(p) && (math.IsNaN(best.Summary.BestValPPL) || p < best.Summary.BestValPPL) {
			best = r
		}
	}
	return best
}

// writeResults writes experiment_results.csv: name, every configuration key, validation
// perplexity per epoch, the best one, wall time, tokens/s, and whether the row is the winner.
func writeResults(path string, rs []sweepResult, winner string) error {
	fields := configFields(reflect.TypeOf(trainOptions{}))
	epochs := 0
	for _, r := range rs {
		epochs = max(epochs, len(r.Summary.EpochValPPL))
	}
	header := []string{"name"}
	for _, f := range fields {
		if !placementKey(f.Key) {
			header = append(header, f.Key)
		}
	}
	header = append(header, "base_val_ppl")
	for e := 1; e <= epochs; e++ {
		header = append(header, fmt.Sprintf("val_ppl_epoch_%d", e))
	}
	header = append(header, "best_val_ppl", "wall_seconds", "tokens_per_second", "train_examples", "val_examples", "winner")
	f, err := os.Create(path + ".tmp")
	if err != nil {
		return err
	}
	w := csv.NewWriter(f)
	w.Write(header)
	num := func(x float64) string { return strconv.FormatFloat(x, 'g', 8, 64) }
	for _, r := range rs {
		v := reflect.ValueOf(r.Opts)
		row := []string{r.Name}
		for _, fd := range fields {
			if !placementKey(fd.Key) {
				row = append(row, formatValue(v.FieldByIndex(fd.Index)))
			}
		}
		row = append(row, num(r.Summary.BaseValPPL))
		for e := 0; e < epochs; e++ {
			cell := ""
			if e < len(r.Summary.EpochValPPL) {
				cell = num(r.Summary.EpochValPPL[e])
			}
			row = append(row, cell)
		}
		row = append(row, num(r.Summary.BestValPPL), num(r.Summary.WallSeconds), num(r.Summary.TokensPerSec),
			strconv.Itoa(r.Summary.TrainExamples), strconv.Itoa(r.Summary.ValExamples), strconv.FormatBool(r.Name == winner))
		w.Write(row)
	}
	w.Flush()
	if err := errors.Join(w.Error(), f.Close()); err != nil {
		os.Remove(path + ".tmp")
		return err
	}
	return os.Rename(path+".tmp", path)
}

// copyDir replaces dst with a copy of the regular files in src.
func copyDir(src, dst string) error {
	entries, err := os.ReadDir(src)
	if err != nil {
		return err
	}
	if err := os.RemoveAll(dst); err != nil {
		return err
	}
	var names []string
	for _, e := range entries {
		if e.Type().IsRegular() {
			names = append(names, e.Name())
		}
	}
	return model.CopyModelFiles(src, dst, names)
}
