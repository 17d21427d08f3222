package eval

import (
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/medassist/medassist/train/data"
)

// MetricsFile is the per-step log a training run writes into its output folder.
const MetricsFile = "metrics.csv"

// MetricsRow is one line of a training run's metrics.csv. Values a line does not carry are NaN
// (validation is measured only at the end of an epoch).
type MetricsRow struct {
	Step          float64
	Epoch         float64
	TrainLoss     float64
	ValLoss       float64
	ValPerplexity float64
}

// Metrics is a training run's metrics.csv.
type Metrics struct {
	Rows []MetricsRow
}

// Column names accepted for each field, first match wins (the trainer's names come first;
// Hugging Face Trainer's log names are accepted too).
var metricsColumns = map[string][]string{
	"step":           {"step", "global_step"},
	"epoch":          {"epoch"},
	"train_loss":     {"train_loss", "loss"},
	"val_loss":       {"val_loss", "eval_loss", "validation_loss"},
	"val_perplexity": {"val_perplexity", "val_ppl", "eval_perplexity", "perplexity"},
}

// ReadMetrics reads a metrics.csv with a header line (medassist train writes
// step,epoch,train_loss,lr,grad_norm,tokens_per_s,val_perplexity). Empty cells, "NaN" and missing
// columns read as NaN; validation loss and perplexity are derived from each other
// (perplexity = exp(mean loss over answer tokens)) when the file has only one of them.
func ReadMetrics(path string) (*Metrics, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("training metrics: %w (pass --train-dir the folder `medassist train --out` wrote)", err)
	}
	defer f.Close()
	r := csv.NewReader(f)
	r.FieldsPerRecord = -1
	header, err := r.Read()
	if err != nil {
		return nil, fmt.Errorf("training metrics %s: %w", path, err)
	}
	for i := range header {
		header[i] = strings.ToLower(strings.TrimSpace(strings.TrimPrefix(header[i], "\ufeff")))
	}
	col := map[string]int{}
	for field, names := range metricsColumns {
		col[field] = -1
		for _, n := range names {
			if i := slices.Index(header, n); i >= 0 {
				col[field] = i
				break
			}
		}
	}
	if col["step"] < 0 {
		return nil, fmt.Errorf("training metrics %s: no step column in header %v", path, header)
	}
	m := &Metrics{}
	for line := 2; ; line++ {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("training metrics %s: %w", path, err)
		}
		get := func(field string) (float64, error) {
			i := col[field]
			if i < 0 || i >= len(rec) || strings.TrimSpace(rec[i]) == "" {
				return math.NaN(), nil
			}
			v, err := strconv.ParseFloat(strings.TrimSpace(rec[i]), 64)
			if err != nil {
				return 0, fmt.Errorf("training metrics %s line %d: column %s: %w", path, line, header[i], err)
			}
			return v, nil
		}
		var row MetricsRow
		for _, fv := range []struct {
			field string
			dst   *float64
		}{{"step", &row.Step}, {"epoch", &row.Epoch}, {"train_loss", &row.TrainLoss}, {"val_loss", &row.ValLoss}, {"val_perplexity", &row.ValPerplexity}} {
			if *fv.dst, err = get(fv.field); err != nil {
				return nil, err
			}
		}
		switch {
		case math.IsNaN(row.ValPerplexity) && !math.IsNaN(row.ValLoss):
			row.ValPerplexity = math.Exp(row.ValLoss)
		case math.IsNaN(row.ValLoss) && !math.IsNaN(row.ValPerplexity):
			row.ValLoss = math.Log(row.ValPerplexity)
		}
		m.Rows = append(m.Rows, row)
	}
	return m, nil
}

// XY is one point of a curve.
type XY struct{ X, Y float64 }

// TrainLoss is the training loss per step.
func (m *Metrics) TrainLoss() []XY {
	return m.curve(func(r MetricsRow) (float64, float64) { return r.Step, r.TrainLoss })
}

// ValLoss is the validation loss per step (at the steps where it was measured).
func (m *Metrics) ValLoss() []XY {
	return m.curve(func(r MetricsRow) (float64, float64) { return r.Step, r.ValLoss })
}

// ValPerplexityByEpoch is the validation perplexity per epoch: the last one measured in each
// epoch (medassist train numbers epochs from 1). Rows without an epoch number are numbered in
// order of appearance.
func (m *Metrics) ValPerplexityByEpoch() []XY {
	var out []XY
	for _, r := range m.Rows {
		if math.IsNaN(r.ValPerplexity) {
			continue
		}
		x := r.Epoch
		if math.IsNaN(x) {
			x = float64(len(out) + 1)
		}
		if n := len(out); n > 0 && out[n-1].X == x {
			out[n-1].Y = r.ValPerplexity
			continue
		}
		out = append(out, XY{x, r.ValPerplexity})
	}
	return out
}

func (m *Metrics) curve(f func(MetricsRow) (float64, float64)) []XY {
	var out []XY
	for _, r := range m.Rows {
		if x, y := f(r); !math.IsNaN(x) && !math.IsNaN(y) {
			out = append(out, XY{x, y})
		}
	}
	return out
}

// TrainSummaryFile is the summary a finished `medassist train` run writes into its output dir.
const TrainSummaryFile = "summary.json"

// TrainSummary is a finished training run's record: what it measured on its own validation split,
// and the split itself, so that an evaluation scores exactly those examples.
type TrainSummary struct {
	// Dir is where the summary was read from (not written).
	Dir           string    `json:"dir,omitempty"`
	BaseValPPL    float64   `json:"base_val_ppl"`
	EpochValPPL   []float64 `json:"epoch_val_ppl"`
	BestValPPL    float64   `json:"best_val_ppl"`
	WallSeconds   float64   `json:"wall_seconds,omitempty"`
	TokensPerSec  float64   `json:"tokens_per_second,omitempty"`
	TrainExamples int       `json:"train_examples,omitempty"`
	ValExamples   int       `json:"val_examples,omitempty"`
	// Backend is the GoMLX backend that ran (auto resolved).
	Backend string `json:"backend,omitempty"`
	// Split is the run's data split; nil in summaries that predate it.
	Split *data.Split `json:"split,omitempty"`
	// DataSHA256 is the SHA-256 of the run's flashcard file (data.FileSHA256).
	DataSHA256 string `json:"data_sha256,omitempty"`
	// Config is the run's whole configuration by flag name, to tell a finished run of another
	// configuration (a sweep re-run skips finished variants only when it is the same).
	Config map[string]string `json:"config,omitempty"`
}

// ReadTrainSummary reads dir/summary.json; ok is false when the run has none (not finished).
func ReadTrainSummary(dir string) (s *TrainSummary, ok bool, err error) {
	b, err := os.ReadFile(filepath.Join(dir, TrainSummaryFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	s = &TrainSummary{}
	if err := json.Unmarshal(b, s); err != nil {
		return nil, false, fmt.Errorf("training summary %s: %w", dir, err)
	}
	s.Dir = dir
	return s, true, nil
}

// CheckSplit returns an error unless the run recorded its split and it equals want: scoring
// another split would mix training examples into the validation scores.
func (s *TrainSummary) CheckSplit(want data.Split) error {
	file := filepath.Join(s.Dir, TrainSummaryFile)
	if s.Split == nil {
		return fmt.Errorf("%s records no data split (written by an older medassist train): re-run the training into a new dir, or evaluate without --train-dir", file)
	}
	if diff := s.Split.Diff(want); len(diff) > 0 {
		parts := make([]string, len(diff))
		for i, d := range diff {
			parts[i] = d.String()
		}
		return fmt.Errorf("the training run in %s held out its validation examples with %s: evaluating another split would score training examples; give eval the run's settings or leave them unset", s.Dir, strings.Join(parts, ", "))
	}
	return nil
}

// CheckData returns an error when the run recorded the SHA-256 of its flashcard file and the file
// at path differs: the same split settings on other flashcards are another split.
func (s *TrainSummary) CheckData(path string) error {
	if s.DataSHA256 == "" {
		return nil
	}
	sum, err := data.FileSHA256(path)
	if err != nil {
		return err
	}
	if sum != s.DataSHA256 {
		return fmt.Errorf("the training run in %s was trained on another flashcard file (sha256 %s), not %s (sha256 %s): give eval the run's --data", s.Dir, s.DataSHA256, path, sum)
	}
	return nil
}

// SplitMatches reports whether this evaluation's base perplexity equals the one the training run
// measured before training (relative difference ≤ 1e-3): if so, both scored the same validation
// examples. It is true when either number is unknown.
func (s *TrainSummary) SplitMatches(evalBase *float64) bool {
	if s == nil || evalBase == nil || s.BaseValPPL <= 0 {
		return true
	}
	return math.Abs(*evalBase-s.BaseValPPL)/s.BaseValPPL <= 1e-3
}
