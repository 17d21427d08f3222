package export

import (
	"fmt"
	"path/filepath"
	"testing"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/medassist/medassist/engine"
	"github.com/medassist/medassist/internal/testutil"
	"github.com/medassist/medassist/model"
)

// initORT sets up the process-wide ONNX Runtime environment the tests run exported graphs in
// (once; engine.InitRuntime is shared with the engine, which owns it in the product).
func initORT(t testing.TB) {
	t.Helper()
	if err := engine.InitRuntime(testutil.ORTLibrary(t)); err != nil {
		t.Fatal(err)
	}
}

// decoderSession runs an exported decoder with explicit inputs; outputs are pre-allocated (the
// Go binding cannot copy float16 outputs it allocates itself).
type decoderSession struct {
	cfg     *model.Config
	kvType  DType
	session *ort.DynamicAdvancedSession
	inputs  []string
	outputs []string
}

func openDecoder(t testing.TB, dir string) *decoderSession {
	t.Helper()
	initORT(t)
	cfg, err := model.LoadConfig(dir)
	if err != nil {
		t.Fatal(err)
	}
	ins, outs, err := ort.GetInputOutputInfo(filepath.Join(dir, ModelFile))
	if err != nil {
		t.Fatalf("read model I/O: %v", err)
	}
	d := &decoderSession{cfg: cfg, kvType: Float32}
	for _, in := range ins {
		d.inputs = append(d.inputs, in.Name)
		if in.Name == model.OnnxPastKey(0) && in.DataType == ort.TensorElementDataTypeFloat16 {
			d.kvType = Float16
		}
	}
	for _, o := range outs {
		d.outputs = append(d.outputs, o.Name)
	}
	opts, err := ort.NewSessionOptions()
	if err != nil {
		t.Fatal(err)
	}
	defer opts.Destroy()
	if err := opts.SetIntraOpNumThreads(1); err != nil {
		t.Fatal(err)
	}
	if err := opts.SetInterOpNumThreads(1); err != nil {
		t.Fatal(err)
	}
	d.session, err = ort.NewDynamicAdvancedSession(filepath.Join(dir, ModelFile), d.inputs, d.outputs, opts)
	if err != nil {
		t.Fatalf("create ONNX Runtime session for %s: %v", dir, err)
	}
	t.Cleanup(func() { d.session.Destroy() })
	return d
}

// kvCache is the per-layer keys and values of a batch, [b, kv_heads, len, head_dim] as float32.
type kvCache struct {
	len  int
	keys [][]float32 // per layer
	vals [][]float32
}

// step is one forward pass: ids/mask/pos are [b][s], [b][past+s], [b][s].
type step struct {
	ids, mask, pos [][]int64
}

// run returns logits [b][s][vocab] and the present cache.
func (d *decoderSession) run(t testing.TB, in step, past *kvCache) ([][][]float32, *kvCache) {
	t.Helper()
	cfg := d.cfg
	b, s := len(in.ids), len(in.ids[0])
	pastLen := 0
	if past != nil {
		pastLen = past.len
	}
	total := pastLen + s
	kv, hd := cfg.NumKeyValueHeads, cfg.HeadDim()
	var values []ort.Value
	defer func() {
		for _, v := range values {
			v.Destroy()
		}
	}()
	mk := func(v ort.Value, err error) ort.Value {
		if err != nil {
			t.Fatal(err)
		}
		values = append(values, v)
		return v
	}
	byName := map[string]ort.Value{
		model.OnnxInputIDs:      mk(ort.NewTensor(ort.NewShape(int64(b), int64(s)), flat(in.ids))),
		model.OnnxAttentionMask: mk(ort.NewTensor(ort.NewShape(int64(b), int64(total)), flat(in.mask))),
		model.OnnxPositionIDs:   mk(ort.NewTensor(ort.NewShape(int64(b), int64(s)), flat(in.pos))),
	}
	pastShape := ort.NewShape(int64(b), int64(kv), int64(pastLen), int64(hd))
	presentShape := ort.NewShape(int64(b), int64(kv), int64(total), int64(hd))
	for i := 0; i < cfg.NumHiddenLayers; i++ {
		var pk, pv []float32
		if past != nil {
			pk, pv = past.keys[i], past.vals[i]
		}
		byName[model.OnnxPastKey(i)] = mk(d.floatTensor(pastShape, pk))
		byName[model.OnnxPastValue(i)] = mk(d.floatTensor(pastShape, pv))
		byName[model.OnnxPresentKey(i)] = mk(d.floatTensor(presentShape, nil))
		byName[model.OnnxPresentValue(i)] = mk(d.floatTensor(presentShape, nil))
	}
	logitsT := mk(ort.NewEmptyTensor[float32](ort.NewShape(int64(b), int64(s), int64(cfg.VocabSize))))
	byName[model.OnnxLogits] = logitsT
	inputs := make([]ort.Value, len(d.inputs))
	for i, n := range d.inputs {
		inputs[i] = byName[n]
	}
	outputs := make([]ort.Value, len(d.outputs))
	for i, n := range d.outputs {
		outputs[i] = byName[n]
	}
	if err := d.session.Run(inputs, outputs); err != nil {
		t.Fatalf("run decoder: %v", err)
	}
	flatLogits := logitsT.(*ort.Tensor[float32]).GetData()
	logits := make([][][]float32, b)
	for bi := range logits {
		logits[bi] = make([][]float32, s)
		for si := range logits[bi] {
			off := (bi*s + si) * cfg.VocabSize
			logits[bi][si] = append([]float32(nil), flatLogits[off:off+cfg.VocabSize]...)
		}
	}
	present := &kvCache{len: total}
	for i := 0; i < cfg.NumHiddenLayers; i++ {
		present.keys = append(present.keys, d.floats(byName[model.OnnxPresentKey(i)]))
		present.vals = append(present.vals, d.floats(byName[model.OnnxPresentValue(i)]))
	}
	return logits, present
}

// floatTensor makes a KV tensor of the model's KV type from float32 data (zeros when nil).
func (d *decoderSession) floatTensor(shape ort.Shape, data []float32) (ort.Value, error) {
	n := shape.FlattenedSize()
	if data == nil {
		data = make([]float32, n)
	}
	if int64(len(data)) != n {
		return nil, fmt.Errorf("KV data has %d values, shape %v needs %d", len(data), shape, n)
	}
	if d.kvType == Float16 {
		b := model.EncodeFloat32(model.F16, data)
		if len(b) == 0 {
			b = make([]byte, 2) // the binding refuses an empty buffer; ORT accepts a larger one
		}
		return ort.NewCustomDataTensor(shape, b, ort.TensorElementDataTypeFloat16)
	}
	return ort.NewTensor(shape, append([]float32(nil), data...))
}

func (d *decoderSession) floats(v ort.Value) []float32 {
	switch x := v.(type) {
	case *ort.Tensor[float32]:
		return append([]float32(nil), x.GetData()...)
	case *ort.CustomDataTensor:
		return model.DecodeFloat32(model.F16, x.GetData())
	}
	panic(fmt.Sprintf("unexpected output type %T", v))
}

func flat(rows [][]int64) []int64 {
	var out []int64
	for _, r := range rows {
		out = append(out, r...)
	}
	return out
}
