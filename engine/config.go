package engine

import (
	"github.com/medassist/medassist/internal/config"
)

// Devices an engine can run on.
const (
	DeviceAuto = "auto" // CUDA when a GPU is there (CPU with a warning if CUDA fails), else the CPU
	DeviceCPU  = "cpu"
	DeviceCUDA = "cuda"
)

// DefaultPrefillChunk is the number of prompt tokens run per ONNX Runtime call during prefill: long
// prompts are fed in chunks through the KV cache, which bounds the attention scores' memory and lets
// a cancelled context stop between chunks.
const DefaultPrefillChunk = 512

// Config is what Open needs. The koanf tags are the flag names of commands that expose them.
type Config struct {
	// ModelDir is an exported dir: model.onnx (+ model.onnx.data) and config.json.
	ModelDir string `koanf:"model"`
	// ORTLib is the ONNX Runtime shared library; "" resolves it (see ResolveORTLib).
	ORTLib string `koanf:"ort-lib"`
	// Device is auto, cpu or cuda.
	Device string `koanf:"device"`
	// IntraOpThreads is ONNX Runtime's intra-op thread count; 0 uses one per CPU core.
	IntraOpThreads int `koanf:"intra-op-threads"`
	// AllowSpinning lets idle intra-op threads spin instead of sleeping: lower latency per operator
	// on cores nothing else needs, wasted cycles on shared ones.
	AllowSpinning bool `koanf:"allow-spinning"`
	// CUDADevice is the GPU ordinal for the CUDA execution provider.
	CUDADevice int `koanf:"cuda-device"`
	// PrefillChunk is the most prompt tokens per call (0: DefaultPrefillChunk).
	PrefillChunk int `koanf:"prefill-chunk"`
	// KVCache is where batches keep their KV cache: auto, host or device (see KVCacheAuto).
	KVCache string `koanf:"kv-cache"`
	// Profile, when set, makes ONNX Runtime write a per-operator profile (Chrome trace JSON) to
	// files starting with this path; the file is completed when the engine closes.
	Profile string `koanf:"ort-profile"`
}

// Validate reports every bad field at once.
func (c Config) Validate() error {
	return config.Join(
		config.Check(c.ModelDir != "", "model", c.ModelDir, "an exported model dir (with model.onnx)"),
		config.Check(c.Device == "" || c.Device == DeviceAuto || c.Device == DeviceCPU || c.Device == DeviceCUDA,
			"device", c.Device, "one of auto, cpu, cuda"),
		config.Check(c.IntraOpThreads >= 0, "intra-op-threads", c.IntraOpThreads, ">= 0 (0: one per core)"),
		config.Check(c.CUDADevice >= 0, "cuda-device", c.CUDADevice, ">= 0"),
		config.Check(c.KVCache == "" || c.KVCache == KVCacheAuto || c.KVCache == KVCacheHost || c.KVCache == KVCacheDevice,
			"kv-cache", c.KVCache, "one of auto, host, device"),
		config.Check(c.PrefillChunk >= 0, "prefill-chunk", c.PrefillChunk, ">= 0 (0: 512)"),
	)
}
