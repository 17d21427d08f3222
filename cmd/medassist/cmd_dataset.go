package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"

	"github.com/spf13/pflag"

	"github.com/medassist/medassist/eval"
	"github.com/medassist/medassist/model"
	"github.com/medassist/medassist/tokenizer"
	"github.com/medassist/medassist/train/data"
)

// preparedExamples is the file `medassist dataset` writes: a finished training run's prepared
// examples (token ids and labels, exactly what the trainer saw) and its configuration, so that
// another trainer (tools/oracle/train_speed_torch.py) can run the same job on the same examples.
type preparedExamples struct {
	Train  []data.Example    `json:"train"`
	Val    []data.Example    `json:"val"`
	Split  data.Split        `json:"split"`
	Config map[string]string `json:"config"` // the run's configuration by `medassist train` flag name
	// Summary is the run's own results (perplexities, tokens/s) to compare with.
	Summary *eval.TrainSummary `json:"summary"`
}

func init() {
	register(&command{
		name:    "dataset",
		summary: "write a finished training run's prepared examples (ids, labels) and configuration as JSON",
		usage:   "--train-dir OUT/runs/NAME --out FILE.json",
		flags: func(fs *pflag.FlagSet) {
			fs.String("train-dir", "", "a finished `medassist train` run (holds summary.json)")
			fs.String("out", "", "JSON file to write")
		},
		run: func(ctx context.Context, env *cmdEnv, args []string) error {
			dir, _ := env.fs.GetString("train-dir")
			out, _ := env.fs.GetString("out")
			if len(args) > 0 || dir == "" || out == "" {
				return usageError{"dataset needs --train-dir and --out, and no positional arguments"}
			}
			p, err := remakeExamples(dir)
			if err != nil {
				return err
			}
			b, err := json.Marshal(p)
			if err != nil {
				return err
			}
			env.log.Info("prepared examples", "out", out, "train", len(p.Train), "val", len(p.Val))
			return os.WriteFile(out, b, 0o644)
		},
	})
}

// remakeExamples prepares the examples of the training run in dir again from the base model,
// flashcard file and split its summary records, and checks they are the run's own.
func remakeExamples(dir string) (*preparedExamples, error) {
	s, ok, err := eval.ReadTrainSummary(dir)
	if err != nil {
		return nil, err
	}
	if !ok || s.Split == nil {
		return nil, fmt.Errorf("%s has no %s with a split: not a finished medassist train run (re-run the same train command to finish it)", dir, eval.TrainSummaryFile)
	}
	base, path := s.Config["base"], s.Config["data"]
	sum, err := data.FileSHA256(path)
	if err != nil {
		return nil, fmt.Errorf("the run's flashcard file: %w", err)
	}
	if s.DataSHA256 != "" && sum != s.DataSHA256 {
		return nil, fmt.Errorf("%s changed since the run in %s trained on it (SHA-256 %s, not %s)", path, dir, sum, s.DataSHA256)
	}
	tok, err := tokenizer.Load(base)
	if err != nil {
		return nil, err
	}
	defer tok.Close()
	tpl, err := model.LoadChatTemplate(base)
	if err != nil {
		return nil, err
	}
	ds, err := data.Prepare(data.Config{Path: path, Split: *s.Split}, tok, tpl, nil)
	if err != nil {
		return nil, err
	}
	if len(ds.Train) != s.TrainExamples || len(ds.Val) != s.ValExamples {
		return nil, fmt.Errorf("remade %d/%d train/validation examples, the run in %s had %d/%d", len(ds.Train), len(ds.Val), dir, s.TrainExamples, s.ValExamples)
	}
	return &preparedExamples{Train: ds.Train, Val: ds.Val, Split: *s.Split, Config: s.Config, Summary: s}, nil
}
