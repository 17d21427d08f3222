package eval

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"time"

	"github.com/medassist/medassist/generation"
	"github.com/medassist/medassist/train/data"
)

// Names of the two sides of a comparison, as they appear in the results.
const (
	SideBase      = "base"
	SideFineTuned = "fine_tuned"
)

// Model is one opened model: what scores answers and what generates them.
type Model struct {
	Engine  string // the engine that runs it ("onnx", "gomlx"), for the record
	Scorer  Scorer
	Gen     generation.Generator
	StopIDs []int        // end generation (EOS)
	Close   func() error // may be nil
}

// Side is a model to evaluate. Open is called when its turn comes and the model is closed before
// the next side opens, so that two large models never share memory.
type Side struct {
	Name string // SideBase or SideFineTuned
	Dir  string
	Open func(ctx context.Context) (*Model, error)
}

// Inputs is what every side is evaluated on.
type Inputs struct {
	// Val are the validation examples scored for perplexity.
	Val []data.Example
	// Samples are the validation examples answered greedily and scored with ROUGE.
	Samples []Sample
	// Prompts are the manual test prompts; PromptIDs renders one as the model's inference prompt.
	Prompts   []string
	PromptIDs func(question string) ([]int, error)
	Decoder   Decoder
}

// Options are the generation settings of an evaluation.
type Options struct {
	MaxNewTokens int
}

// SideResult is everything measured on one side.
type SideResult struct {
	Name       string
	Dir        string
	Engine     string
	NLL        NLL
	Answers    []string // one per sample
	Scores     []Rouge  // one per sample
	Rouge      Rouge    // mean of Scores
	Manual     []string // one per manual prompt
	Timing     SideTiming
	Generation GenerationStats
}

// SideTiming is where one side's time went.
type SideTiming struct {
	LoadS       float64 `json:"load_s"`
	PerplexityS float64 `json:"perplexity_s"`
	GenerateS   float64 `json:"generate_s"`
}

// GenerationStats counts the generated tokens of one side.
type GenerationStats struct {
	Tokens       int     `json:"generated_tokens"`
	TokensPerS   float64 `json:"tokens_per_s"`
	StoppedByEOS int     `json:"stopped_by_eos"`
}

// EvaluateSide opens a side's model, scores the validation answers, answers the samples and the
// manual prompts greedily, and closes the model.
func EvaluateSide(ctx context.Context, side Side, in Inputs, opt Options, log *slog.Logger) (res *SideResult, err error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	res = &SideResult{Name: side.Name, Dir: side.Dir}
	start := time.Now()
	m, err := side.Open(ctx)
	if err != nil {
		return nil, fmt.Errorf("%s model %s: %w", side.Name, side.Dir, err)
	}
	defer func() {
		if m.Close != nil {
			err = errors.Join(err, m.Close())
		}
	}()
	res.Engine = m.Engine
	res.Timing.LoadS = time.Since(start).Seconds()
	log.Info("model opened", "side", side.Name, "dir", side.Dir, "engine", m.Engine, "load_s", round3(res.Timing.LoadS))

	if err := res.score(ctx, m, in.Val, log); err != nil {
		return nil, err
	}
	if err := res.answer(ctx, m, in, opt, log); err != nil {
		return nil, err
	}
	return res, nil
}

// score measures the teacher-forced NLL of the validation answers.
func (res *SideResult) score(ctx context.Context, m *Model, val []data.Example, log *slog.Logger) error {
	start := time.Now()
	var err error
	if res.NLL, err = m.Scorer.ScoreAnswers(ctx, val); err != nil {
		return fmt.Errorf("%s perplexity: %w", res.Name, err)
	}
	res.Timing.PerplexityS = time.Since(start).Seconds()
	log.Info("perplexity", "side", res.Name, "perplexity", round3(res.NLL.Perplexity()), "mean_nll", round3(res.NLL.Mean()),
		"answer_tokens", res.NLL.Tokens, "examples", res.NLL.Examples, "elapsed_s", round3(res.Timing.PerplexityS))
	return nil
}

// answer generates greedy answers to the samples (scored with ROUGE) and to the manual prompts.
func (res *SideResult) answer(ctx context.Context, m *Model, in Inputs, opt Options, log *slog.Logger) error {
	start := time.Now()
	g := greedy{m: m, dec: in.Decoder, maxNew: opt.MaxNewTokens, stats: &res.Generation}
	for i, s := range in.Samples {
		answer, err := g.answer(ctx, s.PromptIDs)
		if err != nil {
			return fmt.Errorf("%s sample %d: %w", res.Name, i, err)
		}
		res.Answers = append(res.Answers, answer)
		res.Scores = append(res.Scores, ComputeRouge(s.Reference, answer))
		log.Debug("sample answered", "side", res.Name, "i", i, "answer", answer)
		if (i+1)%progressEvery == 0 {
			log.Info("answering validation questions", "side", res.Name, "done", i+1, "of", len(in.Samples))
		}
	}
	res.Rouge = MeanRouge(res.Scores)
	for i, p := range in.Prompts {
		ids, err := in.PromptIDs(p)
		if err != nil {
			return fmt.Errorf("manual prompt %d: %w", i, err)
		}
		answer, err := g.answer(ctx, ids)
		if err != nil {
			return fmt.Errorf("%s manual prompt %d: %w", res.Name, i, err)
		}
		res.Manual = append(res.Manual, answer)
	}
	res.Timing.GenerateS = time.Since(start).Seconds()
	if res.Timing.GenerateS > 0 {
		res.Generation.TokensPerS = float64(res.Generation.Tokens) / res.Timing.GenerateS
	}
	log.Info("generations scored", "side", res.Name, "samples", len(in.Samples), "manual_prompts", len(in.Prompts),
		"rouge1_f1", round3(res.Rouge.Rouge1.F1), "rouge2_f1", round3(res.Rouge.Rouge2.F1), "rougeL_f1", round3(res.Rouge.RougeL.F1),
		"tokens", res.Generation.Tokens, "tokens_per_s", round3(res.Generation.TokensPerS), "elapsed_s", round3(res.Timing.GenerateS))
	return nil
}

// progressEvery is how many examples pass between progress lines.
const progressEvery = 32

// greedy answers prompts at temperature 0 and decodes the answers.
type greedy struct {
	m      *Model
	dec    Decoder
	maxNew int
	stats  *GenerationStats
}

func (g greedy) answer(ctx context.Context, prompt []int) (string, error) {
	req := generation.Request{PromptIDs: prompt, MaxNewTokens: g.maxNew, StopIDs: g.m.StopIDs}
	res, err := g.m.Gen.Generate(ctx, req, func(int) error { return nil })
	if err != nil {
		return "", err
	}
	g.stats.Tokens += len(res.IDs)
	if res.Finish == generation.FinishStop {
		g.stats.StoppedByEOS++
	}
	return strings.TrimSpace(g.dec.Decode(res.IDs, true)), nil
}

func round3(x float64) float64 {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return x
	}
	return math.Round(x*1000) / 1000
}
