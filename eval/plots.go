package eval

import (
	"fmt"
	"image/color"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// Plot files written by WriteReport.
const (
	PlotLoss            = "loss.svg"             // training and validation loss per step
	PlotEpochPerplexity = "perplexity_epoch.svg" // validation perplexity per epoch
	PlotRouge           = "rouge.svg"            // ROUGE F1, base vs fine-tuned
	PlotPerplexity      = "perplexity.svg"       // validation perplexity, base vs fine-tuned
)

const plotW, plotH = 6 * vg.Inch, 3.5 * vg.Inch

func xys(points []XY) plotter.XYs {
	out := make(plotter.XYs, len(points))
	for i, p := range points {
		out[i].X, out[i].Y = p.X, p.Y
	}
	return out
}

func newPlot(title, x, y string) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = x
	p.Y.Label.Text = y
	p.Add(plotter.NewGrid())
	p.Legend.Top = true
	return p
}

// plotLoss draws the training loss per step and the validation loss where it was measured.
func plotLoss(m *Metrics, path string) error {
	p := newPlot("Loss per step", "step", "cross-entropy (nats per answer token)")
	if train := m.TrainLoss(); len(train) > 0 {
		l, err := plotter.NewLine(xys(train))
		if err != nil {
			return err
		}
		l.Color = plotutil.Color(0)
		p.Add(l)
		p.Legend.Add("training", l)
	}
	if val := m.ValLoss(); len(val) > 0 {
		if err := addValidation(p, val, "validation"); err != nil {
			return err
		}
	}
	return p.Save(plotW, plotH, path)
}

// addValidation draws validation points joined by a line, in the second palette colour.
func addValidation(p *plot.Plot, pts []XY, legend string) error {
	l, s, err := plotter.NewLinePoints(xys(pts))
	if err != nil {
		return err
	}
	l.Color, s.Color = plotutil.Color(1), plotutil.Color(1)
	s.Shape = draw.CircleGlyph{}
	p.Add(l, s)
	p.Legend.Add(legend, l, s)
	return nil
}

// plotEpochPerplexity draws the validation perplexity per epoch, with the base model's at epoch 0
// when the run did not measure one there.
func plotEpochPerplexity(m *Metrics, base *float64, path string) error {
	p := newPlot("Validation perplexity per epoch", "epoch", "perplexity")
	pts := m.ValPerplexityByEpoch()
	if base != nil && (len(pts) == 0 || pts[0].X > 0) {
		pts = append([]XY{{0, *base}}, pts...)
	}
	if len(pts) > 0 {
		if err := addValidation(p, pts, "validation (epoch 0: base)"); err != nil {
			return err
		}
	}
	p.X.Min = 0
	return p.Save(plotW, plotH, path)
}

// plotRouge draws grouped bars of ROUGE-1/2/L F1, one group per variant, one bar per side.
func plotRouge(r *Results, path string) error {
	p := newPlot(fmt.Sprintf("ROUGE F1 on %d validation answers (greedy)", r.NExamples), "", "F1")
	sides := []struct {
		name  string
		rouge *Rouge
	}{{"base", r.Rouge.Base}, {"fine-tuned", &r.Rouge.FineTuned}}
	if r.Rouge.Base == nil {
		sides = sides[1:]
	}
	w := vg.Points(28)
	for i, s := range sides {
		bars, err := plotter.NewBarChart(plotter.Values{s.rouge.Rouge1.F1, s.rouge.Rouge2.F1, s.rouge.RougeL.F1}, w)
		if err != nil {
			return err
		}
		bars.Color = sideColor(s.name)
		bars.LineStyle.Width = 0
		bars.Offset = w * vg.Length(2*i-len(sides)+1) / 2
		p.Add(bars)
		p.Legend.Add(s.name, bars)
	}
	p.NominalX("ROUGE-1", "ROUGE-2", "ROUGE-L")
	padBars(p, 3)
	return p.Save(plotW, plotH, path)
}

// plotPerplexity draws one bar per side.
func plotPerplexity(r *Results, path string) error {
	p := newPlot("Validation perplexity (answer tokens, lower is better)", "", "perplexity")
	names := []string{"fine-tuned"}
	vals := plotter.Values{r.Perplexity.FineTuned}
	if r.Perplexity.Base != nil {
		names = append([]string{"base"}, names...)
		vals = append(plotter.Values{*r.Perplexity.Base}, vals...)
	}
	for i := range vals {
		one := make(plotter.Values, len(vals))
		one[i] = vals[i]
		bars, err := plotter.NewBarChart(one, vg.Points(48))
		if err != nil {
			return err
		}
		bars.Color = sideColor(names[i])
		bars.LineStyle.Width = 0
		p.Add(bars)
	}
	p.NominalX(names...)
	padBars(p, len(names))
	return p.Save(plotW, plotH, path)
}

// padBars leaves half a slot beside the outer bars and room above the highest for the legend.
func padBars(p *plot.Plot, n int) {
	p.X.Min, p.X.Max = -0.5, float64(n)-0.5
	p.Y.Min, p.Y.Max = 0, p.Y.Max*1.2
}

func sideColor(name string) color.Color {
	if name == "base" {
		return plotutil.Color(2)
	}
	return plotutil.Color(0)
}
