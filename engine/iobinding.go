package engine

import (
	"errors"
	"fmt"
	"reflect"
	"unsafe"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/medassist/medassist/engine/internal/ortc"
)

// KV cache placement (Config.KVCache).
const (
	// KVCacheAuto is KVCacheDevice: on CUDA it is the point, and on the CPU it measured as fast as
	// the host cache or faster (decode steps of a TinyLlama-shaped int4 export, host and device
	// steps taken in turn: median device/host ratio 0.76–0.94 over five runs on a loaded 2-core
	// machine) with less memory (no second cache buffer).
	KVCacheAuto = "auto"
	// KVCacheHost keeps the cache in two Go buffers per batch that ONNX Runtime reads and writes in
	// place (see Batch). On CUDA every step would copy the whole cache to the GPU and back.
	KVCacheHost = "host"
	// KVCacheDevice leaves the cache where ONNX Runtime puts it, through I/O binding: each step's
	// present.* outputs are allocated by the execution provider (GPU memory on CUDA) and bound as
	// the next step's past_key_values.* without passing through Go; only the token inputs go in and
	// the logits come back.
	KVCacheDevice = "device"
)

// useDeviceKV resolves the configured placement (see KVCacheAuto).
func useDeviceKV(kvCache string) bool {
	switch kvCache {
	case KVCacheDevice:
		return true
	case KVCacheHost:
		return false
	}
	return true
}

func (e *Engine) kvCacheName() string {
	if e.deviceKV {
		return KVCacheDevice
	}
	return KVCacheHost
}

// deviceKV is a Batch's KV cache as ONNX Runtime values in the provider's memory, and the I/O
// binding that feeds them back. The values come from the session's allocator: the engine releases
// every live cache before it destroys the session.
type deviceKV struct {
	e       *Engine
	binding *ortc.Binding
	past    []unsafe.Pointer // OrtValues: the last step's present.*, in the layout's past order; nil before the first step
	empty   []ort.Value      // zero-length past tensors for the first step
}

// openDeviceKV prepares the engine for device-resident caches: the C API and the memory info.
func (e *Engine) openDeviceKV(lib string) error {
	if err := ortc.Load(lib); err != nil {
		return err
	}
	name, id := "Cpu", 0
	if e.device == DeviceCUDA {
		name, id = "Cuda", e.cfg.CUDADevice
	}
	m, err := ortc.NewMemoryInfo(name, id)
	if err != nil {
		return err
	}
	e.kvMem, e.deviceKV, e.liveKV = m, true, map[*deviceKV]struct{}{}
	return nil
}

func newDeviceKV(e *Engine, rows int) (*deviceKV, error) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	if e.closed {
		return nil, ErrClosed
	}
	bd, err := ortc.NewBinding(sessionHandle(e.sess))
	if err != nil {
		return nil, err
	}
	d := &deviceKV{e: e, binding: bd}
	lay := e.lay
	shape := ort.NewShape(int64(rows), int64(lay.kvHeads), 0, int64(lay.headDim))
	for range 2 * lay.layers {
		v, err := ort.NewCustomDataTensor(shape, make([]byte, lay.kvElemBytes), lay.kvType())
		if err != nil {
			d.releaseLocked()
			return nil, err
		}
		d.empty = append(d.empty, v)
	}
	e.kvMu.Lock()
	e.liveKV[d] = struct{}{}
	e.kvMu.Unlock()
	return d, nil
}

// run binds the token inputs (Go memory), the cache, the logits (Go memory) and the present
// outputs (left to the provider), runs the session, and keeps the presents as the next past.
func (d *deviceKV) run(tokens []ort.Value, logits ort.Value, opts *ort.RunOptions) error {
	e := d.e
	e.mu.RLock()
	defer e.mu.RUnlock()
	if e.closed {
		return ErrClosed
	}
	if d.binding == nil {
		return errors.New("batch is closed")
	}
	lay := e.lay
	bd := d.binding
	bd.Clear()
	var errs []error
	for i, v := range tokens {
		errs = append(errs, bd.BindInput(lay.inputs[i], valueHandle(v)))
	}
	for i, name := range lay.inputs[len(tokens):] {
		v := valueHandle(d.empty[i])
		if d.past != nil {
			v = d.past[i]
		}
		errs = append(errs, bd.BindInput(name, v))
	}
	errs = append(errs, bd.BindOutput(lay.outputs[0], valueHandle(logits)))
	for _, name := range lay.outputs[1:] {
		errs = append(errs, bd.BindOutputToDevice(name, e.kvMem))
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if err := bd.Run(sessionHandle(e.sess), firstPointer(opts)); err != nil {
		return err
	}
	outs, err := bd.Outputs(len(lay.outputs))
	if err != nil {
		return err
	}
	ortc.ReleaseValues(outs[:1]) // the logits are in Go memory already
	ortc.ReleaseValues(d.past)
	d.past = outs[1:]
	return nil
}

// release frees the cache and the binding (Batch.Close); idempotent.
func (d *deviceKV) release() {
	d.e.kvMu.Lock()
	defer d.e.kvMu.Unlock()
	delete(d.e.liveKV, d)
	d.releaseLocked()
}

func (d *deviceKV) releaseLocked() {
	ortc.ReleaseValues(d.past)
	destroyAll(d.empty)
	if d.binding != nil {
		d.binding.Release()
	}
	d.past, d.empty, d.binding = nil, nil, nil
}

// releaseDeviceKV frees every live cache; Close calls it, holding e.mu, before the session goes.
func (e *Engine) releaseDeviceKV() {
	e.kvMu.Lock()
	defer e.kvMu.Unlock()
	for d := range e.liveKV {
		d.releaseLocked()
	}
	clear(e.liveKV)
	e.kvMem.Release()
}

func (l layout) kvType() ort.TensorElementDataType {
	if l.kvElem == elemFloat16 {
		return ort.TensorElementDataTypeFloat16
	}
	return ort.TensorElementDataTypeFloat
}

// The C handles inside onnxruntime_go's objects. Each of these types keeps its handle as its
// first field (checked by checkHandleLayout, once, against the onnxruntime_go in go.mod).
func sessionHandle(s *ort.DynamicAdvancedSession) unsafe.Pointer {
	return firstPointer((*ort.AdvancedSession)(firstPointer(s)))
}

func valueHandle(v ort.Value) unsafe.Pointer { return firstPointer(v.GetInternals()) }

// firstPointer reads the pointer at the start of *p.
func firstPointer[T any](p *T) unsafe.Pointer {
	if p == nil {
		return nil
	}
	return *(*unsafe.Pointer)(unsafe.Pointer(p))
}

// checkHandleLayout verifies that the onnxruntime_go types read by firstPointer start with the
// pointer expected, so that a different version of the binding fails here rather than crashing.
func checkHandleLayout() error {
	for _, c := range []struct {
		t     reflect.Type
		field string
		to    reflect.Type
	}{
		{reflect.TypeFor[ort.DynamicAdvancedSession](), "s", reflect.TypeFor[*ort.AdvancedSession]()},
		{reflect.TypeFor[ort.AdvancedSession](), "ortSession", nil},
		{reflect.TypeFor[ort.RunOptions](), "o", nil},
		{reflect.TypeFor[ort.ValueInternalData](), "ortValue", nil},
	} {
		if c.t.NumField() == 0 {
			return fmt.Errorf("onnxruntime_go %s has no fields", c.t)
		}
		f := c.t.Field(0)
		if f.Name != c.field || f.Offset != 0 || f.Type.Kind() != reflect.Pointer || (c.to != nil && f.Type != c.to) {
			return fmt.Errorf("onnxruntime_go %s starts with %s %s, not the %s handle the device KV cache reads: use --kv-cache host",
				c.t, f.Name, f.Type, c.field)
		}
	}
	return nil
}
