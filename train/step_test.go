package train

import (
	"encoding/json"
	mlmodel "github.com/gomlx/gomlx/ml/model"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/gomlx/gomlx/core/tensors"
	"github.com/medassist/medassist/internal/testutil"
	"github.com/medassist/medassist/model"
	"github.com/medassist/medassist/train/data"
)

// stepGolden is testdata/train/lora_step.json, written by tools/oracle/lora_step_golden.py.
type stepGolden struct {
	Hyperparameters struct {
		Rank        int     `json:"rank"`
		Alpha       float64 `json:"alpha"`
		LR          float64 `json:"lr"`
		WeightDecay float64 `json:"weight_decay"`
		ClipNorm    float64 `json:"clip_norm"`
		Schedule    string  `json:"schedule"`
		Warmup      int     `json:"warmup_steps"`
		Total       int     `json:"total_steps"`
	} `json:"hyperparameters"`
	Targets []string `json:"targets"`
	Steps   []struct {
		MicroBatches []struct {
			IDs    [][]int32 `json:"ids"`
			Labels [][]int32 `json:"labels"`
		} `json:"micro_batches"`
		Targets      int       `json:"targets"`
		SummedLosses []float64 `json:"summed_losses"`
		LR           float64   `json:"lr"`
		GradNorm     float64   `json:"grad_norm"`
	} `json:"steps"`
	Schedules struct {
		Warmup      int                  `json:"warmup_steps"`
		Total       int                  `json:"total_steps"`
		Multipliers map[string][]float64 `json:"multipliers"`
	} `json:"schedules"`
}

func trainTestdata(parts ...string) string {
	return filepath.Join(append([]string{testutil.RepoRoot(), "testdata", "train"}, parts...)...)
}

func loadStepGolden(t *testing.T) *stepGolden {
	t.Helper()
	b, err := os.ReadFile(trainTestdata("lora_step.json"))
	if err != nil {
		t.Fatalf("golden step (make it with tools/oracle/lora_step_golden.py): %v", err)
	}
	var g stepGolden
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatal(err)
	}
	return &g
}

// readSafetensors loads every tensor of a safetensors file as float32 tensors.
func readSafetensors(t *testing.T, path string) map[string]*tensors.Tensor {
	t.Helper()
	w, err := model.OpenSafetensors(path)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	out := map[string]*tensors.Tensor{}
	for _, name := range w.Names() {
		info, _ := w.Info(name)
		data, err := w.Float32(name)
		if err != nil {
			t.Fatal(err)
		}
		out[name] = tensors.FromFlatDataAndDimensions(data, info.Shape...)
	}
	return out
}

func TestScheduleMatchesTransformers(t *testing.T) {
	g := loadStepGolden(t)
	for name, want := range g.Schedules.Multipliers {
		for step, w := range want {
			if got := lrMultiplier(name, step, g.Schedules.Warmup, g.Schedules.Total); math.Abs(got-w) > 1e-12 {
				t.Errorf("%s step %d: multiplier %v, transformers %v", name, step, got, w)
			}
		}
	}
}

// TestLoRAStepsMatchPEFT runs three optimizer steps (two accumulated micro-batches each, clipping
// active, weight decay, cosine schedule) from the same base model, initial adapter and batches as
// HF PEFT + torch AdamW, and compares every adapter tensor after each step.
func TestLoRAStepsMatchPEFT(t *testing.T) {
	g := loadStepGolden(t)
	hp := g.Hyperparameters
	s := testSession(t, trainTestdata("tiny"))
	ad := &Adapter{Rank: hp.Rank, Alpha: hp.Alpha}
	for _, name := range g.Targets {
		p, err := model.ParseProjection(name)
		if err != nil {
			t.Fatal(err)
		}
		ad.Targets = append(ad.Targets, p)
	}
	s.adapter = ad
	if err := setAdapters(s.store, readSafetensors(t, trainTestdata("init_adapter", model.AdapterWeightsFile))); err != nil {
		t.Fatal(err)
	}
	opt, err := newOptimizer(s, 0, hp.WeightDecay, hp.ClipNorm)
	if err != nil {
		t.Fatal(err)
	}
	for i, st := range g.Steps {
		var mbs []*batch
		for _, mb := range st.MicroBatches {
			var exs []data.Example
			for r := range mb.IDs {
				n := len(mb.IDs[r])
				for n > 0 && mb.IDs[r][n-1] == 0 && mb.Labels[r][n-1] == data.IgnoreIndex {
					n--
				}
				exs = append(exs, data.Example{IDs: mb.IDs[r][:n], Labels: mb.Labels[r][:n]})
			}
			mbs = append(mbs, makeBatch(exs, seqBucket))
		}
		targets := 0
		for _, b := range mbs {
			targets += b.targets
		}
		if targets != st.Targets {
			t.Fatalf("step %d: %d labelled targets, oracle counted %d", i+1, targets, st.Targets)
		}
		for j, b := range mbs {
			loss, err := opt.Step(b, float32(1/float64(targets)))
			if err != nil {
				t.Fatal(err)
			}
			if math.Abs(loss-st.SummedLosses[j]) > 1e-4*math.Abs(st.SummedLosses[j]) {
				t.Errorf("step %d micro %d: summed loss %.6f, torch %.6f", i+1, j, loss, st.SummedLosses[j])
			}
		}
		lr := hp.LR * lrMultiplier(hp.Schedule, i, hp.Warmup, hp.Total)
		if math.Abs(lr-st.LR) > 1e-12 {
			t.Errorf("step %d: lr %v, transformers %v", i+1, lr, st.LR)
		}
		norm, err := opt.Apply(i+1, lr)
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(norm-st.GradNorm) > 1e-5*st.GradNorm {
			t.Errorf("step %d: gradient norm %.7f, torch %.7f", i+1, norm, st.GradNorm)
		}
		want := readSafetensors(t, trainTestdata("step"+string(rune('1'+i))+".safetensors"))
		worst, worstName := 0.0, ""
		for name, w := range want {
			got := tensors.MustCopyFlatData[float32](s.store.GetVariable(loraPath(name)).MustValue())
			for k, v := range tensors.MustCopyFlatData[float32](w) {
				if d := math.Abs(float64(got[k] - v)); d > worst {
					worst, worstName = d, name
				}
			}
		}
		t.Logf("step %d: lr %.4g, grad norm %.6f (torch %.6f), max |Δ| over %d adapter tensors %.2g (%s)",
			i+1, lr, norm, st.GradNorm, len(want), worst, worstName)
		if worst > 1e-5 {
			t.Errorf("step %d: adapter differs from PEFT by %g in %s (want ≤ 1e-5)", i+1, worst, worstName)
		}
	}
}

// setAdapters creates or overwrites the LoRA variables from PEFT-named tensors.
func setAdapters(store *mlmodel.Store, named map[string]*tensors.Tensor) error {
	for name, t := range named {
		path := loraPath(name)
		if v := store.GetVariable(path); v != nil {
			if err := v.SetValue(t); err != nil {
				return err
			}
			continue
		}
		if _, err := store.CreateVariable(path, t); err != nil {
			return err
		}
	}
	return nil
}
