package gguf

import (
	"encoding/binary"
	"fmt"
	"strings"

	"github.com/medassist/medassist/model"
)

// GGMLType is a tensor element type (ggml.h's ggml_type).
type GGMLType uint32

// The tensor types medassist reads, and the other common ones for error messages.
const (
	F32  GGMLType = 0
	F16  GGMLType = 1
	Q4_0 GGMLType = 2
	Q4_1 GGMLType = 3
	Q5_0 GGMLType = 6
	Q5_1 GGMLType = 7
	Q8_0 GGMLType = 8
	Q8_1 GGMLType = 9
	Q2_K GGMLType = 10
	Q3_K GGMLType = 11
	Q4_K GGMLType = 12
	Q5_K GGMLType = 13
	Q6_K GGMLType = 14
	Q8_K GGMLType = 15
	BF16 GGMLType = 30
)

// qkK is the super-block size of the K quantizations.
const qkK = 256

// typeInfo is a type's name, block size (elements) and block bytes.
type typeInfo struct {
	name        string
	block, size int
	dequant     func(blk []byte, out []float32)
}

var types = map[GGMLType]typeInfo{
	F32:  {"F32", 1, 4, nil},
	F16:  {"F16", 1, 2, nil},
	BF16: {"BF16", 1, 2, nil},
	Q4_0: {"Q4_0", 32, 18, dequantQ4_0},
	Q4_1: {"Q4_1", 32, 20, dequantQ4_1},
	Q5_0: {"Q5_0", 32, 22, dequantQ5_0},
	Q5_1: {"Q5_1", 32, 24, dequantQ5_1},
	Q8_0: {"Q8_0", 32, 34, dequantQ8_0},
	Q4_K: {"Q4_K", qkK, 144, dequantQ4_K},
	Q5_K: {"Q5_K", qkK, 176, dequantQ5_K},
	Q6_K: {"Q6_K", qkK, 210, dequantQ6_K},
}

// otherNames names types that exist but are not supported, for clearer errors.
var otherNames = map[GGMLType]string{Q8_1: "Q8_1", Q2_K: "Q2_K", Q3_K: "Q3_K", Q8_K: "Q8_K"}

func (t GGMLType) String() string {
	if ti, ok := types[t]; ok {
		return ti.name
	}
	if n, ok := otherNames[t]; ok {
		return n
	}
	return fmt.Sprintf("ggml type %d", uint32(t))
}

// Supported reports whether Dequantize handles t.
func (t GGMLType) Supported() bool { _, ok := types[t]; return ok }

func (t GGMLType) blockSize() int {
	if ti, ok := types[t]; ok {
		return ti.block
	}
	return 1
}

func (t GGMLType) typeSize() int { return types[t].size }

func supportedList() string {
	var names []string
	for _, t := range []GGMLType{F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K} {
		names = append(names, t.String())
	}
	return strings.Join(names, ", ")
}

// Dequantize converts data of type t into out (len(out) elements), with the same float32
// arithmetic, in the same order, as gguf-py's quants.dequantize: the results are bit-identical.
func Dequantize(t GGMLType, data []byte, out []float32) error {
	ti, ok := types[t]
	if !ok {
		return fmt.Errorf("type %s is not supported (supported: %s)", t, supportedList())
	}
	if len(out)%ti.block != 0 || len(data) != len(out)/ti.block*ti.size {
		return fmt.Errorf("%d bytes of %s do not hold %d elements", len(data), t, len(out))
	}
	switch t {
	case F32:
		copy(out, model.DecodeFloat32(model.F32, data))
	case F16:
		for i := range out {
			out[i] = model.F16ToFloat32(binary.LittleEndian.Uint16(data[2*i:]))
		}
	case BF16:
		for i := range out {
			out[i] = model.BF16ToFloat32(binary.LittleEndian.Uint16(data[2*i:]))
		}
	default:
		for b := 0; b < len(out)/ti.block; b++ {
			ti.dequant(data[b*ti.size:(b+1)*ti.size], out[b*ti.block:(b+1)*ti.block])
		}
	}
	return nil
}

// Every product and sum below is converted to float32 explicitly: that rounds each operation as
// numpy does and keeps the compiler from fusing a multiply and an add.

func f16(b []byte) float32 { return model.F16ToFloat32(binary.LittleEndian.Uint16(b)) }

// nibble is element j (0..31) of a 32-element block of 4-bit values: low nibbles first.
func nibble(qs []byte, j int) byte {
	if j < 16 {
		return qs[j] & 0x0F
	}
	return qs[j-16] >> 4
}

// Q4_0: d (f16), 16 bytes of nibbles; x = d·(q − 8).
func dequantQ4_0(blk []byte, out []float32) {
	d, qs := f16(blk), blk[2:]
	for j := range out {
		out[j] = float32(d * float32(int8(nibble(qs, j))-8))
	}
}

// Q4_1: d, m (f16), 16 bytes of nibbles; x = d·q + m.
func dequantQ4_1(blk []byte, out []float32) {
	d, m, qs := f16(blk), f16(blk[2:]), blk[4:]
	for j := range out {
		out[j] = float32(float32(d*float32(nibble(qs, j))) + m)
	}
}

// fifthBit is bit j of the little-endian 32-bit qh.
func fifthBit(qh uint32, j int) byte { return byte(qh>>uint(j)&1) << 4 }

// Q5_0: d (f16), qh (u32: the fifth bits), 16 bytes of nibbles; x = d·(q − 16).
func dequantQ5_0(blk []byte, out []float32) {
	d, qh, qs := f16(blk), binary.LittleEndian.Uint32(blk[2:]), blk[6:]
	for j := range out {
		q := int8(nibble(qs, j)|fifthBit(qh, j)) - 16
		out[j] = float32(d * float32(q))
	}
}

// Q5_1: d, m (f16), qh (u32), 16 bytes of nibbles; x = d·q + m.
func dequantQ5_1(blk []byte, out []float32) {
	d, m, qh, qs := f16(blk), f16(blk[2:]), binary.LittleEndian.Uint32(blk[4:]), blk[8:]
	for j := range out {
		q := nibble(qs, j) | fifthBit(qh, j)
		out[j] = float32(float32(d*float32(q)) + m)
	}
}

// Q8_0: d (f16), 32 int8; x = q·d.
func dequantQ8_0(blk []byte, out []float32) {
	d := f16(blk)
	for j := range out {
		out[j] = float32(float32(int8(blk[2+j])) * d)
	}
}

// scaleMinK unpacks the eight 6-bit scales and mins of a Q4_K/Q5_K super-block (12 bytes).
func scaleMinK(s []byte) (sc, mn [8]uint8) {
	for j := 0; j < 4; j++ {
		sc[j] = s[j] & 0x3F
		mn[j] = s[4+j] & 0x3F
		sc[4+j] = s[8+j]&0x0F | (s[j]>>2)&0x30
		mn[4+j] = s[8+j]>>4 | (s[4+j]>>2)&0x30
	}
	return sc, mn
}

// kScales is (d·scale, dmin·min) of each 32-element sub-block of a Q4_K/Q5_K super-block.
func kScales(blk []byte) (ds, dm [8]float32) {
	d, dmin := f16(blk), f16(blk[2:])
	sc, mn := scaleMinK(blk[4:16])
	for i := range ds {
		ds[i] = float32(d * float32(sc[i]))
		dm[i] = float32(dmin * float32(mn[i]))
	}
	return ds, dm
}

// Q4_K: d, dmin (f16), 12 bytes of scales, 128 bytes of nibbles; 8 sub-blocks of 32, sub-block
// 2c from the low nibbles of bytes [32c, 32c+32), 2c+1 from their high nibbles.
func dequantQ4_K(blk []byte, out []float32) {
	ds, dm := kScales(blk)
	qs := blk[16:]
	for sb := 0; sb < 8; sb++ {
		base, shift := (sb/2)*32, uint(4*(sb%2))
		for k := 0; k < 32; k++ {
			q := qs[base+k] >> shift & 0x0F
			out[sb*32+k] = float32(float32(ds[sb]*float32(q)) - dm[sb])
		}
	}
}

// Q5_K: as Q4_K with 32 bytes of fifth bits (bit sb of byte k for element k of sub-block sb)
// between the scales and the nibbles.
func dequantQ5_K(blk []byte, out []float32) {
	ds, dm := kScales(blk)
	qh, qs := blk[16:48], blk[48:]
	for sb := 0; sb < 8; sb++ {
		base, shift := (sb/2)*32, uint(4*(sb%2))
		for k := 0; k < 32; k++ {
			q := qs[base+k]>>shift&0x0F | (qh[k]>>uint(sb)&1)<<4
			out[sb*32+k] = float32(float32(ds[sb]*float32(q)) - dm[sb])
		}
	}
}

// Q6_K: 128 bytes of low nibbles, 64 bytes of high 2-bit pairs, 16 int8 scales, d (f16);
// x = (d·scale[e/16])·(q − 32) for element e.
func dequantQ6_K(blk []byte, out []float32) {
	ql, qh, scales := blk[:128], blk[128:192], blk[192:208]
	d := f16(blk[208:])
	var ds [16]float32
	for i := range ds {
		ds[i] = float32(d * float32(int8(scales[i])))
	}
	for e := 0; e < qkK; e++ {
		h, w := e/128, e%128
		lo := ql[h*64+w%64] >> uint(4*(w/64)) & 0x0F
		hi := qh[h*32+w%32] >> uint(2*(w/32)) & 0x03
		q := int8(lo|hi<<4) - 32
		out[e] = float32(ds[e/16] * float32(q))
	}
}
