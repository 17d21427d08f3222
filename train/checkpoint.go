package train

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/gomlx/core/tensors"
	mlmodel "github.com/gomlx/gomlx/ml/model"
	"github.com/medassist/medassist/model"
)

// Checkpoints live in OUT/checkpoints/step-NNNNNNNN/, each holding state.json (the loop's position
// and history) and state.safetensors (every store variable but the frozen base and the gradient
// accumulators, which are zero between optimizer steps: adapters, AdamW moments, the random-number
// state). A checkpoint is written under a temporary name and renamed into place, so a process killed
// at any moment leaves only complete checkpoints behind; resuming takes the newest.
//
// GoMLX's own checkpoint package is not used: it creates its JSON file before writing the data, so a
// kill during a save leaves a broken newest checkpoint that the next start would try to load.
const (
	checkpointsDir     = "checkpoints"
	checkpointPrefix   = "step-"
	stateJSONFile      = "state.json"
	stateTensorsFile   = "state.safetensors"
	checkpointVersion  = 1
	checkpointTmpInfix = ".tmp-"
)

// trainState is the loop's position and history, saved with every checkpoint.
type trainState struct {
	Version     int    `json:"version"`
	Fingerprint string `json:"fingerprint"`
	// Step counts optimizer steps done; Epoch and EpochStep locate the next one.
	Step      int `json:"step"`
	Epoch     int `json:"epoch"`
	EpochStep int `json:"epoch_step"`

	BaseValPerplexity float64   `json:"base_val_perplexity"`
	ValPerplexity     []float64 `json:"val_perplexity"`  // at the end of each finished epoch
	BestPerplexity    float64   `json:"best_perplexity"` // 0 before the first validation
	BestEpoch         int       `json:"best_epoch"`      // epoch (0-based) of the best validation
	BestStep          int       `json:"best_step"`

	Elapsed     time.Duration `json:"elapsed_ns"`    // wall time of the run so far, validation and saving included
	TrainTime   time.Duration `json:"train_time_ns"` // time inside optimizer steps
	TrainTokens int64         `json:"train_tokens"`  // real tokens processed by optimizer steps
}

// savedVariable reports whether a store variable belongs in a checkpoint.
func savedVariable(v *mlmodel.Variable) bool {
	p := v.Path()
	return !strings.HasPrefix(p, baseScope+"/") && !strings.HasPrefix(p, accScope+"/")
}

// saveCheckpoint writes the store's training state and st as checkpoint number st.Step in dir.
func saveCheckpoint(dir string, store *mlmodel.Store, st *trainState) error {
	final := filepath.Join(dir, fmt.Sprintf("%s%08d", checkpointPrefix, st.Step))
	tmp := fmt.Sprintf("%s%s%d", final, checkpointTmpInfix, os.Getpid())
	if err := os.RemoveAll(tmp); err != nil {
		return err
	}
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	var ts []model.Tensor
	for v := range store.IterVariables() {
		if !savedVariable(v) {
			continue
		}
		t, err := variableTensor(v)
		if err != nil {
			return fmt.Errorf("checkpoint: %w", err)
		}
		ts = append(ts, t)
	}
	sort.Slice(ts, func(i, j int) bool { return ts[i].Name < ts[j].Name })
	if err := model.WriteSafetensors(filepath.Join(tmp, stateTensorsFile), ts, nil); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(tmp, stateJSONFile), append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	if err := os.RemoveAll(final); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	if err := os.Rename(tmp, final); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	return nil
}

// variableTensor encodes a float32 or uint64 (random-number state, stored as I64 bits) variable.
func variableTensor(v *mlmodel.Variable) (model.Tensor, error) {
	val, err := v.Value()
	if err != nil {
		return model.Tensor{}, fmt.Errorf("%s: %w", v.Path(), err)
	}
	info := model.TensorInfo{Name: v.Path(), Shape: val.Shape().Dimensions}
	var data []byte
	switch val.DType() {
	case dtypes.Float32:
		info.DType = model.F32
		data = model.EncodeFloat32(model.F32, tensors.MustCopyFlatData[float32](val))
	case dtypes.Uint64:
		info.DType = model.I64
		u := tensors.MustCopyFlatData[uint64](val)
		data = make([]byte, 8*len(u))
		for i, x := range u {
			binary.LittleEndian.PutUint64(data[8*i:], x)
		}
	default:
		return model.Tensor{}, fmt.Errorf("%s: dtype %s cannot be checkpointed", v.Path(), val.DType())
	}
	if info.Shape == nil {
		info.Shape = []int{}
	}
	return model.Tensor{TensorInfo: info, Data: data}, nil
}

// removeStaleTemps deletes temporary checkpoint dirs left by killed saves.
func removeStaleTemps(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if e.IsDir() && strings.HasPrefix(e.Name(), checkpointPrefix) && strings.Contains(e.Name(), checkpointTmpInfix) {
			if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
				return err
			}
		}
	}
	return nil
}

// latestCheckpoint returns the newest complete checkpoint dir in dir ("" when there is none).
func latestCheckpoint(dir string) (string, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	var names []string
	for _, e := range entries {
		name := e.Name()
		if !e.IsDir() || !strings.HasPrefix(name, checkpointPrefix) || strings.Contains(name, checkpointTmpInfix) {
			continue
		}
		names = append(names, name)
	}
	if len(names) == 0 {
		return "", nil
	}
	sort.Strings(names)
	return filepath.Join(dir, names[len(names)-1]), nil
}

// pruneCheckpoints keeps the newest keep checkpoints in dir.
func pruneCheckpoints(dir string, keep int) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	var names []string
	for _, e := range entries {
		if e.IsDir() && strings.HasPrefix(e.Name(), checkpointPrefix) && !strings.Contains(e.Name(), checkpointTmpInfix) {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	for len(names) > keep {
		if err := os.RemoveAll(filepath.Join(dir, names[0])); err != nil {
			return err
		}
		names = names[1:]
	}
	return nil
}

// loadCheckpoint restores the store's training state from a checkpoint dir and returns its state.
// Every variable a checkpoint would save must be in the file, with the same shape.
func loadCheckpoint(path string, store *mlmodel.Store) (*trainState, error) {
	b, err := os.ReadFile(filepath.Join(path, stateJSONFile))
	if err != nil {
		return nil, fmt.Errorf("resume: %w", err)
	}
	var st trainState
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("resume: %s: %w", path, err)
	}
	if st.Version != checkpointVersion {
		return nil, fmt.Errorf("resume: %s has checkpoint version %d, this build reads %d", path, st.Version, checkpointVersion)
	}
	w, err := model.OpenSafetensors(filepath.Join(path, stateTensorsFile))
	if err != nil {
		return nil, fmt.Errorf("resume: %w", err)
	}
	defer w.Close()
	for v := range store.IterVariables() {
		if !savedVariable(v) {
			continue
		}
		info, ok := w.Info(v.Path())
		if !ok {
			return nil, fmt.Errorf("resume: %s lacks %s; remove the checkpoints to start over", path, v.Path())
		}
		if !slices.Equal(info.Shape, v.Shape().Dimensions) {
			return nil, fmt.Errorf("resume: %s: %s has shape %v, the model wants %v", path, v.Path(), info.Shape, v.Shape().Dimensions)
		}
		raw, err := w.Bytes(v.Path())
		if err != nil {
			return nil, err
		}
		var t *tensors.Tensor
		switch v.DType() {
		case dtypes.Float32:
			t = tensors.FromFlatDataAndDimensions(model.DecodeFloat32(info.DType, raw), info.Shape...)
		case dtypes.Uint64:
			u := make([]uint64, len(raw)/8)
			for i := range u {
				u[i] = binary.LittleEndian.Uint64(raw[8*i:])
			}
			t = tensors.FromFlatDataAndDimensions(u, info.Shape...)
		default:
			return nil, fmt.Errorf("resume: %s: unexpected dtype %s", v.Path(), v.DType())
		}
		if err := v.SetValue(t); err != nil {
			return nil, err
		}
	}
	return &st, nil
}
