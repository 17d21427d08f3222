package eval

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
)

// ResultsFile is the name `medassist eval` gives its JSON when --out is a folder.
const ResultsFile = "evaluation_results.json"

// Results is evaluation_results.json. Base fields are absent when no base model was given.
type Results struct {
	Model string `json:"model"`
	Base  string `json:"base,omitempty"`
	Data  string `json:"data"`
	// NExamples counts the validation examples answered and scored with ROUGE.
	NExamples  int              `json:"n_examples"`
	Engines    Sides[string]    `json:"engines"`
	Split      Split            `json:"split"`
	Settings   Settings         `json:"settings"`
	Perplexity PerplexityResult `json:"perplexity"`
	Rouge      Sides[Rouge]     `json:"rouge"`
	Samples    []SampleResult   `json:"samples"`
	Manual     []PromptResult   `json:"manual_prompts"`
	// Training is the training run's own record (--train-dir), when it has one.
	Training *TrainSummary `json:"training,omitempty"`
	Timings  Timings       `json:"timings"`
}

// Sides holds one value per side.
type Sides[T any] struct {
	Base      *T `json:"base,omitempty"`
	FineTuned T  `json:"fine_tuned"`
}

// Split describes the validation data: the trainer's seeded split, re-made with the same settings.
type Split struct {
	Seed           int64   `json:"seed"`
	ValFraction    float64 `json:"val_fraction"`
	MaxLength      int     `json:"max_length"`
	MaxExamples    int     `json:"max_examples"` // 0: every flashcard
	SystemPrompt   string  `json:"system_prompt"`
	TrainExamples  int     `json:"train_examples"`
	ValExamples    int     `json:"val_examples"`
	ScoredExamples int     `json:"perplexity_examples"` // validation examples scored for perplexity
	AnswerTokens   int     `json:"answer_tokens"`       // their answer tokens
}

// Settings are the generation settings.
type Settings struct {
	MaxNewTokens int     `json:"max_new_tokens"`
	Temperature  float64 `json:"temperature"`
}

// PerplexityResult is exp(mean NLL) over the answer tokens of the validation examples.
type PerplexityResult struct {
	Base      *float64 `json:"base,omitempty"`
	FineTuned float64  `json:"fine_tuned"`
	// ChangePct is (fine_tuned - base) / base × 100: negative when fine-tuning lowered it.
	ChangePct *float64       `json:"change_pct,omitempty"`
	MeanNLL   Sides[float64] `json:"mean_nll"`
}

// SampleResult is one validation example answered by each side.
type SampleResult struct {
	Question  string       `json:"question"`
	Reference string       `json:"reference"`
	Base      *string      `json:"base,omitempty"`
	FineTuned string       `json:"fine_tuned"`
	Truncated bool         `json:"truncated,omitempty"`
	Rouge     Sides[Rouge] `json:"rouge"`
}

// PromptResult is one manual prompt answered by each side.
type PromptResult struct {
	Prompt    string  `json:"prompt"`
	Base      *string `json:"base,omitempty"`
	FineTuned string  `json:"fine_tuned"`
}

// Timings are in seconds.
type Timings struct {
	PrepareS float64                `json:"prepare_s"`
	Sides    Sides[SideTiming]      `json:"sides"`
	Gen      Sides[GenerationStats] `json:"generation"`
	TotalS   float64                `json:"total_s"`
}

// Assemble builds the results of fine (and base, when not nil) evaluated on in.
func Assemble(fine, base *SideResult, in Inputs, opt Options, split Split, data string) (*Results, error) {
	if fine == nil {
		return nil, fmt.Errorf("assemble: no fine-tuned result")
	}
	r := &Results{
		Model: fine.Dir, Data: data, NExamples: len(in.Samples), Split: split,
		Settings: Settings{MaxNewTokens: opt.MaxNewTokens, Temperature: 0},
	}
	r.Split.ScoredExamples, r.Split.AnswerTokens = fine.NLL.Examples, fine.NLL.Tokens
	r.Engines.FineTuned = fine.Engine
	r.Perplexity.FineTuned = fine.NLL.Perplexity()
	r.Perplexity.MeanNLL.FineTuned = fine.NLL.Mean()
	r.Rouge.FineTuned = fine.Rouge
	r.Timings.Sides.FineTuned, r.Timings.Gen.FineTuned = fine.Timing, fine.Generation
	if base != nil {
		r.Base = base.Dir
		r.Engines.Base = &base.Engine
		p := base.NLL.Perplexity()
		r.Perplexity.Base = &p
		change := (r.Perplexity.FineTuned - p) / p * 100
		r.Perplexity.ChangePct = &change
		nll := base.NLL.Mean()
		r.Perplexity.MeanNLL.Base = &nll
		r.Rouge.Base = &base.Rouge
		r.Timings.Sides.Base, r.Timings.Gen.Base = &base.Timing, &base.Generation
	}
	for i, s := range in.Samples {
		sr := SampleResult{Question: s.Question, Reference: s.Reference, Truncated: s.Truncated}
		sr.FineTuned, sr.Rouge.FineTuned = fine.Answers[i], fine.Scores[i]
		if base != nil {
			sr.Base, sr.Rouge.Base = &base.Answers[i], &base.Scores[i]
		}
		r.Samples = append(r.Samples, sr)
	}
	for i, p := range in.Prompts {
		pr := PromptResult{Prompt: p, FineTuned: fine.Manual[i]}
		if base != nil {
			pr.Base = &base.Manual[i]
		}
		r.Manual = append(r.Manual, pr)
	}
	for _, v := range []float64{r.Perplexity.FineTuned, derefOr(r.Perplexity.Base, 1)} {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return nil, fmt.Errorf("perplexity is %v: no answer tokens were scored or the model's logits are not finite", v)
		}
	}
	return r, nil
}

func derefOr(p *float64, v float64) float64 {
	if p == nil {
		return v
	}
	return *p
}

// Write writes r as indented JSON to path, creating its folder.
func (r *Results) Write(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// ReadResults reads an evaluation_results.json.
func ReadResults(path string) (*Results, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r Results
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &r, nil
}
