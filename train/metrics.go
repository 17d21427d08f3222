package train

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// MetricsFile is the per-step training log inside OUT.
const MetricsFile = "metrics.csv"

// metricsHeader names the columns of metrics.csv. val_perplexity is empty on steps without a
// validation.
const metricsHeader = "step,epoch,train_loss,lr,grad_norm,tokens_per_s,val_perplexity"

type metricsRow struct {
	Step, Epoch     int
	Loss, LR        float64
	GradNorm        float64
	TokensPerSecond float64
	ValPerplexity   float64 // 0: not evaluated at this step
}

func (m metricsRow) csv() string {
	val := ""
	if m.ValPerplexity > 0 {
		val = strconv.FormatFloat(m.ValPerplexity, 'g', 8, 64)
	}
	return fmt.Sprintf("%d,%d,%.6f,%.6g,%.6f,%.1f,%s", m.Step, m.Epoch, m.Loss, m.LR, m.GradNorm, m.TokensPerSecond, val)
}

// metricsWriter appends rows to metrics.csv.
type metricsWriter struct{ f *os.File }

// openMetrics opens path for appending after keeping only the rows of steps ≤ keepSteps (the rows
// of a resumed run's lost work are dropped, so every step appears once).
func openMetrics(path string, keepSteps int) (*metricsWriter, error) {
	var kept bytes.Buffer
	kept.WriteString(metricsHeader + "\n")
	if keepSteps > 0 {
		old, err := os.ReadFile(path)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
		sc := bufio.NewScanner(bytes.NewReader(old))
		for sc.Scan() {
			line := sc.Text()
			first, _, _ := strings.Cut(line, ",")
			if step, err := strconv.Atoi(first); err == nil && step >= 1 && step <= keepSteps {
				kept.WriteString(line + "\n")
			}
		}
	}
	if err := os.WriteFile(path, kept.Bytes(), 0o644); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, err
	}
	return &metricsWriter{f: f}, nil
}

func (w *metricsWriter) Write(m metricsRow) error {
	_, err := w.f.WriteString(m.csv() + "\n")
	return err
}

func (w *metricsWriter) Close() error { return w.f.Close() }
