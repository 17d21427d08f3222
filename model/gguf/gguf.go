// Package gguf reads llama.cpp's GGUF model files (version 2 and 3): the metadata, the tensor
// infos and the tensor data, dequantized to float32 exactly as the reference gguf-py package does,
// and converts a Llama-architecture GGUF into a Hugging Face model dir (Import).
package gguf

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
)

// magic is "GGUF" read as a little-endian uint32.
const magic = 0x46554747

// DefaultAlignment is the tensor data alignment when general.alignment is absent.
const DefaultAlignment = 32

// Bounds that reject corrupt headers before they allocate: no real model comes near them.
const (
	maxStringBytes = 64 << 20
	maxArrayItems  = 1 << 26
	maxDims        = 4
	maxTensors     = 1 << 20
	maxKeys        = 1 << 20
)

// ValueType is the type tag of a metadata value.
type ValueType uint32

// Metadata value types (gguf.h's gguf_type).
const (
	TypeUint8 ValueType = iota
	TypeInt8
	TypeUint16
	TypeInt16
	TypeUint32
	TypeInt32
	TypeFloat32
	TypeBool
	TypeString
	TypeArray
	TypeUint64
	TypeInt64
	TypeFloat64
)

// TensorInfo describes one tensor of the file. Dims is in ggml order: Dims[0] is the length of a
// row (the fastest-varying index), so the row-major shape is Dims reversed (Shape).
type TensorInfo struct {
	Name   string
	Dims   []uint64
	Type   GGMLType
	Offset uint64 // from the start of the data section
}

// Shape is the row-major (numpy, PyTorch) shape: Dims reversed.
func (t TensorInfo) Shape() []int {
	s := make([]int, len(t.Dims))
	for i, d := range t.Dims {
		s[len(t.Dims)-1-i] = int(d)
	}
	return s
}

// NumElements is the product of the dims.
func (t TensorInfo) NumElements() int64 {
	n := int64(1)
	for _, d := range t.Dims {
		n *= int64(d)
	}
	return n
}

// NumBytes is the size of the tensor's data in the file.
func (t TensorInfo) NumBytes() int64 {
	bs, ts := t.Type.blockSize(), t.Type.typeSize()
	return t.NumElements() / int64(bs) * int64(ts)
}

// File is an open GGUF file. Metadata values are Go values: uint8 … float64, bool, string, or for
// arrays a typed slice ([]string, []int32, []float32, …; []any for arrays of arrays).
type File struct {
	Path      string
	Version   uint32
	Keys      []string // metadata keys in file order
	Metadata  map[string]any
	Tensors   []TensorInfo
	Alignment int64

	f         *os.File
	size      int64
	dataStart int64
	byName    map[string]int
}

// Open reads the header of a GGUF file and checks that every tensor lies inside the file.
func Open(path string) (*File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("gguf: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("gguf: %w", err)
	}
	gf := &File{Path: path, f: f, size: st.Size(), Metadata: map[string]any{}, byName: map[string]int{}}
	if err := gf.readHeader(); err != nil {
		f.Close()
		return nil, fmt.Errorf("gguf %s: %w", path, err)
	}
	return gf, nil
}

// Close closes the file.
func (gf *File) Close() error { return gf.f.Close() }

// headerReader reads little-endian values and counts the bytes it consumed.
type headerReader struct {
	r   *bufio.Reader
	pos int64
	err error
}

func (h *headerReader) read(n int) []byte {
	if h.err != nil {
		return nil
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(h.r, b); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			err = errors.New("unexpected end of file in the header (truncated file?)")
		}
		h.err = err
		return nil
	}
	h.pos += int64(n)
	return b
}

func (h *headerReader) u8() uint8 {
	if b := h.read(1); b != nil {
		return b[0]
	}
	return 0
}

func (h *headerReader) u16() uint16 {
	if b := h.read(2); b != nil {
		return binary.LittleEndian.Uint16(b)
	}
	return 0
}

func (h *headerReader) u32() uint32 {
	if b := h.read(4); b != nil {
		return binary.LittleEndian.Uint32(b)
	}
	return 0
}

func (h *headerReader) u64() uint64 {
	if b := h.read(8); b != nil {
		return binary.LittleEndian.Uint64(b)
	}
	return 0
}

func (h *headerReader) str() string {
	n := h.u64()
	if h.err == nil && n > maxStringBytes {
		h.err = fmt.Errorf("string of %d bytes at offset %d (corrupt header)", n, h.pos-8)
	}
	return string(h.read(int(n)))
}

func (gf *File) readHeader() error {
	h := &headerReader{r: bufio.NewReaderSize(gf.f, 1<<20)}
	if m := h.u32(); h.err == nil && m != magic {
		return fmt.Errorf("not a GGUF file (magic %#x; want \"GGUF\")", m)
	}
	gf.Version = h.u32()
	if h.err == nil && gf.Version&0xFFFF == 0 && gf.Version != 0 {
		return errors.New("big-endian GGUF files are not supported (convert it with llama.cpp's gguf-py for a little-endian host)")
	}
	if h.err == nil && (gf.Version < 2 || gf.Version > 3) {
		return fmt.Errorf("GGUF version %d is not supported (only 2 and 3)", gf.Version)
	}
	nTensors, nKeys := h.u64(), h.u64()
	if h.err == nil && (nTensors > maxTensors || nKeys > maxKeys) {
		return fmt.Errorf("header claims %d tensors and %d metadata keys (corrupt header)", nTensors, nKeys)
	}
	for i := uint64(0); i < nKeys && h.err == nil; i++ {
		key := h.str()
		v := h.value(ValueType(h.u32()), 0)
		if h.err != nil {
			return fmt.Errorf("metadata key %d (%q): %w", i, key, h.err)
		}
		if _, dup := gf.Metadata[key]; dup {
			return fmt.Errorf("metadata key %q appears twice", key)
		}
		gf.Keys = append(gf.Keys, key)
		gf.Metadata[key] = v
	}
	for i := uint64(0); i < nTensors && h.err == nil; i++ {
		t := h.tensorInfo()
		if h.err != nil {
			return fmt.Errorf("tensor info %d: %w", i, h.err)
		}
		if _, dup := gf.byName[t.Name]; dup {
			return fmt.Errorf("tensor %q appears twice", t.Name)
		}
		gf.byName[t.Name] = len(gf.Tensors)
		gf.Tensors = append(gf.Tensors, t)
	}
	if h.err != nil {
		return h.err
	}
	gf.Alignment = DefaultAlignment
	if v, ok := gf.Metadata["general.alignment"]; ok {
		a, err := asInt(v)
		if err != nil || a <= 0 || a%8 != 0 {
			return fmt.Errorf("general.alignment = %v: must be a positive multiple of 8", v)
		}
		gf.Alignment = a
	}
	gf.dataStart = alignUp(h.pos, gf.Alignment)
	return gf.checkTensors()
}

func alignUp(x, a int64) int64 { return (x + a - 1) / a * a }

// value reads one metadata value of type t (depth guards nested arrays).
func (h *headerReader) value(t ValueType, depth int) any {
	switch t {
	case TypeUint8:
		return h.u8()
	case TypeInt8:
		return int8(h.u8())
	case TypeUint16:
		return h.u16()
	case TypeInt16:
		return int16(h.u16())
	case TypeUint32:
		return h.u32()
	case TypeInt32:
		return int32(h.u32())
	case TypeFloat32:
		return math.Float32frombits(h.u32())
	case TypeBool:
		b := h.u8()
		if h.err == nil && b > 1 {
			h.err = fmt.Errorf("bool value %d (corrupt header)", b)
		}
		return b == 1
	case TypeString:
		return h.str()
	case TypeUint64:
		return h.u64()
	case TypeInt64:
		return int64(h.u64())
	case TypeFloat64:
		return math.Float64frombits(h.u64())
	case TypeArray:
		if depth > 2 {
			h.err = errors.New("arrays nested too deep (corrupt header)")
			return nil
		}
		et, n := ValueType(h.u32()), h.u64()
		if h.err == nil && n > maxArrayItems {
			h.err = fmt.Errorf("array of %d items (corrupt header)", n)
		}
		if h.err != nil {
			return nil
		}
		return h.array(et, int(n), depth)
	}
	if h.err == nil {
		h.err = fmt.Errorf("unknown metadata value type %d", t)
	}
	return nil
}

// array reads n values of type et into a typed slice.
func (h *headerReader) array(et ValueType, n, depth int) any {
	switch et {
	case TypeString:
		return readArray[string](h, n, func() string { return h.str() })
	case TypeInt32:
		return readArray[int32](h, n, func() int32 { return int32(h.u32()) })
	case TypeUint32:
		return readArray[uint32](h, n, h.u32)
	case TypeFloat32:
		return readArray[float32](h, n, func() float32 { return math.Float32frombits(h.u32()) })
	case TypeUint8, TypeInt8, TypeUint16, TypeInt16, TypeBool, TypeUint64, TypeInt64, TypeFloat64, TypeArray:
		return readArray[any](h, n, func() any { return h.value(et, depth+1) })
	}
	h.err = fmt.Errorf("unknown array element type %d", et)
	return nil
}

func readArray[T any](h *headerReader, n int, next func() T) []T {
	out := make([]T, 0, min(n, 1<<16))
	for i := 0; i < n && h.err == nil; i++ {
		out = append(out, next())
	}
	return out
}

func (h *headerReader) tensorInfo() TensorInfo {
	t := TensorInfo{Name: h.str()}
	nd := h.u32()
	if h.err == nil && (nd == 0 || nd > maxDims) {
		h.err = fmt.Errorf("tensor %q has %d dims (1 to %d allowed)", t.Name, nd, maxDims)
		return t
	}
	for j := uint32(0); j < nd && h.err == nil; j++ {
		t.Dims = append(t.Dims, h.u64())
	}
	t.Type = GGMLType(h.u32())
	t.Offset = h.u64()
	return t
}

// checkTensors validates each tensor's type, shape and placement: inside the data section,
// aligned, and not overlapping another.
func (gf *File) checkTensors() error {
	type span struct {
		name       string
		begin, end int64
	}
	spans := make([]span, 0, len(gf.Tensors))
	dataLen := gf.size - gf.dataStart
	for _, t := range gf.Tensors {
		if !t.Type.Supported() {
			return fmt.Errorf("tensor %s: type %s is not supported (supported: %s)", t.Name, t.Type, supportedList())
		}
		// No supported type stores more than 8 elements per byte (4-bit types store 2), so a tensor
		// with more elements than 8× the file size cannot fit; this also keeps n from overflowing.
		maxElems := gf.size * 8
		n := int64(1)
		for _, d := range t.Dims {
			if d == 0 || d > uint64(maxElems) || n > maxElems/int64(d) {
				return fmt.Errorf("tensor %s: bad dims %v", t.Name, t.Dims)
			}
			n *= int64(d)
		}
		if t.Dims[0]%uint64(t.Type.blockSize()) != 0 {
			return fmt.Errorf("tensor %s: row length %d is not a multiple of the %s block size %d", t.Name, t.Dims[0], t.Type, t.Type.blockSize())
		}
		begin := int64(t.Offset)
		if t.Offset > uint64(gf.size) || begin%gf.Alignment != 0 {
			return fmt.Errorf("tensor %s: data offset %d is outside the file or not aligned to %d", t.Name, t.Offset, gf.Alignment)
		}
		end := begin + t.NumBytes()
		if end > dataLen {
			return fmt.Errorf("tensor %s: data [%d, %d) runs past the end of the file (%d data bytes; truncated download?)", t.Name, begin, end, dataLen)
		}
		spans = append(spans, span{t.Name, begin, end})
	}
	sort.Slice(spans, func(i, j int) bool { return spans[i].begin < spans[j].begin })
	for i := 1; i < len(spans); i++ {
		if spans[i].begin < spans[i-1].end {
			return fmt.Errorf("tensor %s overlaps tensor %s (corrupt file)", spans[i].name, spans[i-1].name)
		}
	}
	return nil
}

// Tensor finds a tensor by name.
func (gf *File) Tensor(name string) (TensorInfo, bool) {
	i, ok := gf.byName[name]
	if !ok {
		return TensorInfo{}, false
	}
	return gf.Tensors[i], true
}

// Raw reads a tensor's bytes as stored.
func (gf *File) Raw(t TensorInfo) ([]byte, error) {
	return gf.rawInto(t, make([]byte, t.NumBytes()))
}

// rawInto reads a tensor's bytes into buf (len(buf) == t.NumBytes()).
func (gf *File) rawInto(t TensorInfo, buf []byte) ([]byte, error) {
	if _, err := gf.f.ReadAt(buf, gf.dataStart+int64(t.Offset)); err != nil {
		return nil, fmt.Errorf("gguf %s: read tensor %s: %w", gf.Path, t.Name, err)
	}
	return buf, nil
}

// Float32 reads a tensor and dequantizes it to float32, in row-major order of Shape.
func (gf *File) Float32(t TensorInfo) ([]float32, error) {
	return gf.float32Into(t, make([]byte, t.NumBytes()), make([]float32, t.NumElements()))
}

// float32Into is Float32 with caller-owned buffers of the tensor's exact sizes.
func (gf *File) float32Into(t TensorInfo, raw []byte, out []float32) ([]float32, error) {
	b, err := gf.rawInto(t, raw)
	if err != nil {
		return nil, err
	}
	if err := Dequantize(t.Type, b, out); err != nil {
		return nil, fmt.Errorf("gguf %s: tensor %s: %w", gf.Path, t.Name, err)
	}
	return out, nil
}
