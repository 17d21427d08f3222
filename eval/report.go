package eval

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// ReportFile is the Markdown report WriteReport writes beside its plots.
const ReportFile = "report.md"

// reportSamples is how many validation answers the report quotes.
const reportSamples = 5

// WriteReport writes dir/report.md and its SVG plots: base vs fine-tuned perplexity and ROUGE,
// and, when m (a training run's metrics.csv) is not nil, the loss per step and the validation
// perplexity per epoch. It returns the paths written.
func WriteReport(dir string, r *Results, m *Metrics) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var written []string
	plot := func(name string, draw func(path string) error) error {
		path := filepath.Join(dir, name)
		if err := draw(path); err != nil {
			return fmt.Errorf("plot %s: %w", name, err)
		}
		written = append(written, path)
		return nil
	}
	if err := plot(PlotPerplexity, func(p string) error { return plotPerplexity(r, p) }); err != nil {
		return written, err
	}
	if err := plot(PlotRouge, func(p string) error { return plotRouge(r, p) }); err != nil {
		return written, err
	}
	if m != nil {
		if err := plot(PlotLoss, func(p string) error { return plotLoss(m, p) }); err != nil {
			return written, err
		}
		if err := plot(PlotEpochPerplexity, func(p string) error { return plotEpochPerplexity(m, r.Perplexity.Base, p) }); err != nil {
			return written, err
		}
	}
	path := filepath.Join(dir, ReportFile)
	if err := os.WriteFile(path, []byte(markdown(r, m != nil)), 0o644); err != nil {
		return written, err
	}
	return append(written, path), nil
}

// markdown renders the report.
func markdown(r *Results, training bool) string {
	var b strings.Builder
	w := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	hasBase := r.Perplexity.Base != nil

	w("# Evaluation report\n\n")
	w("- fine-tuned model: `%s` (%s)\n", r.Model, r.Engines.FineTuned)
	if hasBase {
		w("- base model: `%s` (%s)\n", r.Base, *r.Engines.Base)
	}
	w("- data: `%s`; validation split: %d of %d examples (seed %d, fraction %g, max length %d)\n",
		r.Data, r.Split.ValExamples, r.Split.ValExamples+r.Split.TrainExamples, r.Split.Seed, r.Split.ValFraction, r.Split.MaxLength)
	w("- perplexity: teacher-forced on the answer tokens of %d validation examples (%d tokens)\n",
		r.Split.ScoredExamples, r.Split.AnswerTokens)
	w("- ROUGE: greedy answers (at most %d new tokens) to %d validation questions against the reference answers\n\n",
		r.Settings.MaxNewTokens, r.NExamples)

	w("## Perplexity\n\n| model | perplexity | mean NLL (nats/token) |\n| --- | ---: | ---: |\n")
	if hasBase {
		w("| base | %.3f | %.4f |\n", *r.Perplexity.Base, *r.Perplexity.MeanNLL.Base)
	}
	w("| fine-tuned | %.3f | %.4f |\n\n", r.Perplexity.FineTuned, r.Perplexity.MeanNLL.FineTuned)
	if r.Perplexity.ChangePct != nil {
		w("Change: **%+.1f%%** (fine-tuned vs base).\n\n", *r.Perplexity.ChangePct)
	}
	if t := r.Training; t != nil {
		w("The training run (`%s`) measured on its validation split: base %.3f, per epoch %s, best %.3f.",
			t.Dir, t.BaseValPPL, joinFloats(t.EpochValPPL), t.BestValPPL)
		if t.SplitMatches(r.Perplexity.Base) {
			w(" Its base perplexity equals this evaluation's: both scored the same examples.\n\n")
		} else {
			w(" **Its base perplexity differs from this evaluation's: the split settings differ.**\n\n")
		}
	}
	w("![validation perplexity, base vs fine-tuned](%s)\n\n", PlotPerplexity)

	w("## ROUGE\n\n| model | ROUGE-1 F1 | ROUGE-2 F1 | ROUGE-L F1 | ROUGE-L precision | ROUGE-L recall |\n| --- | ---: | ---: | ---: | ---: | ---: |\n")
	row := func(name string, s Rouge) {
		w("| %s | %.4f | %.4f | %.4f | %.4f | %.4f |\n", name, s.Rouge1.F1, s.Rouge2.F1, s.RougeL.F1, s.RougeL.Precision, s.RougeL.Recall)
	}
	if hasBase {
		row("base", *r.Rouge.Base)
	}
	row("fine-tuned", r.Rouge.FineTuned)
	w("\n![ROUGE F1, base vs fine-tuned](%s)\n\n", PlotRouge)

	if training {
		w("## Training\n\n![loss per step](%s)\n\n![validation perplexity per epoch](%s)\n\n", PlotLoss, PlotEpochPerplexity)
	}

	w("## Validation answers (first %d of %d)\n\n", min(reportSamples, len(r.Samples)), len(r.Samples))
	for i, s := range r.Samples[:min(reportSamples, len(r.Samples))] {
		w("### %d. %s\n\n- reference: %s\n", i+1, oneLine(s.Question), oneLine(s.Reference))
		if s.Base != nil && s.Rouge.Base != nil {
			w("- base (ROUGE-L F1 %.3f): %s\n", s.Rouge.Base.RougeL.F1, oneLine(*s.Base))
		}
		w("- fine-tuned (ROUGE-L F1 %.3f): %s\n\n", s.Rouge.FineTuned.RougeL.F1, oneLine(s.FineTuned))
	}

	w("## Manual prompts\n\n")
	for i, p := range r.Manual {
		w("### %d. %s\n\n", i+1, oneLine(p.Prompt))
		if p.Base != nil {
			w("- base: %s\n", oneLine(*p.Base))
		}
		w("- fine-tuned: %s\n\n", oneLine(p.FineTuned))
	}

	w("## Timings\n\n| model | load s | perplexity s | generation s | generated tokens | tokens/s |\n| --- | ---: | ---: | ---: | ---: | ---: |\n")
	if hasBase {
		timingRow(&b, "base", *r.Timings.Sides.Base, *r.Timings.Gen.Base)
	}
	timingRow(&b, "fine-tuned", r.Timings.Sides.FineTuned, r.Timings.Gen.FineTuned)
	w("\nData preparation %.1f s, total %.1f s.\n", r.Timings.PrepareS, r.Timings.TotalS)
	return b.String()
}

func joinFloats(v []float64) string {
	parts := make([]string, len(v))
	for i, x := range v {
		parts[i] = fmt.Sprintf("%.3f", x)
	}
	return strings.Join(parts, ", ")
}

func timingRow(b *strings.Builder, name string, t SideTiming, g GenerationStats) {
	fmt.Fprintf(b, "| %s | %.1f | %.1f | %.1f | %d | %.1f |\n", name, t.LoadS, t.PerplexityS, t.GenerateS, g.Tokens, g.TokensPerS)
}

// oneLine collapses white space so that a model's answer stays one Markdown list item, and
// escapes the characters that would start Markdown markup.
func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if s == "" {
		return "_(empty)_"
	}
	r := strings.NewReplacer(`\`, `\\`, "`", "\\`", "*", `\*`, "_", `\_`, "<", "&lt;", "|", `\|`, "#", `\#`, "[", `\[`)
	return r.Replace(s)
}
