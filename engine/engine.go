// Package engine runs an exported medassist decoder (model.onnx with a KV cache, see DESIGN.md)
// with ONNX Runtime through github.com/yalue/onnxruntime_go: session creation on CUDA or CPU,
// batched prefill and decode with a KV cache written in place by ONNX Runtime, and token generation
// with the samplers of package generation. One Engine holds one session, shared by any number of
// concurrent sequences, each with its own cache.
package engine

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/medassist/medassist/engine/internal/ortc"
	"github.com/medassist/medassist/model"
)

// ModelFile is the ONNX graph inside an exported dir.
const ModelFile = model.OnnxModelFile

// Engine is an ONNX Runtime session over an exported decoder. Its methods are safe for concurrent
// use; every sequence (Generate, Forward, Batch) owns its KV cache.
type Engine struct {
	cfg    Config
	lay    layout
	mc     *model.Config
	device string
	chunk  int

	mu     sync.RWMutex // held for reading while a run is in flight, for writing by Close
	sess   *ort.DynamicAdvancedSession
	closed bool

	deviceKV bool             // batches keep their cache in ONNX Runtime's memory (see KVCacheDevice)
	kvMem    *ortc.MemoryInfo // where, when deviceKV
	kvMu     sync.Mutex       // guards liveKV
	liveKV   map[*deviceKV]struct{}
}

// layout is what the engine needs to know about the graph: sizes, names and element types.
type layout struct {
	layers, kvHeads, headDim, vocab int
	kvElem, logitsElem              int32
	kvElemBytes                     int
	positionIDs                     bool // the graph takes position_ids
	inputs, outputs                 []string
}

// Open loads cfg.ModelDir/model.onnx. It initialises ONNX Runtime when needed and logs one line
// naming the execution provider it uses: CUDA when configured and available, else CPU (with a
// warning when "auto" had to fall back).
func Open(cfg Config, log *slog.Logger) (*Engine, error) {
	if cfg.Device == "" {
		cfg.Device = DeviceAuto
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.Default()
	}
	mc, err := model.LoadConfig(cfg.ModelDir)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w (an exported dir holds model.onnx and config.json: run medassist export)", cfg.ModelDir, err)
	}
	path := filepath.Join(cfg.ModelDir, ModelFile)
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("open %s: no %s: export the model first (medassist export --model HF_DIR --out %s)", cfg.ModelDir, ModelFile, cfg.ModelDir)
	}
	gio, err := readGraphIO(path)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", cfg.ModelDir, err)
	}
	lay, err := newLayout(mc, gio)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", cfg.ModelDir, err)
	}
	lib, err := ResolveORTLib(cfg.ORTLib)
	if err != nil {
		return nil, err
	}
	if err := InitRuntime(lib); err != nil {
		return nil, err
	}
	if cfg.IntraOpThreads == 0 {
		cfg.IntraOpThreads = runtime.NumCPU()
	}
	e := &Engine{cfg: cfg, lay: lay, mc: mc, chunk: cfg.PrefillChunk}
	if e.chunk == 0 {
		e.chunk = DefaultPrefillChunk
	}
	if err := e.createSession(path, lib, log); err != nil {
		return nil, err
	}
	if useDeviceKV(cfg.KVCache) {
		if err := errors.Join(checkHandleLayout(), e.openDeviceKV(lib)); err != nil {
			e.sess.Destroy()
			return nil, fmt.Errorf("kv cache on the device: %w", err)
		}
	}
	releaseFreedMemory()
	return e, nil
}

// createSession tries CUDA when planDevice says so, else or then the CPU, and logs the outcome once.
func (e *Engine) createSession(path, lib string, log *slog.Logger) error {
	gpu, gpuWhy := gpuPresent()
	plan, err := planDevice(e.cfg.Device, gpu, gpuWhy)
	if err != nil {
		return err
	}
	attrs := []any{"model", e.cfg.ModelDir, "layers", e.lay.layers, "kv_dtype", elemName(e.lay.kvElem),
		"intra_op_threads", e.cfg.IntraOpThreads, "reason", plan.reason}
	var cudaErr error
	if plan.tryCUDA {
		if err := preloadCUDA(lib); err != nil {
			log.Debug("NVIDIA libraries beside ONNX Runtime did not all load", "error", err)
		}
		sess, err := e.newSession(path, true)
		if err == nil {
			e.sess, e.device = sess, DeviceCUDA
			log.Info("onnx runtime session ready on CUDA", append(attrs, "provider", "CUDAExecutionProvider", "cuda_device", e.cfg.CUDADevice)...)
			return nil
		}
		if plan.mustCUDA {
			return fmt.Errorf("device cuda: %s (needs the GPU build of ONNX Runtime with its CUDA libraries: GPU=1 make setup; or use --device cpu or auto)", shortORTError(err))
		}
		cudaErr = err
	}
	sess, err := e.newSession(path, false)
	if err != nil {
		return fmt.Errorf("open %s: %w", path, err)
	}
	e.sess, e.device = sess, DeviceCPU
	attrs = append(attrs, "provider", "CPUExecutionProvider")
	if cudaErr != nil {
		log.Warn("CUDA unavailable, onnx runtime session running on the CPU", append(attrs, "cuda_error", shortORTError(cudaErr))...)
	} else {
		log.Info("onnx runtime session ready on the CPU", attrs...)
	}
	return nil
}

func (e *Engine) newSession(path string, cuda bool) (*ort.DynamicAdvancedSession, error) {
	opts, err := ort.NewSessionOptions()
	if err != nil {
		return nil, err
	}
	defer opts.Destroy()
	// Threads: intra-op as configured, inter-op 1. Spinning (ONNX Runtime's default) is off unless
	// asked for: on cores shared with other work it halved throughput (DEPENDENCIES.md); on idle
	// cores it makes a TinyLlama int4 decode step ~10% faster (BENCHMARKS.md).
	spin := "0"
	if e.cfg.AllowSpinning {
		spin = "1"
	}
	if err := errors.Join(
		opts.SetIntraOpNumThreads(e.cfg.IntraOpThreads),
		opts.SetInterOpNumThreads(1),
		opts.AddSessionConfigEntry("session.intra_op.allow_spinning", spin),
		opts.AddSessionConfigEntry("session.inter_op.allow_spinning", "0"),
		// Shapes change every decode step (the past grows): a memory pattern per shape would only
		// accumulate.
		opts.SetMemPattern(false),
	); err != nil {
		return nil, fmt.Errorf("session options: %w", err)
	}
	if e.cfg.Profile != "" {
		if err := opts.EnableProfiling(e.cfg.Profile); err != nil {
			return nil, fmt.Errorf("session options: %w", err)
		}
	}
	if cuda {
		co, err := ort.NewCUDAProviderOptions()
		if err != nil {
			return nil, err
		}
		defer co.Destroy()
		if err := co.Update(map[string]string{"device_id": fmt.Sprint(e.cfg.CUDADevice)}); err != nil {
			return nil, err
		}
		if err := opts.AppendExecutionProviderCUDA(co); err != nil {
			return nil, err
		}
	}
	return ort.NewDynamicAdvancedSession(path, e.lay.inputs, e.lay.outputs, opts)
}

// newLayout checks the graph against the DESIGN.md decoder layout and the model config.
func newLayout(mc *model.Config, gio *graphIO) (layout, error) {
	lay := layout{layers: mc.NumHiddenLayers, kvHeads: mc.NumKeyValueHeads, headDim: mc.HeadDim(), vocab: mc.VocabSize}
	var errs []error
	need := func(m map[string]valueInfo, kind, name string, elems ...int32) valueInfo {
		vi, ok := m[name]
		if !ok {
			errs = append(errs, fmt.Errorf("the graph has no %s %q (not a medassist/Optimum decoder with a KV cache? re-export it)", kind, name))
			return vi
		}
		for _, t := range elems {
			if vi.Elem == t {
				return vi
			}
		}
		errs = append(errs, fmt.Errorf("%s %q is %s", kind, name, elemName(vi.Elem)))
		return vi
	}
	need(gio.Inputs, "input", model.OnnxInputIDs, elemInt64)
	need(gio.Inputs, "input", model.OnnxAttentionMask, elemInt64)
	lay.inputs = []string{model.OnnxInputIDs, model.OnnxAttentionMask}
	if _, ok := gio.Inputs[model.OnnxPositionIDs]; ok {
		need(gio.Inputs, "input", model.OnnxPositionIDs, elemInt64)
		lay.positionIDs = true
		lay.inputs = append(lay.inputs, model.OnnxPositionIDs)
	}
	lay.logitsElem = need(gio.Outputs, "output", model.OnnxLogits, elemFloat, elemFloat16).Elem
	lay.outputs = []string{model.OnnxLogits}
	lay.kvElem = elemFloat
	for i := 0; i < mc.NumHiddenLayers; i++ {
		for _, name := range []string{model.OnnxPastKey(i), model.OnnxPastValue(i)} {
			vi := need(gio.Inputs, "input", name, elemFloat, elemFloat16)
			if i == 0 && name == model.OnnxPastKey(0) {
				lay.kvElem = vi.Elem
			} else if vi.Elem != 0 && vi.Elem != lay.kvElem {
				errs = append(errs, fmt.Errorf("input %q is %s, past_key_values.0.key is %s", name, elemName(vi.Elem), elemName(lay.kvElem)))
			}
			if len(vi.Dims) == 4 && (vi.Dims[1] != fmt.Sprint(lay.kvHeads) || vi.Dims[3] != fmt.Sprint(lay.headDim)) {
				errs = append(errs, fmt.Errorf("input %q has dims %v; config.json implies [batch, %d, past, %d]", name, vi.Dims, lay.kvHeads, lay.headDim))
			}
			lay.inputs = append(lay.inputs, name)
		}
	}
	for i := 0; i < mc.NumHiddenLayers; i++ {
		for _, name := range []string{model.OnnxPresentKey(i), model.OnnxPresentValue(i)} {
			need(gio.Outputs, "output", name, lay.kvElem)
			lay.outputs = append(lay.outputs, name)
		}
	}
	if len(gio.Inputs) != len(lay.inputs) {
		errs = append(errs, fmt.Errorf("the graph has %d inputs, expected %d (config.json says %d layers)", len(gio.Inputs), len(lay.inputs), mc.NumHiddenLayers))
	}
	lay.kvElemBytes = 4
	if lay.kvElem == elemFloat16 {
		lay.kvElemBytes = 2
	}
	return lay, errors.Join(errs...)
}

// Info describes an open engine.
type Info struct {
	Device         string // "cuda" or "cpu"
	IntraOpThreads int
	Layers         int
	KVHeads        int
	HeadDim        int
	Vocab          int
	KVDType        string // element type of the KV cache (and activations): float32 or float16
	KVCache        string // where batches keep the cache: host or device (see KVCacheDevice)
	LogitsDType    string
}

// Info describes the session and the graph's layout.
func (e *Engine) Info() Info {
	return Info{Device: e.device, IntraOpThreads: e.cfg.IntraOpThreads, Layers: e.lay.layers, KVHeads: e.lay.kvHeads,
		HeadDim: e.lay.headDim, Vocab: e.lay.vocab, KVDType: elemName(e.lay.kvElem), KVCache: e.kvCacheName(), LogitsDType: elemName(e.lay.logitsElem)}
}

// Device is the execution provider in use: "cuda" or "cpu".
func (e *Engine) Device() string { return e.device }

// MaxPositions is the longest sequence (prompt and new tokens) the model supports.
func (e *Engine) MaxPositions() int {
	if e.mc.MaxPositionEmbeddings > 0 {
		return e.mc.MaxPositionEmbeddings
	}
	return 1 << 20
}

// Close releases the session. It waits for runs in flight; later calls fail with ErrClosed.
func (e *Engine) Close() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil
	}
	e.closed = true
	e.releaseDeviceKV()
	return e.sess.Destroy()
}

// ErrClosed is returned by calls on a closed Engine.
var ErrClosed = errors.New("engine is closed")

// run executes one session call, holding the engine open meanwhile.
func (e *Engine) run(inputs, outputs []ort.Value, opts *ort.RunOptions) error {
	e.mu.RLock()
	defer e.mu.RUnlock()
	if e.closed {
		return ErrClosed
	}
	return e.sess.RunWithOptions(inputs, outputs, opts)
}

// shortORTError drops the source location ONNX Runtime puts in front of its messages.
func shortORTError(err error) string {
	msg := err.Error()
	if i := strings.LastIndex(msg, "] : "); i >= 0 {
		msg = msg[i+len("] : "):]
	}
	return msg
}
