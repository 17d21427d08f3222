package model

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"runtime"
	"sync"
)

// DefaultInitializerRange is the standard deviation of random weights when config.json has no
// initializer_range.
const DefaultInitializerRange = 0.02

// InitializerRange is config.json's initializer_range (the std of a fresh model's weights).
func (c *Config) InitializerRange() float64 {
	if v, ok := c.raw["initializer_range"].(float64); ok && v > 0 {
		return v
	}
	return DefaultInitializerRange
}

// IsNormWeight reports whether name is an RMSNorm weight (initialised to ones).
func (c *Config) IsNormWeight(name string) bool {
	if name == FinalNorm {
		return true
	}
	for i := 0; i < c.NumHiddenLayers; i++ {
		if name == InputNorm(i) || name == PostAttentionNorm(i) {
			return true
		}
	}
	return false
}

// TensorInfos lists every tensor of the model with its shape, in dtype d.
func (c *Config) TensorInfos(d DType) ([]TensorInfo, error) {
	names := c.TensorNames()
	infos := make([]TensorInfo, len(names))
	for i, n := range names {
		shape, err := c.TensorShape(n)
		if err != nil {
			return nil, err
		}
		infos[i] = TensorInfo{Name: n, DType: d, Shape: shape}
	}
	return infos, nil
}

// TorchDtypeName is the torch_dtype config.json records for weights of type d.
func TorchDtypeName(d DType) string {
	switch d {
	case F16:
		return "float16"
	case BF16:
		return "bfloat16"
	}
	return "float32"
}

// ParseTorchDtype maps "float32", "float16", "bfloat16" to a DType.
func ParseTorchDtype(s string) (DType, error) {
	switch s {
	case "float32", "fp32", "f32":
		return F32, nil
	case "float16", "fp16", "f16":
		return F16, nil
	case "bfloat16", "bf16":
		return BF16, nil
	}
	return "", fmt.Errorf("dtype %q is not supported (allowed: float32, float16, bfloat16)", s)
}

// randomBlock is how many elements share one random stream; streams depend only on the seed,
// the tensor name and the block index, so results do not depend on the number of workers.
const randomBlock = 1 << 20

// RandomTensor fills a tensor of the model with seeded random values, encoded as ti.DType:
// N(0, std²) for matrices, ones for norm weights. The same (seed, name) always gives the same bytes.
func (c *Config) RandomTensor(ti TensorInfo, seed uint64) []byte {
	n := ti.NumElements()
	size := ti.DType.Size()
	out := make([]byte, n*size)
	if c.IsNormWeight(ti.Name) {
		one := EncodeFloat32(ti.DType, []float32{1})
		for i := 0; i < n; i++ {
			copy(out[i*size:], one)
		}
		return out
	}
	std := c.InitializerRange()
	h := fnv.New64a()
	h.Write([]byte(ti.Name))
	nameHash := h.Sum64()
	blocks := (n + randomBlock - 1) / randomBlock
	workers := min(runtime.GOMAXPROCS(0), blocks)
	var wg sync.WaitGroup
	next := make(chan int)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range next {
				lo, hi := b*randomBlock, min((b+1)*randomBlock, n)
				fillNormal(out[lo*size:hi*size], ti.DType, std, rand.New(rand.NewPCG(seed, nameHash^uint64(b)*0x9e3779b97f4a7c15)))
			}
		}()
	}
	for b := 0; b < blocks; b++ {
		next <- b
	}
	close(next)
	wg.Wait()
	return out
}

func fillNormal(dst []byte, d DType, std float64, r *rand.Rand) {
	switch d {
	case F32:
		for i := 0; i < len(dst); i += 4 {
			binary.LittleEndian.PutUint32(dst[i:], math.Float32bits(float32(r.NormFloat64()*std)))
		}
	case F16:
		for i := 0; i < len(dst); i += 2 {
			binary.LittleEndian.PutUint16(dst[i:], Float32ToF16(float32(r.NormFloat64()*std)))
		}
	case BF16:
		for i := 0; i < len(dst); i += 2 {
			binary.LittleEndian.PutUint16(dst[i:], Float32ToBF16(float32(r.NormFloat64()*std)))
		}
	default:
		panic("fillNormal: dtype " + string(d))
	}
}

// WriteRandomModel writes random weights for c into dir, tensor by tensor (one tensor in memory at
// a time), sharded above maxShardBytes, and dir/config.json with torch_dtype set to d.
func WriteRandomModel(dir string, c *Config, d DType, seed uint64, maxShardBytes int64) error {
	if !d.IsFloat() {
		return fmt.Errorf("random model: dtype %s is not F32, F16 or BF16", d)
	}
	infos, err := c.TensorInfos(d)
	if err != nil {
		return fmt.Errorf("random model: %w", err)
	}
	byName := make(map[string]TensorInfo, len(infos))
	for _, ti := range infos {
		byName[ti.Name] = ti
	}
	err = WriteModelWeights(dir, infos, maxShardBytes, func(name string) ([]byte, error) {
		return c.RandomTensor(byName[name], seed), nil
	})
	if err != nil {
		return fmt.Errorf("random model: %w", err)
	}
	out := *c
	out.TorchDtype = TorchDtypeName(d)
	if err := out.WriteConfig(dir); err != nil {
		return fmt.Errorf("random model: %w", err)
	}
	return nil
}
