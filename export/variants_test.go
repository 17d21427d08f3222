package export

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/medassist/medassist/export/onnxpb"
	"github.com/medassist/medassist/internal/testutil"
	"github.com/medassist/medassist/model"
)

// External data must give the same model: tensors page-aligned in model.onnx.data, identical
// logits.
func TestExternalDataMatchesInline(t *testing.T) {
	src := testutil.Stories260K(t)
	inline := exportModel(t, src, DefaultOptions())
	opt := DefaultOptions()
	opt.ExternalData = ExternalAlways
	ext := exportModel(t, src, opt)
	if _, err := os.Stat(filepath.Join(inline, ExternalDataFile)); !os.IsNotExist(err) {
		t.Fatalf("inline export wrote %s", ExternalDataFile)
	}
	st, err := os.Stat(filepath.Join(ext, ExternalDataFile))
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(ext, ModelFile))
	if err != nil {
		t.Fatal(err)
	}
	var m onnxpb.ModelProto
	if err := proto.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	external := 0
	for _, in := range m.Graph.Initializer {
		if in.GetDataLocation() != onnxpb.TensorProto_EXTERNAL {
			continue
		}
		external++
		kv := map[string]string{}
		for _, e := range in.ExternalData {
			kv[e.GetKey()] = e.GetValue()
		}
		off, _ := strconv.ParseInt(kv["offset"], 10, 64)
		n, _ := strconv.ParseInt(kv["length"], 10, 64)
		if kv["location"] != ExternalDataFile || off%dataAlign != 0 || off+n > st.Size() || len(in.RawData) != 0 {
			t.Fatalf("%s: external data %v (file size %d)", in.GetName(), kv, st.Size())
		}
	}
	if external == 0 {
		t.Fatal("no tensor was written to the external data file")
	}
	ids := loadGolden(t, "testdata/llama/stories260k.json").Cases[1].IDs
	a, _ := openDecoder(t, inline).run(t, fullStep(ids), nil)
	e, _ := openDecoder(t, ext).run(t, fullStep(ids), nil)
	for pos := range ids {
		if d := testutil.MaxAbsDiff(a[0][pos], e[0][pos]); d != 0 {
			t.Fatalf("position %d: external-data logits differ from inline by %g", pos, d)
		}
	}
}

// float16 storage: half the size, logits close to transformers' float32 ones, the same greedy
// tokens, and a KV cache consistent with a full recompute.
func TestFloat16Export(t *testing.T) {
	src := testutil.Stories260K(t)
	opt := DefaultOptions()
	opt.DType = "float16"
	dir := exportModel(t, src, opt)
	dec := openDecoder(t, dir)
	if dec.kvType != Float16 {
		t.Fatalf("float16 export has a %v KV cache", dec.kvType)
	}
	g := loadGolden(t, "testdata/llama/stories260k.json")
	c := g.Cases[1]
	logits, _ := dec.run(t, fullStep(c.IDs), nil)
	var worst float64
	for pos, want := range c.Logits {
		worst = max(worst, testutil.MaxAbsDiff(logits[0][pos], want))
	}
	_, kvDiff := greedyCompare(t, dec, [][]int64{g.Cases[0].IDs, c.IDs}, 10)
	t.Logf("float16: max |logit - transformers float32| = %.3g, KV cache vs full = %.3g", worst, kvDiff)
	if worst > 0.1 {
		t.Errorf("float16 logits differ from float32 transformers by %g (> 0.1)", worst)
	}
	if kvDiff > 1e-2 {
		t.Errorf("float16 KV-cache logits differ from a full recompute by %g (> 1e-2)", kvDiff)
	}
	gen := greedy(t, dec, c.IDs, 20)
	assertPrefix(t, gen, c.GreedyIDs)
}

// The contrib graph (ONNX Runtime's fused operators) computes the same model: logits against
// transformers, KV cache against a full recompute (batch 1 and left-padded batch 2), and the
// golden greedy tokens.
func TestContribGraph(t *testing.T) {
	type model struct{ name, dir, golden string }
	models := []model{
		{"tiny-gqa3-untied-llama3", tinyDir("tiny-gqa3-untied-llama3"), "testdata/export/tiny-gqa3-untied-llama3/golden.json"},
		{"tiny-mha-tied-linear", tinyDir("tiny-mha-tied-linear"), "testdata/export/tiny-mha-tied-linear/golden.json"},
	}
	if dir := testutil.SharedDir() + "/models/stories260K"; fileExists(dir) {
		models = append(models, model{"stories260K", dir, "testdata/llama/stories260k.json"})
	}
	for _, m := range models {
		t.Run(m.name, func(t *testing.T) {
			opt := DefaultOptions()
			opt.Contrib = true
			dec := openDecoder(t, exportModel(t, m.dir, opt))
			g := loadGolden(t, m.golden)
			c := g.Cases[len(g.Cases)-1]
			logits, _ := dec.run(t, fullStep(c.IDs), nil)
			var worst float64
			for pos, want := range c.Logits {
				worst = max(worst, testutil.MaxAbsDiff(logits[0][pos], want))
			}
			_, kv1 := greedyCompare(t, dec, [][]int64{c.IDs[:5]}, 10)
			_, kv2 := greedyCompare(t, dec, [][]int64{c.IDs[:5], c.IDs[:12]}, 10)
			t.Logf("contrib: max |logit - transformers| = %.2g; KV cache vs full: batch 1 %.2g, batch 2 %.2g", worst, kv1, kv2)
			if worst > 1e-4 {
				t.Errorf("logits differ from transformers by %g (> 1e-4)", worst)
			}
			// GroupQueryAttention's prefill and decode kernels sum in different orders.
			if kv1 > 5e-5 || kv2 > 5e-5 {
				t.Errorf("KV-cache logits differ from a full recompute by %g / %g (> 5e-5)", kv1, kv2)
			}
			if len(c.GreedyIDs) > 0 {
				assertPrefix(t, greedy(t, dec, c.IDs, len(c.GreedyIDs)), c.GreedyIDs)
			}
		})
	}
}

func TestContribRejectsOddHeadDim(t *testing.T) {
	opt := DefaultOptions()
	opt.Contrib = true
	src := testutil.Stories260K(t) // head_dim 8 is accepted
	exportModel(t, src, opt)
	dir := t.TempDir()
	b, err := os.ReadFile(filepath.Join(tinyDir("tiny-mha-tied-linear"), "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	// head_dim 12 is not a multiple of 8.
	cfg := strings.Replace(string(b), `"head_dim": 16`, `"head_dim": 12`, 1)
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = Export(context.Background(), dir, t.TempDir(), opt, quietLog, nil)
	if err == nil || !strings.Contains(err.Error(), "head_dim") {
		t.Fatalf("contrib export of a model with head_dim 12: got %v, want an error about head_dim", err)
	}
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// Real checkpoints store bfloat16 or float16 weights (TinyLlama: bfloat16). Exporting them must
// give exactly the model whose float32 weights are those values.
func TestHalfPrecisionSourceWeights(t *testing.T) {
	dir := tinyDir("tiny-gqa3-untied-llama3")
	src, err := model.OpenWeights(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	cfgJSON, err := os.ReadFile(filepath.Join(dir, model.ConfigFile))
	if err != nil {
		t.Fatal(err)
	}
	ids := loadGolden(t, "testdata/export/tiny-gqa3-untied-llama3/golden.json").Cases[0].IDs
	for _, dt := range []model.DType{model.BF16, model.F16} {
		t.Run(string(dt), func(t *testing.T) {
			half, widened := t.TempDir(), t.TempDir()
			var halfT, wideT []model.Tensor
			for _, name := range src.Names() {
				info, _ := src.Info(name)
				f, err := src.Float32(name)
				if err != nil {
					t.Fatal(err)
				}
				h := model.EncodeFloat32(dt, f)
				halfT = append(halfT, model.Tensor{TensorInfo: model.TensorInfo{Name: name, DType: dt, Shape: info.Shape}, Data: h})
				w := model.EncodeFloat32(model.F32, model.DecodeFloat32(dt, h))
				wideT = append(wideT, model.Tensor{TensorInfo: model.TensorInfo{Name: name, DType: model.F32, Shape: info.Shape}, Data: w})
			}
			for d, ts := range map[string][]model.Tensor{half: halfT, widened: wideT} {
				if err := model.WriteSafetensors(filepath.Join(d, model.SafetensorsFile), ts, nil); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(d, model.ConfigFile), cfgJSON, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			a, _ := openDecoder(t, exportModel(t, half, DefaultOptions())).run(t, fullStep(ids), nil)
			b, _ := openDecoder(t, exportModel(t, widened, DefaultOptions())).run(t, fullStep(ids), nil)
			for pos := range ids {
				if d := testutil.MaxAbsDiff(a[0][pos], b[0][pos]); d != 0 {
					t.Fatalf("position %d: %s source differs from its float32 widening by %g", pos, dt, d)
				}
			}
		})
	}
}

// Fused projections (q/k/v and gate/up as one product each over stacked weights) compute the same
// model as separate ones: the same logits for float32, int8 and int4 weights (stacking rows changes
// no quantization block) and for the contrib graph, and a KV cache consistent with a full recompute.
func TestFusedProjections(t *testing.T) {
	dir := tinyDir("tiny-gqa3-untied-llama3")
	ids := loadGolden(t, "testdata/export/tiny-gqa3-untied-llama3/golden.json").Cases[0].IDs
	for _, c := range []struct {
		quant   Quantization
		contrib bool
	}{{QuantNone, false}, {QuantInt8, false}, {QuantInt4, false}, {QuantNone, true}} {
		t.Run(fmt.Sprintf("%s-contrib=%v", c.quant, c.contrib), func(t *testing.T) {
			opt := DefaultOptions()
			opt.Quantize, opt.Contrib = c.quant, c.contrib
			separate := openDecoder(t, exportModel(t, dir, opt))
			opt.FuseProjections = true
			fusedDir := exportModel(t, dir, opt)
			listing := graphListing(t, filepath.Join(fusedDir, ModelFile))
			if !strings.Contains(listing, "qkv_proj") || !strings.Contains(listing, "gate_up_proj") {
				t.Fatal("the fused graph has no qkv_proj / gate_up_proj node")
			}
			fused := openDecoder(t, fusedDir)
			want, _ := separate.run(t, fullStep(ids), nil)
			got, _ := fused.run(t, fullStep(ids), nil)
			var worst float64
			for pos := range ids {
				worst = max(worst, testutil.MaxAbsDiff(got[0][pos], want[0][pos]))
			}
			_, kv := greedyCompare(t, fused, [][]int64{ids[:5], ids[:9]}, 8)
			t.Logf("fused vs separate: max |Δlogit| %.2g; KV cache vs full recompute %.2g", worst, kv)
			if worst > 1e-5 {
				t.Errorf("fused logits differ from separate projections by %g (> 1e-5)", worst)
			}
			if kv > 5e-5 {
				t.Errorf("KV-cache logits differ from a full recompute by %g (> 5e-5)", kv)
			}
		})
	}
}
