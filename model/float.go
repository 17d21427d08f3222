package model

import (
	"encoding/binary"
	"fmt"
	"math"
	"unsafe"
)

// littleEndian is true on the hosts medassist runs on (amd64, arm64); it enables plain copies for F32.
var littleEndian = func() bool {
	x := uint16(1)
	return *(*byte)(unsafe.Pointer(&x)) == 1
}()

// EncodeFloat32 converts v to little-endian bytes of type d (F32, F16 or BF16), rounding to nearest
// even. NaN payloads are kept where the narrower type can hold them (a NaN always stays a NaN).
// It panics on any other dtype: callers choose d from a fixed set.
func EncodeFloat32(d DType, v []float32) []byte {
	switch d {
	case F32:
		out := make([]byte, 4*len(v))
		if littleEndian && len(v) > 0 {
			copy(out, unsafe.Slice((*byte)(unsafe.Pointer(&v[0])), len(out)))
			return out
		}
		for i, x := range v {
			binary.LittleEndian.PutUint32(out[4*i:], math.Float32bits(x))
		}
		return out
	case F16:
		out := make([]byte, 2*len(v))
		for i, x := range v {
			binary.LittleEndian.PutUint16(out[2*i:], Float32ToF16(x))
		}
		return out
	case BF16:
		out := make([]byte, 2*len(v))
		for i, x := range v {
			binary.LittleEndian.PutUint16(out[2*i:], Float32ToBF16(x))
		}
		return out
	}
	panic(fmt.Sprintf("EncodeFloat32: dtype %q is not F32, F16 or BF16", d))
}

// DecodeFloat32 converts little-endian F32, F16 or BF16 bytes to float32 (exact: every F16 and
// BF16 value is a float32). It panics on any other dtype or a length that is not a whole number
// of elements.
func DecodeFloat32(d DType, b []byte) []float32 {
	if !d.IsFloat() {
		panic(fmt.Sprintf("DecodeFloat32: dtype %q is not F32, F16 or BF16", d))
	}
	if len(b)%d.Size() != 0 {
		panic(fmt.Sprintf("DecodeFloat32: %d bytes is not a whole number of %s elements", len(b), d))
	}
	out := make([]float32, len(b)/d.Size())
	switch d {
	case F32:
		if littleEndian && len(out) > 0 {
			copy(unsafe.Slice((*byte)(unsafe.Pointer(&out[0])), len(b)), b)
			return out
		}
		for i := range out {
			out[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
		}
	case F16:
		for i := range out {
			out[i] = F16ToFloat32(binary.LittleEndian.Uint16(b[2*i:]))
		}
	case BF16:
		for i := range out {
			out[i] = BF16ToFloat32(binary.LittleEndian.Uint16(b[2*i:]))
		}
	}
	return out
}

// F16ToFloat32 widens an IEEE 754 half-precision value (exact, NaN payload kept).
func F16ToFloat32(h uint16) float32 {
	sign := uint32(h&0x8000) << 16
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h & 0x3ff)
	switch {
	case exp == 0:
		// Zero or subnormal: mant · 2⁻²⁴, exact in float32.
		v := float32(mant) * (1.0 / (1 << 24))
		return math.Float32frombits(math.Float32bits(v) | sign)
	case exp == 0x1f:
		return math.Float32frombits(sign | 0x7f800000 | mant<<13)
	}
	return math.Float32frombits(sign | (exp+127-15)<<23 | mant<<13)
}

// Float32ToF16 narrows to IEEE 754 half precision, rounding to nearest even; overflow gives ±Inf.
func Float32ToF16(f float32) uint16 {
	bits := math.Float32bits(f)
	sign := uint16(bits>>16) & 0x8000
	exp := int(bits>>23) & 0xff
	mant := bits & 0x7fffff
	if exp == 0xff {
		if mant == 0 {
			return sign | 0x7c00
		}
		payload := uint16(mant >> 13)
		if payload == 0 {
			payload = 0x200
		}
		return sign | 0x7c00 | payload
	}
	if exp == 0 {
		// float32 zero or subnormal (< 2⁻¹²⁶): far below half of F16's smallest subnormal.
		return sign
	}
	e := exp - 127
	m := mant | 0x800000 // 24 significant bits
	if e >= -14 {
		r := roundShift(m, 13) // 11 bits incl. the implicit one; a carry moves into the exponent
		h := uint32(e+15-1)<<10 + r
		if h >= 0x7c00 {
			return sign | 0x7c00
		}
		return sign | uint16(h)
	}
	shift := uint(-e - 1) // value in units of 2⁻²⁴ is m >> shift
	if shift > 24 {
		return sign
	}
	return sign | uint16(roundShift(m, shift))
}

// roundShift is m >> s rounded to nearest, ties to even.
func roundShift(m uint32, s uint) uint32 {
	r := m >> s
	rem := m & (1<<s - 1)
	half := uint32(1) << (s - 1)
	if rem > half || (rem == half && r&1 == 1) {
		r++
	}
	return r
}

// BF16ToFloat32 widens a bfloat16 value (exact).
func BF16ToFloat32(h uint16) float32 { return math.Float32frombits(uint32(h) << 16) }

// Float32ToBF16 narrows to bfloat16, rounding to nearest even; overflow gives ±Inf.
func Float32ToBF16(f float32) uint16 {
	bits := math.Float32bits(f)
	if bits&0x7f800000 == 0x7f800000 && bits&0x7fffff != 0 {
		h := uint16(bits >> 16)
		if h&0x7f == 0 {
			h |= 0x40 // the payload lived in the dropped bits: keep a quiet NaN
		}
		return h
	}
	bits += 0x7fff + (bits>>16)&1
	return uint16(bits >> 16)
}
