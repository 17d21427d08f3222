package train

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/gomlx/gomlx/core/tensors"
	mlmodel "github.com/gomlx/gomlx/ml/model"
	"github.com/medassist/medassist/model"
)

// writeAdapter writes the store's adapters to dir in PEFT LoRA format (adapter_config.json and
// adapter_model.safetensors with A [r, in] and B [out, r]). The files are written beside dir and
// swapped in, so dir always holds one complete adapter.
func writeAdapter(dir string, store *mlmodel.Store, cfg *model.Config, ad *Adapter, base string) error {
	tmp := dir + ".tmp"
	if err := os.RemoveAll(tmp); err != nil {
		return err
	}
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return fmt.Errorf("write adapter: %w", err)
	}
	ac := model.NewLoraAdapterConfig(ad.Rank, ad.Alpha, ad.Dropout, ad.Targets, base)
	if err := ac.Write(tmp); err != nil {
		return fmt.Errorf("write adapter: %w", err)
	}
	var ts []model.Tensor
	for _, name := range adapterNames(cfg, ad) {
		v := store.GetVariable(loraPath(name))
		val, err := v.Value()
		if err != nil {
			return fmt.Errorf("write adapter: %s: %w", name, err)
		}
		ts = append(ts, model.Tensor{
			TensorInfo: model.TensorInfo{Name: name, DType: model.F32, Shape: val.Shape().Dimensions},
			Data:       model.EncodeFloat32(model.F32, tensors.MustCopyFlatData[float32](val)),
		})
	}
	if err := model.WriteSafetensors(filepath.Join(tmp, model.AdapterWeightsFile), ts, model.WeightsMetadata); err != nil {
		return fmt.Errorf("write adapter: %w", err)
	}
	old := dir + ".old"
	_ = os.RemoveAll(old)
	if _, err := os.Stat(dir); err == nil {
		if err := os.Rename(dir, old); err != nil {
			return fmt.Errorf("write adapter: %w", err)
		}
	}
	if err := os.Rename(tmp, dir); err != nil {
		return fmt.Errorf("write adapter: %w", err)
	}
	return os.RemoveAll(old)
}
