package eval

import (
	"encoding/xml"
	"errors"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeFile(t *testing.T, path, text string) string {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestReadMetrics(t *testing.T) {
	path := writeFile(t, filepath.Join(t.TempDir(), MetricsFile),
		"step,epoch,train_loss,val_loss,lr\n1,0.5,3.0,,0.001\n2,1,2.5,2.0,0.001\n3,1.5,2.25,,0.0005\n4,2,2.0,1.5,0\n")
	m, err := ReadMetrics(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := m.TrainLoss(); len(got) != 4 || got[3] != (XY{4, 2}) {
		t.Fatalf("train loss %v", got)
	}
	if got := m.ValLoss(); len(got) != 2 || got[0] != (XY{2, 2}) || got[1] != (XY{4, 1.5}) {
		t.Fatalf("val loss %v", got)
	}
	ppl := m.ValPerplexityByEpoch()
	if len(ppl) != 2 || ppl[0].X != 1 || math.Abs(ppl[0].Y-math.Exp(2)) > 1e-12 || ppl[1].X != 2 {
		t.Fatalf("perplexity by epoch %v (exp(val_loss) when the file has no perplexity column)", ppl)
	}

	// medassist train's columns: validation perplexity only, possibly several times an epoch.
	trainer := writeFile(t, filepath.Join(t.TempDir(), "m.csv"), "step,epoch,train_loss,lr,grad_norm,tokens_per_s,val_perplexity\n"+
		"1,1,5.5,1e-05,1.2,300.0,\n2,1,5.0,2e-05,1.1,310.0,150\n3,1,4.8,2e-05,1.0,305.0,120\n4,2,4.5,1e-05,0.9,300.0,\n5,2,4.4,0,0.9,300.0,90\n")
	m, err = ReadMetrics(trainer)
	if err != nil {
		t.Fatal(err)
	}
	if ppl := m.ValPerplexityByEpoch(); len(ppl) != 2 || ppl[0] != (XY{1, 120}) || ppl[1] != (XY{2, 90}) {
		t.Fatalf("perplexity per epoch: %v, want the last of each epoch", ppl)
	}
	if vl := m.ValLoss(); len(vl) != 3 || vl[2].X != 5 || math.Abs(vl[2].Y-math.Log(90)) > 1e-12 {
		t.Fatalf("validation loss from perplexity: %v", vl)
	}

	if _, err := ReadMetrics(writeFile(t, filepath.Join(t.TempDir(), "bad.csv"), "epoch,loss\n1,x\n")); err == nil || !strings.Contains(err.Error(), "step") {
		t.Fatalf("a file without a step column: %v", err)
	}
	if _, err := ReadMetrics(writeFile(t, filepath.Join(t.TempDir(), "bad.csv"), "step,loss\n1,x\n")); err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Fatalf("a bad number must name its line: %v", err)
	}
}

func sampleResults() *Results {
	base, change, baseNLL := 420.0, -80.0, math.Log(420)
	rb := Rouge{Rouge1: Score{0.2, 0.1, 0.133}, Rouge2: Score{0.01, 0.01, 0.01}, RougeL: Score{0.15, 0.1, 0.12}}
	rf := Rouge{Rouge1: Score{0.3, 0.25, 0.27}, Rouge2: Score{0.1, 0.08, 0.09}, RougeL: Score{0.28, 0.22, 0.25}}
	a, b := "Iron deficiency | causes *fatigue*", "once upon a time <s>"
	r := &Results{
		Model: "runs/ft/merged", Base: "models/base", Data: "flashcards.jsonl", NExamples: 1,
		Split:      Split{Seed: 42, ValFraction: 0.1, MaxLength: 512, TrainExamples: 9, ValExamples: 1, ScoredExamples: 1, AnswerTokens: 12},
		Settings:   Settings{MaxNewTokens: 16},
		Perplexity: PerplexityResult{Base: &base, FineTuned: 84, ChangePct: &change, MeanNLL: Sides[float64]{Base: &baseNLL, FineTuned: math.Log(84)}},
		Rouge:      Sides[Rouge]{Base: &rb, FineTuned: rf},
		Samples:    []SampleResult{{Question: "What causes anemia?", Reference: "Iron deficiency.", Base: &b, FineTuned: a, Rouge: Sides[Rouge]{Base: &rb, FineTuned: rf}}},
		Manual:     []PromptResult{{Prompt: "What is metformin?", Base: &b, FineTuned: a}},
	}
	e := "gomlx"
	r.Engines = Sides[string]{Base: &e, FineTuned: "gomlx"}
	r.Timings.Sides.Base, r.Timings.Gen.Base = &SideTiming{}, &GenerationStats{}
	return r
}

// parseXML checks that a file is well-formed XML with an <svg> root.
func parseSVG(t *testing.T, path string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	d := xml.NewDecoder(f)
	root, elements := "", 0
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s is not well-formed XML: %v", path, err)
		}
		if se, ok := tok.(xml.StartElement); ok {
			if root == "" {
				root = se.Name.Local
			}
			elements++
		}
	}
	if root != "svg" || elements < 10 {
		t.Fatalf("%s: root <%s>, %d elements: want an <svg> drawing", path, root, elements)
	}
}

func TestWriteReport(t *testing.T) {
	dir := t.TempDir()
	m, err := ReadMetrics(writeFile(t, filepath.Join(dir, MetricsFile),
		"step,epoch,train_loss,val_loss\n1,0.5,6.0,\n2,1,5.0,4.9\n3,1.5,4.5,\n4,2,4.4,4.3\n"))
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "report")
	full := sampleResults()
	full.Training = &TrainSummary{Dir: "runs/ft", BaseValPPL: 420.2, EpochValPPL: []float64{120, 84}, BestValPPL: 84}
	files, err := WriteReport(out, full, m)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{PlotPerplexity, PlotRouge, PlotLoss, PlotEpochPerplexity, ReportFile} {
		path := filepath.Join(out, name)
		if !strings.Contains(strings.Join(files, "\n"), path) {
			t.Errorf("%s not reported as written: %v", name, files)
		}
		if strings.HasSuffix(name, ".svg") {
			parseSVG(t, path)
		}
	}
	md, err := os.ReadFile(filepath.Join(out, ReportFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"| base | 420.000 |", "| fine-tuned | 84.000 |", "**-80.0%**", "](" + PlotLoss + ")",
		"](" + PlotRouge + ")", "per epoch 120.000, 84.000", "both scored the same examples", `Iron deficiency \| causes \*fatigue\*`, "once upon a time &lt;s>", "What is metformin?"} {
		if !strings.Contains(string(md), want) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}

	// Without training metrics and without a base: no training plots, no base rows.
	r := sampleResults()
	r.Base, r.Perplexity.Base, r.Perplexity.ChangePct, r.Rouge.Base = "", nil, nil, nil
	r.Samples[0].Base, r.Samples[0].Rouge.Base, r.Manual[0].Base, r.Engines.Base, r.Timings.Sides.Base, r.Timings.Gen.Base = nil, nil, nil, nil, nil, nil
	r.Perplexity.MeanNLL.Base = nil
	out = filepath.Join(dir, "single")
	if _, err := WriteReport(out, r, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(out, PlotLoss)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("loss plot written without metrics: %v", err)
	}
	parseSVG(t, filepath.Join(out, PlotRouge))
	md, _ = os.ReadFile(filepath.Join(out, ReportFile))
	if strings.Contains(string(md), "| base |") {
		t.Errorf("single-model report has a base row:\n%s", md)
	}
}

func TestReadTrainSummary(t *testing.T) {
	dir := t.TempDir()
	if s, ok, err := ReadTrainSummary(dir); s != nil || ok || err != nil {
		t.Fatalf("no summary.json: %v %v %v", s, ok, err)
	}
	writeFile(t, filepath.Join(dir, TrainSummaryFile), `{"base_val_ppl": 104.9, "epoch_val_ppl": [9.1, 7.9], "best_val_ppl": 7.9, "wall_seconds": 322}`)
	s, ok, err := ReadTrainSummary(dir)
	if err != nil || !ok || s.BaseValPPL != 104.9 || len(s.EpochValPPL) != 2 || s.BestValPPL != 7.9 || s.Dir != dir {
		t.Fatalf("summary %+v %v %v", s, ok, err)
	}
	same, other := 104.95, 98.0
	if !s.SplitMatches(&same) || s.SplitMatches(&other) || !s.SplitMatches(nil) {
		t.Fatal("SplitMatches: 104.95 is within 1e-3 of 104.9, 98 is not, unknown matches")
	}
	writeFile(t, filepath.Join(dir, TrainSummaryFile), `{"base_val_ppl": "x"}`)
	if _, _, err := ReadTrainSummary(dir); err == nil {
		t.Fatal("a malformed summary must be an error")
	}
}
