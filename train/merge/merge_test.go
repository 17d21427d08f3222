package merge

import (
	"bytes"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/medassist/medassist/internal/testutil"
	"github.com/medassist/medassist/model"
)

// testdata written by tools/oracle/peft_merge_golden.py (HF PEFT merge_and_unload).
func goldenDir(parts ...string) string {
	return filepath.Join(append([]string{testutil.RepoRoot(), "testdata", "merge"}, parts...)...)
}

func openW(t *testing.T, dir string) *model.Weights {
	t.Helper()
	w, err := model.OpenWeights(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return w
}

func openAdapterW(t *testing.T, dir string) *model.Weights {
	t.Helper()
	w, err := model.OpenSafetensors(filepath.Join(dir, model.AdapterWeightsFile))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return w
}

// TestMergeMatchesPEFT merges adapters written by HF PEFT (a target list, and a regex with rsLoRA)
// and compares with PEFT's own merge_and_unload.
func TestMergeMatchesPEFT(t *testing.T) {
	for _, tc := range []struct {
		name    string
		targets int // targeted matrices
	}{{"list", 6}, {"rslora", 8}} {
		t.Run(tc.name, func(t *testing.T) {
			out := t.TempDir()
			if err := Merge(goldenDir("base"), goldenDir(tc.name, "adapter"), out, nil); err != nil {
				t.Fatal(err)
			}
			got, want, base := openW(t, out), openW(t, goldenDir(tc.name, "merged")), openW(t, goldenDir("base"))
			if g, w := strings.Join(got.Names(), ","), strings.Join(want.Names(), ","); g != w {
				t.Fatalf("tensor names differ:\n got %s\nwant %s", g, w)
			}
			changed, worst := 0, 0.0
			for _, n := range want.Names() {
				g, _ := got.Float32(n)
				w, _ := want.Float32(n)
				d := testutil.MaxAbsDiff(g, w)
				worst = max(worst, d)
				if d > 1e-5 {
					t.Errorf("%s: max |merged - PEFT| = %g > 1e-5", n, d)
				}
				gb, _ := got.Bytes(n)
				bb, _ := base.Bytes(n)
				if !bytes.Equal(gb, bb) {
					changed++
				}
			}
			if changed != tc.targets {
				t.Errorf("%d tensors changed, want %d (the targeted ones)", changed, tc.targets)
			}
			t.Logf("max |merged - PEFT merge_and_unload| over all tensors: %.3g (%d matrices changed)", worst, changed)
			for _, f := range []string{model.ConfigFile} {
				a, _ := os.ReadFile(filepath.Join(goldenDir("base"), f))
				b, err := os.ReadFile(filepath.Join(out, f))
				if err != nil || !bytes.Equal(a, b) {
					t.Errorf("%s not copied verbatim: %v", f, err)
				}
			}
			if _, err := model.LoadConfig(out); err != nil {
				t.Errorf("merged dir does not load as a base: %v", err)
			}
		})
	}
}

// writeAdapter writes a medassist-style adapter for the golden base with random A and B.
func writeAdapter(t *testing.T, dir string, cfg *model.Config, ac *model.AdapterConfig, dtype model.DType, seed uint64) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 1))
	projs, err := ac.Projections()
	if err != nil {
		t.Fatal(err)
	}
	var ts []model.Tensor
	for i := 0; i < cfg.NumHiddenLayers; i++ {
		for _, p := range projs {
			out, in := cfg.ProjShape(p)
			ts = append(ts, randTensor(rng, model.LoraA(i, p), dtype, ac.R, in), randTensor(rng, model.LoraB(i, p), dtype, out, ac.R))
		}
	}
	if err := ac.Write(dir); err != nil {
		t.Fatal(err)
	}
	if err := model.WriteSafetensors(filepath.Join(dir, model.AdapterWeightsFile), ts, nil); err != nil {
		t.Fatal(err)
	}
}

func randTensor(rng *rand.Rand, name string, d model.DType, rows, cols int) model.Tensor {
	v := make([]float32, rows*cols)
	for i := range v {
		v[i] = float32(rng.NormFloat64() * 0.3)
	}
	return model.Tensor{TensorInfo: model.TensorInfo{Name: name, DType: d, Shape: []int{rows, cols}}, Data: model.EncodeFloat32(d, v)}
}

// copyBase writes the golden base with its weights converted to dtype.
func copyBase(t *testing.T, dtype model.DType) string {
	t.Helper()
	dir := t.TempDir()
	src := openW(t, goldenDir("base"))
	var ts []model.Tensor
	for _, n := range src.Names() {
		ti, _ := src.Info(n)
		v, _ := src.Float32(n)
		ti.DType = dtype
		ts = append(ts, model.Tensor{TensorInfo: ti, Data: model.EncodeFloat32(dtype, v)})
	}
	if err := model.WriteSafetensors(filepath.Join(dir, model.SafetensorsFile), ts, model.WeightsMetadata); err != nil {
		t.Fatal(err)
	}
	if err := model.CopyModelFiles(goldenDir("base"), dir, []string{model.ConfigFile}); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestMergeFormula checks merged = base + (alpha/r)·B·A, computed here in float64, for every
// targeted matrix, and byte-identical other tensors, for F32 and BF16 bases (written in the base's dtype).
func TestMergeFormula(t *testing.T) {
	for _, dt := range []model.DType{model.F32, model.BF16} {
		t.Run(string(dt), func(t *testing.T) {
			baseDir := copyBase(t, dt)
			cfg, err := model.LoadConfig(baseDir)
			if err != nil {
				t.Fatal(err)
			}
			ac := model.NewLoraAdapterConfig(4, 16, 0.05, []model.Projection{model.QProj, model.KProj, model.OProj, model.UpProj}, baseDir)
			adDir, out := t.TempDir(), t.TempDir()
			writeAdapter(t, adDir, cfg, ac, dt, 7)
			if err := Merge(baseDir, adDir, out, nil); err != nil {
				t.Fatal(err)
			}
			base, ad, got := openW(t, baseDir), openAdapterW(t, adDir), openW(t, out)
			scale := 16.0 / 4
			targeted := map[string]bool{}
			worst := 0.0
			for i := 0; i < cfg.NumHiddenLayers; i++ {
				for _, p := range []model.Projection{model.QProj, model.KProj, model.OProj, model.UpProj} {
					name := model.ProjWeight(i, p)
					targeted[name] = true
					rows, cols := cfg.ProjShape(p)
					W, _ := base.Float32(name)
					A, _ := ad.Float32(model.LoraA(i, p))
					B, _ := ad.Float32(model.LoraB(i, p))
					g, _ := got.Float32(name)
					if ti, _ := got.Info(name); ti.DType != dt {
						t.Errorf("%s written as %s, base is %s", name, ti.DType, dt)
					}
					for o := 0; o < rows; o++ {
						for j := 0; j < cols; j++ {
							want := float64(W[o*cols+j])
							for k := 0; k < 4; k++ {
								want += scale * float64(B[o*4+k]) * float64(A[k*cols+j])
							}
							tol := 1e-5
							if dt == model.BF16 {
								tol = math.Abs(want)/256 + 1e-6 // half a bf16 step: one rounding
							}
							d := math.Abs(float64(g[o*cols+j]) - want)
							worst = max(worst, d)
							if d > tol {
								t.Fatalf("%s[%d,%d]: got %g, want %g", name, o, j, g[o*cols+j], want)
							}
						}
					}
				}
			}
			for _, n := range base.Names() {
				if targeted[n] {
					continue
				}
				a, _ := base.Bytes(n)
				b, _ := got.Bytes(n)
				if !bytes.Equal(a, b) {
					t.Errorf("untargeted tensor %s changed", n)
				}
			}
			t.Logf("%s: max |merged - (W + alpha/r·B·A)| = %.3g", dt, worst)
		})
	}
}

// TestAdapterNameVariants accepts tensor names without the base_model.model. prefix and with
// PEFT's adapter name (lora_A.default.weight).
func TestAdapterNameVariants(t *testing.T) {
	cfg, err := model.LoadConfig(goldenDir("base"))
	if err != nil {
		t.Fatal(err)
	}
	src := openAdapterW(t, goldenDir("list", "adapter"))
	dir := t.TempDir()
	var ts []model.Tensor
	for i, n := range src.Names() {
		ti, _ := src.Info(n)
		b, _ := src.Bytes(n)
		if i%2 == 0 {
			ti.Name = strings.TrimPrefix(n, peftPrefix)
		} else {
			ti.Name = strings.Replace(n, ".weight", ".default.weight", 1)
		}
		ts = append(ts, model.Tensor{TensorInfo: ti, Data: append([]byte(nil), b...)})
	}
	if err := model.WriteSafetensors(filepath.Join(dir, model.AdapterWeightsFile), ts, nil); err != nil {
		t.Fatal(err)
	}
	if err := model.CopyModelFiles(goldenDir("list", "adapter"), dir, []string{model.AdapterConfigFile}); err != nil {
		t.Fatal(err)
	}
	ad, err := OpenAdapter(dir, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer ad.Close()
	if len(ad.Targets) != 6 {
		t.Fatalf("%d targets, want 6", len(ad.Targets))
	}
}

// TestAdapterErrors: broken adapters are refused with errors that name the problem.
func TestAdapterErrors(t *testing.T) {
	cfg, err := model.LoadConfig(goldenDir("base"))
	if err != nil {
		t.Fatal(err)
	}
	targets := []model.Projection{model.QProj, model.VProj}
	cases := []struct {
		name string
		edit func(dir string, ac *model.AdapterConfig, ts []model.Tensor) (*model.AdapterConfig, []model.Tensor)
		want string
	}{
		{"missing B", func(_ string, ac *model.AdapterConfig, ts []model.Tensor) (*model.AdapterConfig, []model.Tensor) {
			return ac, drop(ts, model.LoraB(1, model.VProj))
		}, "missing " + model.LoraA(1, model.VProj)},
		{"extra tensor", func(_ string, ac *model.AdapterConfig, ts []model.Tensor) (*model.AdapterConfig, []model.Tensor) {
			ac.TargetModules = []string{"q_proj"}
			return ac, ts
		}, "4 tensors not covered by target_modules"},
		{"wrong rank", func(_ string, ac *model.AdapterConfig, ts []model.Tensor) (*model.AdapterConfig, []model.Tensor) {
			ac.R = 3
			return ac, ts
		}, "expected [3 16]"},
		{"bad pattern", func(dir string, ac *model.AdapterConfig, ts []model.Tensor) (*model.AdapterConfig, []model.Tensor) {
			return nil, ts
		}, "matches no projection"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			ac := model.NewLoraAdapterConfig(2, 4, 0, targets, "base")
			writeAdapter(t, dir, cfg, ac, model.F32, 1)
			w := openAdapterW(t, dir)
			var ts []model.Tensor
			for _, n := range w.Names() {
				ti, _ := w.Info(n)
				b, _ := w.Bytes(n)
				ts = append(ts, model.Tensor{TensorInfo: ti, Data: append([]byte(nil), b...)})
			}
			ac2, ts := tc.edit(dir, ac, ts)
			if ac2 == nil {
				b, _ := os.ReadFile(filepath.Join(dir, model.AdapterConfigFile))
				b = bytes.Replace(b, []byte(`"target_modules": [`), []byte(`"target_modules": "lm_head", "x": [`), 1)
				os.WriteFile(filepath.Join(dir, model.AdapterConfigFile), b, 0o644)
			} else if err := ac2.Write(dir); err != nil {
				t.Fatal(err)
			}
			if err := model.WriteSafetensors(filepath.Join(dir, model.AdapterWeightsFile), ts, nil); err != nil {
				t.Fatal(err)
			}
			_, err := OpenAdapter(dir, cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
	t.Run("out is base", func(t *testing.T) {
		err := Merge(goldenDir("base"), goldenDir("list", "adapter"), goldenDir("base"), nil)
		if err == nil || !strings.Contains(err.Error(), "is the base model dir") {
			t.Fatalf("error %v", err)
		}
	})
}

// TestAdapterUnsupportedKeys: PEFT options the merge cannot apply are refused, each named.
func TestAdapterUnsupportedKeys(t *testing.T) {
	cfg, err := model.LoadConfig(goldenDir("base"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	writeAdapter(t, dir, cfg, model.NewLoraAdapterConfig(2, 4, 0, []model.Projection{model.QProj}, "base"), model.F32, 1)
	path := filepath.Join(dir, model.AdapterConfigFile)
	b, _ := os.ReadFile(path)
	b = bytes.Replace(b, []byte(`"peft_type"`), []byte(`"use_dora": true, "rank_pattern": {"q_proj": 4}, "peft_type"`), 1)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = OpenAdapter(dir, cfg)
	for _, want := range []string{"use_dora", "rank_pattern"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not name %s", err, want)
		}
	}
}

func drop(ts []model.Tensor, name string) []model.Tensor {
	var out []model.Tensor
	for _, t := range ts {
		if t.Name != name {
			out = append(out, t)
		}
	}
	return out
}
