// Package train fine-tunes a Llama-family model with LoRA adapters in GoMLX: the model forward
// (llama.go), the optimizer step (step.go), the training loop with checkpoints and resumption
// (run.go, checkpoint.go), answer-token perplexity and a GoMLX text generator.
package train

import (
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/medassist/medassist/internal/config"
	"github.com/medassist/medassist/model"
)

// Config is the training configuration; koanf tags are the flag names of `medassist train`.
type Config struct {
	Base    string   `koanf:"base"`    // base model dir (Hugging Face layout)
	Out     string   `koanf:"out"`     // output dir: adapter/, metrics.csv, checkpoints/
	Targets []string `koanf:"targets"` // LoRA target projections

	Rank    int     `koanf:"rank"`
	Alpha   float64 `koanf:"alpha"`
	Dropout float64 `koanf:"dropout"` // on the adapters' input, as PEFT's lora_dropout

	LR          float64 `koanf:"lr"`           // peak learning rate
	WarmupSteps int     `koanf:"warmup-steps"` // optimizer steps of linear warmup from 0
	Schedule    string  `koanf:"schedule"`     // cosine | linear | constant (after warmup)
	WeightDecay float64 `koanf:"weight-decay"` // AdamW's decoupled weight decay
	BatchSize   int     `koanf:"batch-size"`   // examples per micro-batch
	GradAccum   int     `koanf:"grad-accum"`   // micro-batches per optimizer step
	Epochs      int     `koanf:"epochs"`
	ClipNorm    float64 `koanf:"clip-norm"` // global gradient-norm clipping; 0 disables it
	Seed        int64   `koanf:"seed"`      // adapter init, data order and dropout

	EvalEvery       int    `koanf:"eval-every"`       // optimizer steps between validations (0: epoch ends only)
	CheckpointEvery int    `koanf:"checkpoint-every"` // optimizer steps between checkpoints (0: epoch ends only)
	KeepCheckpoints int    `koanf:"keep-checkpoints"` // newest checkpoints kept on disk
	Backend         string `koanf:"backend"`          // see BackendAuto: auto, go, xla:cpu, xla:cuda or xla:/abs/path.so

	// Progress receives the progress bar (nil: os.Stderr; io.Discard: none). Not a flag.
	Progress io.Writer `koanf:"-"`
}

// DefaultConfig is the seed job's configuration (less base, data and out).
func DefaultConfig() Config {
	targets := make([]string, len(model.Projections))
	for i, p := range model.Projections {
		targets[i] = string(p)
	}
	return Config{
		Targets: targets, Rank: 16, Alpha: 32, Dropout: 0.05,
		LR: 5e-5, WarmupSteps: 10, Schedule: ScheduleCosine, WeightDecay: 0,
		BatchSize: 2, GradAccum: 4, Epochs: 2, ClipNorm: 1, Seed: 42,
		EvalEvery: 0, CheckpointEvery: 50, KeepCheckpoints: 2, Backend: BackendAuto,
	}
}

// Validate checks every field and reports all bad ones.
func (c Config) Validate() error {
	return config.Join(
		config.Check(c.Base != "", "base", c.Base, "a base model dir (config.json + safetensors)"),
		config.Check(c.Out != "", "out", c.Out, "an output dir"),
		config.Check(validTargets(c.Targets), "targets", strings.Join(c.Targets, ","),
			"a non-empty list without repeats of q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj"),
		config.Check(c.Rank >= 1 && c.Rank <= 1024, "rank", c.Rank, "between 1 and 1024"),
		config.Check(c.Alpha > 0, "alpha", c.Alpha, "> 0"),
		config.Check(c.Dropout >= 0 && c.Dropout < 1, "dropout", c.Dropout, "in [0, 1)"),
		config.Check(c.LR > 0 && c.LR <= 1, "lr", c.LR, "in (0, 1]"),
		config.Check(c.WarmupSteps >= 0, "warmup-steps", c.WarmupSteps, "≥ 0"),
		config.Check(slices.Contains([]string{ScheduleCosine, ScheduleLinear, ScheduleConstant}, c.Schedule),
			"schedule", c.Schedule, "one of cosine, linear, constant"),
		config.Check(c.WeightDecay >= 0 && c.WeightDecay < 1, "weight-decay", c.WeightDecay, "in [0, 1)"),
		config.Check(c.BatchSize >= 1 && c.BatchSize <= 1024, "batch-size", c.BatchSize, "between 1 and 1024"),
		config.Check(c.GradAccum >= 1 && c.GradAccum <= 1024, "grad-accum", c.GradAccum, "between 1 and 1024"),
		config.Check(c.Epochs >= 1 && c.Epochs <= 1000, "epochs", c.Epochs, "between 1 and 1000"),
		config.Check(c.ClipNorm >= 0, "clip-norm", c.ClipNorm, "≥ 0 (0 disables clipping)"),
		config.Check(c.EvalEvery >= 0, "eval-every", c.EvalEvery, "≥ 0 (0: at epoch ends only)"),
		config.Check(c.CheckpointEvery >= 0, "checkpoint-every", c.CheckpointEvery, "≥ 0 (0: at epoch ends only)"),
		config.Check(c.KeepCheckpoints >= 1, "keep-checkpoints", c.KeepCheckpoints, "≥ 1"),
		config.Check(validBackend(c.Backend), "backend", c.Backend, backendDoc),
	)
}

func validTargets(ts []string) bool {
	if len(ts) == 0 {
		return false
	}
	seen := map[string]bool{}
	for _, t := range ts {
		if _, err := model.ParseProjection(t); err != nil || seen[t] {
			return false
		}
		seen[t] = true
	}
	return true
}

// adapter is the LoRA description of c (targets in model.Projections order).
func (c Config) adapter() *Adapter {
	ad := &Adapter{Rank: c.Rank, Alpha: c.Alpha, Dropout: c.Dropout}
	for _, p := range model.Projections {
		if slices.Contains(c.Targets, string(p)) {
			ad.Targets = append(ad.Targets, p)
		}
	}
	return ad
}

// fingerprint identifies everything that decides the trained adapter: a checkpoint made under a
// different fingerprint cannot be resumed.
func (c Config) fingerprint(ds dataFingerprint) string {
	return fmt.Sprintf("targets=%s r=%d alpha=%g dropout=%g lr=%g warmup=%d schedule=%s wd=%g batch=%d accum=%d epochs=%d clip=%g seed=%d data=%s",
		strings.Join(c.adapter().targetNames(), ","), c.Rank, c.Alpha, c.Dropout, c.LR, c.WarmupSteps, c.Schedule,
		c.WeightDecay, c.BatchSize, c.GradAccum, c.Epochs, c.ClipNorm, c.Seed, ds)
}

func (a *Adapter) targetNames() []string {
	out := make([]string, len(a.Targets))
	for i, p := range a.Targets {
		out[i] = string(p)
	}
	return out
}
