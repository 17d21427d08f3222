package main

import (
	"github.com/medassist/medassist/engine"
	"github.com/medassist/medassist/internal/config"
)

// ortConfig is the ONNX Runtime settings of the commands that run an exported model (bench,
// generate, eval); koanf keys are the flag names. serve has its own (serve.Config): its threads
// are shared out among concurrent sequences and it does not spin by default.
type ortConfig struct {
	ORTLib  string `koanf:"ort-lib" help:"ONNX Runtime shared library (env MEDASSIST_ORT_LIB; default .cache/native/lib/libonnxruntime.so)"`
	Device  string `koanf:"device" help:"ONNX Runtime device: auto (CUDA when available, else CPU), cpu or cuda"`
	Threads int    `koanf:"threads" help:"ONNX Runtime intra-op threads (0: one per core)"`
	Spin    bool   `koanf:"allow-spinning" help:"let ONNX Runtime's threads spin while waiting for work (its default; faster on cores nothing else needs, --allow-spinning=false on a busy machine)"`
	KVCache string `koanf:"kv-cache" help:"where the KV cache lives: device (ONNX Runtime's memory through I/O binding: on CUDA it stays on the GPU), host (Go memory), or auto (device)"`
}

func defaultORTConfig() ortConfig {
	return ortConfig{Device: engine.DeviceAuto, Spin: true, KVCache: engine.KVCacheAuto}
}

// validate names every bad setting.
func (c ortConfig) validate() error {
	return config.Join(
		config.Check(c.Threads >= 0, "threads", c.Threads, ">= 0 (0: one per core)"),
		config.Check(c.Device == engine.DeviceAuto || c.Device == engine.DeviceCPU || c.Device == engine.DeviceCUDA,
			"device", c.Device, "one of auto, cpu, cuda"),
		config.Check(c.KVCache == engine.KVCacheAuto || c.KVCache == engine.KVCacheHost || c.KVCache == engine.KVCacheDevice,
			"kv-cache", c.KVCache, "one of auto, host, device"),
	)
}

// engineConfig is the engine configuration that opens the exported model in dir.
func (c ortConfig) engineConfig(dir string) engine.Config {
	return engine.Config{ModelDir: dir, ORTLib: c.ORTLib, Device: c.Device, IntraOpThreads: c.Threads, AllowSpinning: c.Spin, KVCache: c.KVCache}
}
