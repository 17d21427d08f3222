// Package merge folds a LoRA adapter into its base model: W' = W + scale·B·A for every targeted
// projection, written as a Hugging Face model dir that loads like any base model.
package merge

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	"github.com/medassist/medassist/model"
)

// ModelFiles are the non-weight files copied from the base into a merged model.
var ModelFiles = append([]string{model.ConfigFile}, model.TokenizerFiles...)

// Merge writes base + adapter into outDir: the targeted weights updated in float32 and stored in the
// base's dtype, every other tensor byte-identical, config and tokenizer files copied. Tensors are
// processed one at a time from the memory-mapped base, so the model is never held twice in memory.
// Sharding follows model.WriteModelWeights' default (2 GB shards).
func Merge(baseDir, adapterDir, outDir string, log *slog.Logger) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	start := time.Now()
	if err := checkDistinct(baseDir, adapterDir, outDir); err != nil {
		return err
	}
	cfg, err := model.LoadConfig(baseDir)
	if err != nil {
		return fmt.Errorf("merge: base %s: %w", baseDir, err)
	}
	ad, err := OpenAdapter(adapterDir, cfg)
	if err != nil {
		return fmt.Errorf("merge: %w", err)
	}
	defer ad.Close()
	base, err := model.OpenWeights(baseDir)
	if err != nil {
		return fmt.Errorf("merge: base: %w", err)
	}
	defer base.Close()

	infos, err := plan(base, ad)
	if err != nil {
		return fmt.Errorf("merge: %w", err)
	}
	log.Info("merging adapter", "base", baseDir, "adapter", adapterDir, "out", outDir,
		"r", ad.Config.R, "alpha", ad.Config.LoraAlpha, "rslora", ad.Config.UseRSLoRA, "scale", ad.Config.Scale(),
		"targets", ad.Config.TargetModules, "matrices", len(ad.Targets), "tensors", len(infos))
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return fmt.Errorf("merge: %w", err)
	}
	err = model.WriteModelWeights(outDir, infos, model.DefaultMaxShardBytes, func(name string) ([]byte, error) {
		t, ok := ad.Targets[name]
		if !ok {
			return base.Bytes(name)
		}
		ti, _ := base.Info(name)
		return mergeOne(base, ad, t, ti)
	})
	if err != nil {
		return fmt.Errorf("merge: %w", err)
	}
	if err := model.CopyModelFiles(baseDir, outDir, ModelFiles); err != nil {
		return fmt.Errorf("merge: %w", err)
	}
	log.Info("merged model written", "out", outDir, "elapsed", time.Since(start).Round(time.Millisecond))
	return nil
}

// checkDistinct refuses to write the merged model over the base or the adapter.
func checkDistinct(baseDir, adapterDir, outDir string) error {
	if same(baseDir, outDir) {
		return fmt.Errorf("merge: output dir %s is the base model dir; choose a new output dir", outDir)
	}
	if same(adapterDir, outDir) {
		return fmt.Errorf("merge: output dir %s is the adapter dir; choose a new output dir", outDir)
	}
	return nil
}

func same(a, b string) bool {
	sa, err1 := os.Stat(a)
	sb, err2 := os.Stat(b)
	if err1 == nil && err2 == nil {
		return os.SameFile(sa, sb)
	}
	aa, _ := filepath.Abs(a)
	bb, _ := filepath.Abs(b)
	return aa == bb
}

// plan lists the base's tensors in file order (sorted by name) and checks every target against it.
func plan(base *model.Weights, ad *Adapter) ([]model.TensorInfo, error) {
	var errs []error
	for name, t := range ad.Targets {
		ti, ok := base.Info(name)
		if !ok {
			errs = append(errs, fmt.Errorf("base model has no tensor %s targeted by the adapter", name))
			continue
		}
		if !ti.DType.IsFloat() {
			errs = append(errs, fmt.Errorf("base tensor %s is %s; only F32, F16 and BF16 weights can be merged", name, ti.DType))
		}
		a, _ := ad.weights.Info(t.A)
		b, _ := ad.weights.Info(t.B)
		if len(ti.Shape) != 2 || ti.Shape[0] != b.Shape[0] || ti.Shape[1] != a.Shape[1] {
			errs = append(errs, fmt.Errorf("base tensor %s has shape %v but the adapter's B·A is [%d %d]", name, ti.Shape, b.Shape[0], a.Shape[1]))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	names := base.Names()
	infos := make([]model.TensorInfo, len(names))
	for i, n := range names {
		infos[i], _ = base.Info(n)
	}
	return infos, nil
}

// mergeOne returns W + scale·B·A in W's dtype.
func mergeOne(base *model.Weights, ad *Adapter, t Target, ti model.TensorInfo) ([]byte, error) {
	out, in := ti.Shape[0], ti.Shape[1]
	delta, err := ad.Delta(t, out, in)
	if err != nil {
		return nil, err
	}
	w, err := base.Float32(ti.Name)
	if err != nil {
		return nil, err
	}
	for i, d := range delta {
		w[i] += d
	}
	return model.EncodeFloat32(ti.DType, w), nil
}

// parallelRows calls f for every row in [0, n), split over the available cores.
func parallelRows(n int, f func(row int)) {
	workers := min(runtime.GOMAXPROCS(0), max(1, n/64))
	if workers <= 1 {
		for i := 0; i < n; i++ {
			f(i)
		}
		return
	}
	var wg sync.WaitGroup
	chunk := (n + workers - 1) / workers
	for lo := 0; lo < n; lo += chunk {
		hi := min(lo+chunk, n)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := lo; i < hi; i++ {
				f(i)
			}
		}()
	}
	wg.Wait()
}
