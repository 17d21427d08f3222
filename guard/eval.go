package guard

import (
	"fmt"
	"io"
	"slices"
	"time"
)

// Train embeds the corpus' training texts with emb and trains the head on them (TrainHead).
func Train(emb Embedder, items []Item, opt TrainOptions) (*Head, CrossValidation, error) {
	texts, ys := TrainingTexts(items)
	xs, err := embedBatches(emb, texts, 256)
	if err != nil {
		return nil, CrossValidation{}, fmt.Errorf("guard train: %w", err)
	}
	return TrainHead(texts, xs, ys, opt)
}

// embedBatches embeds texts n at a time.
func embedBatches(emb Embedder, texts []string, n int) ([][]float32, error) {
	out := make([][]float32, 0, len(texts))
	for start := 0; start < len(texts); start += n {
		e, err := emb.Embed(texts[start:min(start+n, len(texts))])
		if err != nil {
			return nil, err
		}
		out = append(out, e...)
	}
	return out, nil
}

// Predicted names what the guard did with a labelled item, in the labels' terms: emergency (an
// emergency verdict, or emergency guidance kept in front of an answer), medical (answered),
// nonmedical (refused) or invalid.
func Predicted(v Verdict) string {
	switch {
	case v.Kind == Emergency || v.Guidance != "":
		return "emergency"
	case v.Kind == Allow:
		return "medical"
	case v.Kind == OutOfDomain:
		return "nonmedical"
	}
	return "invalid"
}

// predictedNames are the columns of the confusion matrix.
var predictedNames = []string{"emergency", "medical", "nonmedical", "invalid"}

// EvalReport is the guard's result on a labelled set.
type EvalReport struct {
	N         int
	Count     [numClasses]int                       // items per label
	Confusion [numClasses][4]int                    // label × predicted (predictedNames)
	Latency   struct{ Mean, P50, P99, Max float64 } // milliseconds per Check
	Misses    []Miss
}

// Miss is an item the guard got wrong.
type Miss struct {
	Item      Item
	Predicted string
	Reason    string
}

// Recall is the share of the items labelled class that got their wanted verdict.
func (r *EvalReport) Recall(class int) float64 {
	if r.Count[class] == 0 {
		return 0
	}
	return float64(r.Confusion[class][class]) / float64(r.Count[class])
}

// Evaluate checks every item, one at a time, and tallies the verdicts against the labels.
func (g *Guard) Evaluate(items []Item) EvalReport {
	var r EvalReport
	lat := make([]float64, 0, len(items))
	for _, it := range items {
		start := time.Now()
		v := g.Check(it.Conversation())
		lat = append(lat, float64(time.Since(start).Microseconds())/1000)
		c := it.Class()
		if c < 0 {
			continue
		}
		p := Predicted(v)
		r.N++
		r.Count[c]++
		r.Confusion[c][slices.Index(predictedNames, p)]++
		if p != it.Label {
			r.Misses = append(r.Misses, Miss{Item: it, Predicted: p, Reason: v.Reason})
		}
	}
	if len(lat) > 0 {
		var sum float64
		for _, l := range lat {
			sum += l
		}
		slices.Sort(lat)
		r.Latency.Mean = sum / float64(len(lat))
		r.Latency.P50 = lat[len(lat)/2]
		r.Latency.P99 = lat[min(len(lat)-1, len(lat)*99/100)]
		r.Latency.Max = lat[len(lat)-1]
	}
	return r
}

// Write prints the report: per-class recall, the confusion matrix and latency.
func (r *EvalReport) Write(w io.Writer) {
	fmt.Fprintf(w, "items: %d\n\n", r.N)
	want := [numClasses]string{"emergency", "allow", "out_of_domain"}
	fmt.Fprintf(w, "%-11s %6s %-15s %s\n", "label", "items", "wanted verdict", "recall")
	for k, name := range ClassNames {
		fmt.Fprintf(w, "%-11s %6d %-15s %.3f\n", name, r.Count[k], want[k], r.Recall(k))
	}
	fmt.Fprintf(w, "\nconfusion (rows: label, columns: what the guard did)\n%-11s", "")
	for _, p := range predictedNames {
		fmt.Fprintf(w, " %10s", p)
	}
	fmt.Fprintln(w)
	for k, name := range ClassNames {
		fmt.Fprintf(w, "%-11s", name)
		for j := range predictedNames {
			fmt.Fprintf(w, " %10d", r.Confusion[k][j])
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "\nlatency per check (ms): mean %.1f, p50 %.1f, p99 %.1f, max %.1f\n",
		r.Latency.Mean, r.Latency.P50, r.Latency.P99, r.Latency.Max)
}
