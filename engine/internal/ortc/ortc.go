// Package ortc reaches the parts of ONNX Runtime's C API that github.com/yalue/onnxruntime_go does
// not wrap, for I/O binding with outputs left in the execution provider's memory (a CUDA device's,
// or the CPU's): BindOutputToDevice, memory infos for a device, binding raw OrtValues and running a
// session with a binding and run options. It works on the ONNX Runtime library onnxruntime_go has
// already loaded, through raw handles (unsafe.Pointer) that the caller takes from onnxruntime_go's
// objects.
//
// onnxruntime_c_api.h and onnxruntime_ep_c_api.h are ONNX Runtime's headers (MIT licence, Microsoft),
// copied from onnxruntime_go v1.27: the same API version (24) it asks for.
package ortc

/*
#cgo LDFLAGS: -ldl
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>
#include "onnxruntime_c_api.h"

static const OrtApi *api;

static const char *load_api(const char *path) {
	void *h = dlopen(path, RTLD_NOW | RTLD_NOLOAD);
	if (h == NULL) return "the ONNX Runtime library is not loaded";
	const OrtApiBase *(*get)(void) = (const OrtApiBase *(*)(void)) dlsym(h, "OrtGetApiBase");
	if (get == NULL) return "OrtGetApiBase not found";
	api = get()->GetApi(ORT_API_VERSION);
	if (api == NULL) return "API version 24 not available";
	return NULL;
}

// take_error returns status's message (to be freed) and releases status; NULL for success.
static char *take_error(OrtStatus *status) {
	if (status == NULL) return NULL;
	const char *msg = api->GetErrorMessage(status);
	char *out = strdup(msg ? msg : "unknown error");
	api->ReleaseStatus(status);
	return out;
}

static char *memory_info(const char *name, int device, OrtMemoryInfo **out) {
	return take_error(api->CreateMemoryInfo(name, OrtArenaAllocator, device, OrtMemTypeDefault, out));
}
static void release_memory_info(OrtMemoryInfo *m) { api->ReleaseMemoryInfo(m); }

static char *create_binding(OrtSession *s, OrtIoBinding **out) { return take_error(api->CreateIoBinding(s, out)); }
static void release_binding(OrtIoBinding *b) { api->ReleaseIoBinding(b); }
static void clear_binding(OrtIoBinding *b) { api->ClearBoundInputs(b); api->ClearBoundOutputs(b); }

static char *bind_input(OrtIoBinding *b, const char *name, OrtValue *v) { return take_error(api->BindInput(b, name, v)); }
static char *bind_output(OrtIoBinding *b, const char *name, OrtValue *v) { return take_error(api->BindOutput(b, name, v)); }
static char *bind_output_to_device(OrtIoBinding *b, const char *name, OrtMemoryInfo *m) {
	return take_error(api->BindOutputToDevice(b, name, m));
}
static char *run(OrtSession *s, OrtRunOptions *o, OrtIoBinding *b) { return take_error(api->RunWithBinding(s, o, b)); }

// outputs copies the bound output values (new references) into out[0..n); *count is how many.
static char *outputs(OrtIoBinding *b, OrtValue **out, size_t n, size_t *count) {
	OrtAllocator *alloc;
	char *err = take_error(api->GetAllocatorWithDefaultOptions(&alloc));
	if (err) return err;
	OrtValue **vals = NULL;
	err = take_error(api->GetBoundOutputValues(b, alloc, &vals, count));
	if (err) return err;
	for (size_t i = 0; i < *count; i++) {
		if (i < n) out[i] = vals[i]; else api->ReleaseValue(vals[i]);
	}
	return vals ? take_error(api->AllocatorFree(alloc, vals)) : NULL;
}
static void release_value(OrtValue *v) { api->ReleaseValue(v); }
*/
import "C"

import (
	"errors"
	"fmt"
	"sync"
	"unsafe"
)

var loaded struct {
	sync.Mutex
	path string
}

// Load finds the C API in the ONNX Runtime library at path, which must already be loaded (by
// onnxruntime_go's InitializeEnvironment). Later calls do nothing.
func Load(path string) error {
	loaded.Lock()
	defer loaded.Unlock()
	if loaded.path != "" {
		return nil
	}
	cs := C.CString(path)
	defer C.free(unsafe.Pointer(cs))
	if msg := C.load_api(cs); msg != nil {
		return fmt.Errorf("onnx runtime C API from %s: %s", path, C.GoString(msg))
	}
	loaded.path = path
	return nil
}

func check(msg *C.char) error {
	if msg == nil {
		return nil
	}
	defer C.free(unsafe.Pointer(msg))
	return errors.New(C.GoString(msg))
}

// MemoryInfo names where ONNX Runtime puts a bound output: "Cpu", or "Cuda" with a device ordinal.
type MemoryInfo struct{ p *C.OrtMemoryInfo }

// NewMemoryInfo describes the arena memory of the named location (ONNX Runtime's names: "Cpu",
// "Cuda").
func NewMemoryInfo(name string, device int) (*MemoryInfo, error) {
	cs := C.CString(name)
	defer C.free(unsafe.Pointer(cs))
	m := &MemoryInfo{}
	if err := check(C.memory_info(cs, C.int(device), &m.p)); err != nil {
		return nil, fmt.Errorf("memory info %s:%d: %w", name, device, err)
	}
	return m, nil
}

// Release frees the memory info.
func (m *MemoryInfo) Release() {
	if m != nil && m.p != nil {
		C.release_memory_info(m.p)
		m.p = nil
	}
}

// Binding is an OrtIoBinding of one session. Names are kept as C strings across steps.
type Binding struct {
	p     *C.OrtIoBinding
	names map[string]*C.char
}

// NewBinding creates a binding for session (an OrtSession*).
func NewBinding(session unsafe.Pointer) (*Binding, error) {
	b := &Binding{names: map[string]*C.char{}}
	if err := check(C.create_binding((*C.OrtSession)(session), &b.p)); err != nil {
		return nil, fmt.Errorf("create io binding: %w", err)
	}
	return b, nil
}

func (b *Binding) name(n string) *C.char {
	cs, ok := b.names[n]
	if !ok {
		cs = C.CString(n)
		b.names[n] = cs
	}
	return cs
}

// Clear forgets every bound input and output.
func (b *Binding) Clear() { C.clear_binding(b.p) }

// BindInput binds an OrtValue* to the named input. ONNX Runtime copies it to the provider's memory
// when it lives elsewhere.
func (b *Binding) BindInput(name string, value unsafe.Pointer) error {
	if err := check(C.bind_input(b.p, b.name(name), (*C.OrtValue)(value))); err != nil {
		return fmt.Errorf("bind input %s: %w", name, err)
	}
	return nil
}

// BindOutput binds a pre-allocated OrtValue* to the named output.
func (b *Binding) BindOutput(name string, value unsafe.Pointer) error {
	if err := check(C.bind_output(b.p, b.name(name), (*C.OrtValue)(value))); err != nil {
		return fmt.Errorf("bind output %s: %w", name, err)
	}
	return nil
}

// BindOutputToDevice lets ONNX Runtime allocate the named output in m's memory; Outputs returns it.
func (b *Binding) BindOutputToDevice(name string, m *MemoryInfo) error {
	if err := check(C.bind_output_to_device(b.p, b.name(name), m.p)); err != nil {
		return fmt.Errorf("bind output %s to device: %w", name, err)
	}
	return nil
}

// Run runs session (an OrtSession*) on the binding with runOptions (an OrtRunOptions*, may be nil).
func (b *Binding) Run(session, runOptions unsafe.Pointer) error {
	return check(C.run((*C.OrtSession)(session), (*C.OrtRunOptions)(runOptions), b.p))
}

// Outputs returns the bound outputs, in binding order, as new OrtValue references: the caller
// releases each with ReleaseValue.
func (b *Binding) Outputs(n int) ([]unsafe.Pointer, error) {
	buf := (*[1 << 20]*C.OrtValue)(C.malloc(C.size_t(n) * C.size_t(unsafe.Sizeof(uintptr(0)))))[:n:n]
	defer C.free(unsafe.Pointer(&buf[0]))
	var count C.size_t
	if err := check(C.outputs(b.p, &buf[0], C.size_t(n), &count)); err != nil {
		return nil, fmt.Errorf("bound outputs: %w", err)
	}
	out := make([]unsafe.Pointer, min(int(count), n))
	for i := range out {
		out[i] = unsafe.Pointer(buf[i])
	}
	if int(count) != n {
		ReleaseValues(out)
		return nil, fmt.Errorf("bound outputs: %d values, expected %d", count, n)
	}
	return out, nil
}

// Release frees the binding (not the values bound to it).
func (b *Binding) Release() {
	if b.p != nil {
		C.release_binding(b.p)
		b.p = nil
	}
	for _, cs := range b.names {
		C.free(unsafe.Pointer(cs))
	}
	b.names = nil
}

// ReleaseValues drops OrtValue references (nil entries are skipped).
func ReleaseValues(vs []unsafe.Pointer) {
	for i, v := range vs {
		if v != nil {
			C.release_value((*C.OrtValue)(v))
			vs[i] = nil
		}
	}
}
