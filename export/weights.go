package export

import (
	"fmt"
	"unsafe"

	"github.com/medassist/medassist/model"
)

// weights turns the model's tensors into graph initializers in the exported storage format.
// Each initializer's bytes are produced only when the writer asks for them, from the memory-mapped
// safetensors, so that an export holds about one converted tensor at a time.
type weights struct {
	g     *graph
	src   *model.Weights
	dtype DType // float32 or float16 storage of unquantized tensors
	opt   Options

	added map[string]string // what was already added (kind:source name) -> initializer name
	last  *quantCache       // the latest quantization, shared by its packed/scales/zero-point initializers
}

type quantCache struct {
	name string
	q    *quantized
}

func newWeights(g *graph, src *model.Weights, opt Options) *weights {
	return &weights{g: g, src: src, dtype: opt.activationType(), opt: opt, added: map[string]string{}}
}

// Initializer name suffixes for tensors stored in another layout than Hugging Face's.
const (
	transposedSuffix = "_transposed" // [in, out], for MatMul
	quantSuffix      = "_quant"      // MatMulNBits packed blocks [out, blocks, bytes per block]
	scalesSuffix     = "_scales"     // MatMulNBits scales [out · blocks]
	zerosSuffix      = "_zero_points"
)

// add registers init once under key and returns its name.
func (w *weights) add(key string, init *Initializer) string {
	if n, ok := w.added[key]; ok {
		return n
	}
	w.g.addInit(init)
	w.added[key] = init.Name
	return init.Name
}

// tensor returns the initializer holding source tensor name in its own layout (norm weights, the
// embedding table), stored in the export's float type.
func (w *weights) tensor(name string) string {
	info, _ := w.src.Info(name)
	src, dtype := w.src, w.dtype
	return w.add("tensor:"+name, &Initializer{Name: name, DType: dtype, Dims: toInt64(info.Shape),
		Data: func() ([]byte, error) { return convert(src, name, dtype) },
		Done: func() { releasePages(src, name) }})
}

// linear applies weight name (Hugging Face layout [out, in]) to x: y = x·Wᵀ, a MatMul with the
// transposed weight, or MatMulNBits with the blockwise-quantized weight.
func (w *weights) linear(x, name string, out, in int) string {
	return w.stacked(x, stack{name: name, parts: []string{name}, rows: out}, in)
}

// stack is one or more weights [rows_i, in] stacked along their output rows into one matrix, named
// name: the projections that read the same input, applied by one MatMul (or MatMulNBits) node.
// Stacking rows changes no quantization block (blocks run along the input dimension).
type stack struct {
	name  string
	parts []string
	rows  int // the sum of the parts' rows
}

// read returns the stacked weights as float32 [rows, in]: a view of the mapped file for one float32
// part, else a copy; the parts' pages are released once read.
func (s stack) read(src *model.Weights) ([]float32, error) {
	if len(s.parts) == 1 {
		return readFloat32(src, s.parts[0])
	}
	var all []float32
	for _, p := range s.parts {
		f, err := readFloat32(src, p)
		if err != nil {
			return nil, err
		}
		all = append(all, f...)
		releasePages(src, p)
	}
	return all, nil
}

// release gives back the pages of every part.
func (s stack) release(src *model.Weights) {
	for _, p := range s.parts {
		releasePages(src, p)
	}
}

// stacked applies the weight stack s to x: y = x·Sᵀ, [.., s.rows].
func (w *weights) stacked(x string, s stack, in int) string {
	if w.quantizes(s.parts[0]) {
		return w.matMulNBits(x, s, in)
	}
	src, dtype := w.src, w.dtype
	wt := w.add("transposed:"+s.name, &Initializer{
		Name: s.name + transposedSuffix, DType: dtype, Dims: []int64{int64(in), int64(s.rows)},
		Data: func() ([]byte, error) {
			f, err := s.read(src)
			if err != nil {
				return nil, err
			}
			return floatBytes(transpose2D(f, s.rows, in), dtype), nil
		},
		Done: func() { s.release(src) },
	})
	return w.g.op("MatMul", x, wt)
}

// quantizes reports whether the weight named is quantized: every projection when quantizing, and
// the LM head unless Options.KeepHead asks for full precision. (The embedding lookup is never
// quantized: it reads a few rows per token, so quantizing it would save disk but no time.)
func (w *weights) quantizes(name string) bool {
	if w.opt.Quantize.Bits() == 0 {
		return false
	}
	if name == model.LMHead || name == model.EmbedTokens {
		return !w.opt.KeepHead
	}
	return true
}

// matMulNBits is the com.microsoft MatMulNBits node for the quantized weight stack s [rows, in].
func (w *weights) matMulNBits(x string, s stack, in int) string {
	name, out := s.name, s.rows
	l := quantLayout{rows: out, cols: in, bits: w.opt.Quantize.Bits(), block: w.opt.blockSize(in), asymmetric: w.opt.Asymmetric}
	quantOf := func() (*quantized, error) {
		if w.last != nil && w.last.name == name {
			return w.last.q, nil
		}
		f, err := s.read(w.src)
		if err != nil {
			return nil, err
		}
		w.last = &quantCache{name: name, q: l.quantize(f)}
		s.release(w.src)
		return w.last.q, nil
	}
	part := func(get func(*quantized) []byte) func() ([]byte, error) {
		return func() ([]byte, error) {
			q, err := quantOf()
			if err != nil {
				return nil, err
			}
			return get(q), nil
		}
	}
	dtype := w.dtype
	inputs := []string{x,
		w.add("quant:"+name, &Initializer{Name: name + quantSuffix, DType: Uint8,
			Dims: []int64{int64(out), int64(l.blocks()), int64(l.blockBytes())},
			Data: part(func(q *quantized) []byte { return q.packed })}),
		w.add("scales:"+name, &Initializer{Name: name + scalesSuffix, DType: dtype,
			Dims: []int64{int64(out * l.blocks())},
			Data: part(func(q *quantized) []byte { return floatBytes(q.scales, dtype) })}),
	}
	if l.asymmetric {
		inputs = append(inputs, w.add("zeros:"+name, &Initializer{Name: name + zerosSuffix, DType: Uint8,
			Dims: []int64{int64(l.zeroBytes())},
			Data: part(func(q *quantized) []byte { return q.zeros })}))
	}
	attrs := []attr{
		attrInt("K", int64(in)), attrInt("N", int64(out)),
		attrInt("bits", int64(l.bits)), attrInt("block_size", int64(l.block)),
	}
	if w.opt.AccuracyLevel > 0 {
		attrs = append(attrs, attrInt("accuracy_level", int64(w.opt.AccuracyLevel)))
	}
	return w.g.domainOpN(microsoftDomain, "MatMulNBits", 1, inputs, attrs...)[0]
}

// convert reads tensor name as float32 and returns it as dtype bytes.
func convert(src *model.Weights, name string, dtype DType) ([]byte, error) {
	info, ok := src.Info(name)
	if !ok {
		return nil, fmt.Errorf("tensor %s not found in the weights", name)
	}
	if dtype == Float32 && info.DType == model.F32 {
		return src.Bytes(name) // already in the right layout: write the mapped bytes directly
	}
	f, err := readFloat32(src, name)
	if err != nil {
		return nil, err
	}
	return floatBytes(f, dtype), nil
}

// readFloat32 returns tensor name as float32 values: for an F32 tensor a read-only view of the
// mapped file (no copy, so exporting a 4 GB model does not double its memory), else a converted copy.
func readFloat32(src *model.Weights, name string) ([]float32, error) {
	info, ok := src.Info(name)
	if !ok {
		return nil, fmt.Errorf("tensor %s not found in the weights", name)
	}
	if info.DType == model.F32 && littleEndian {
		b, err := src.Bytes(name)
		if err != nil {
			return nil, err
		}
		if len(b) > 0 && uintptr(unsafe.Pointer(unsafe.SliceData(b)))%4 == 0 {
			return unsafe.Slice((*float32)(unsafe.Pointer(unsafe.SliceData(b))), len(b)/4), nil
		}
	}
	return src.Float32(name)
}

// transpose2D returns the [cols, rows] transpose of a row-major [rows, cols] matrix, in tiles so
// that both sides are read and written mostly sequentially.
func transpose2D(m []float32, rows, cols int) []float32 {
	const tile = 64
	out := make([]float32, len(m))
	for r0 := 0; r0 < rows; r0 += tile {
		r1 := min(r0+tile, rows)
		for c0 := 0; c0 < cols; c0 += tile {
			c1 := min(c0+tile, cols)
			for r := r0; r < r1; r++ {
				row := m[r*cols : (r+1)*cols]
				for c := c0; c < c1; c++ {
					out[c*rows+r] = row[c]
				}
			}
		}
	}
	return out
}

// floatBytes is v as little-endian float32 (without copying on a little-endian host) or float16 bytes.
func floatBytes(v []float32, dtype DType) []byte {
	if dtype == Float16 {
		return model.EncodeFloat32(model.F16, v)
	}
	if !littleEndian {
		return model.EncodeFloat32(model.F32, v)
	}
	if len(v) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&v[0])), 4*len(v))
}

// littleEndian is true on the usual hosts (amd64, arm64), where float32 memory is already in
// the files' byte order and can be viewed instead of converted.
var littleEndian = func() bool {
	x := uint16(1)
	return *(*byte)(unsafe.Pointer(&x)) == 1
}()

func toInt64(s []int) []int64 {
	out := make([]int64, len(s))
	for i, v := range s {
		out[i] = int64(v)
	}
	return out
}
