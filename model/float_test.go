package model

import (
	"encoding/binary"
	"encoding/json"
	"math"
	"math/big"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/medassist/medassist/internal/testutil"
)

// narrowFormat describes F16 or BF16 for the slow reference conversion.
type narrowFormat struct {
	name   string
	decode func(uint16) float32
	encode func(float32) uint16
	// finite is every finite non-negative value with its bits, sorted by value (built once).
	finite []narrowValue
}

type narrowValue struct {
	v    float64
	bits uint16
}

func newNarrowFormat(name string, decode func(uint16) float32, encode func(float32) uint16) *narrowFormat {
	f := &narrowFormat{name: name, decode: decode, encode: encode}
	for b := 0; b < 0x8000; b++ {
		v := float64(slowDecode(name, uint16(b)))
		if math.IsInf(v, 0) || math.IsNaN(v) {
			continue
		}
		f.finite = append(f.finite, narrowValue{v, uint16(b)})
	}
	sort.Slice(f.finite, func(i, j int) bool { return f.finite[i].v < f.finite[j].v })
	return f
}

// slowDecode computes the value of a bit pattern from the IEEE 754 definition with big floats.
func slowDecode(name string, b uint16) float64 {
	expBits, mantBits := 5, 10
	if name == "BF16" {
		expBits, mantBits = 8, 7
	}
	bias := 1<<(expBits-1) - 1
	sign := b >> 15
	exp := int(b>>mantBits) & (1<<expBits - 1)
	mant := int64(b) & (1<<mantBits - 1)
	var v float64
	switch {
	case exp == 1<<expBits-1 && mant == 0:
		v = math.Inf(1)
	case exp == 1<<expBits-1:
		v = math.NaN()
	case exp == 0:
		v, _ = new(big.Float).SetMantExp(big.NewFloat(float64(mant)), 1-bias-mantBits).Float64()
	default:
		v, _ = new(big.Float).SetMantExp(big.NewFloat(float64(mant|1<<mantBits)), exp-bias-mantBits).Float64()
	}
	if sign == 1 {
		v = -v
	}
	return v
}

// slowEncode rounds x to the nearest representable value, ties to the even bit pattern; values at
// or beyond the midpoint between the largest finite value and the next power of two become Inf.
func (f *narrowFormat) slowEncode(x float32) uint16 {
	var sign uint16
	if math.Signbit(float64(x)) {
		sign = 0x8000
	}
	a := math.Abs(float64(x))
	largest := f.finite[len(f.finite)-1]
	inf := uint16(0x7c00)
	if f.name == "BF16" {
		inf = 0x7f80
	}
	// The value just past the largest finite one, with an even bit pattern (the infinity).
	next := largest.v + (largest.v - f.finite[len(f.finite)-2].v)
	if a >= (largest.v+next)/2 {
		return sign | inf
	}
	i := sort.Search(len(f.finite), func(i int) bool { return f.finite[i].v >= a })
	if i == len(f.finite) {
		return sign | largest.bits // above the largest value, below the midpoint to Inf
	}
	if f.finite[i].v == a {
		return sign | f.finite[i].bits
	}
	lo, hi := f.finite[i-1], f.finite[i]
	switch dl, dh := a-lo.v, hi.v-a; {
	case dl < dh:
		return sign | lo.bits
	case dh < dl:
		return sign | hi.bits
	case lo.bits%2 == 0:
		return sign | lo.bits
	}
	return sign | hi.bits
}

var (
	f16Format  = newNarrowFormat("F16", F16ToFloat32, Float32ToF16)
	bf16Format = newNarrowFormat("BF16", BF16ToFloat32, Float32ToBF16)
)

func TestNarrowDecodeMatchesDefinition(t *testing.T) {
	for _, f := range []*narrowFormat{f16Format, bf16Format} {
		for b := 0; b <= 0xffff; b++ {
			got, want := float64(f.decode(uint16(b))), slowDecode(f.name, uint16(b))
			if math.IsNaN(want) {
				if !math.IsNaN(got) {
					t.Fatalf("%s %#04x: got %v, want NaN", f.name, b, got)
				}
				continue
			}
			if got != want || math.Signbit(got) != math.Signbit(want) {
				t.Fatalf("%s %#04x: got %v, want %v", f.name, b, got, want)
			}
		}
	}
}

// Every F16/BF16 bit pattern, NaN payloads, infinities and subnormals included, survives
// decode → encode unchanged.
func TestNarrowRoundTripEveryBitPattern(t *testing.T) {
	for _, f := range []*narrowFormat{f16Format, bf16Format} {
		for b := 0; b <= 0xffff; b++ {
			if got := f.encode(f.decode(uint16(b))); got != uint16(b) {
				t.Fatalf("%s %#04x → %v → %#04x", f.name, b, f.decode(uint16(b)), got)
			}
		}
	}
}

func TestNarrowEncodeMatchesSlowReference(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var inputs []float32
	for i := 0; i < 200000; i++ {
		bits := r.Uint32()
		if (bits>>23)&0xff == 0xff {
			continue
		}
		inputs = append(inputs, math.Float32frombits(bits))
	}
	// Midpoints and their neighbours between consecutive representable values: the rounding edges.
	for _, f := range []*narrowFormat{f16Format, bf16Format} {
		for i := 1; i < len(f.finite); i += 7 {
			mid := float32((f.finite[i-1].v + f.finite[i].v) / 2)
			inputs = append(inputs, mid, math.Nextafter32(mid, 0), math.Nextafter32(mid, 1e38), -mid)
		}
	}
	inputs = append(inputs, 65504, 65519.996, 65520, 3.3895314e38, 3.4028235e38, 1e-45, -1e-45, 0, float32(math.Copysign(0, -1)))
	for _, f := range []*narrowFormat{f16Format, bf16Format} {
		for _, x := range inputs {
			if got, want := f.encode(x), f.slowEncode(x); got != want {
				t.Fatalf("%s encode(%g = %#08x) = %#04x, reference %#04x", f.name, x, math.Float32bits(x), got, want)
			}
		}
	}
}

func TestNaNStaysNaN(t *testing.T) {
	for _, bits := range []uint32{0x7f800001, 0x7fc00000, 0xff800001, 0x7f801fff, 0x7fffffff} {
		x := math.Float32frombits(bits)
		if h := Float32ToF16(x); h&0x7c00 != 0x7c00 || h&0x3ff == 0 || h>>15 != uint16(bits>>31) {
			t.Errorf("F16 of NaN %#08x = %#04x", bits, h)
		}
		if h := Float32ToBF16(x); h&0x7f80 != 0x7f80 || h&0x7f == 0 || h>>15 != uint16(bits>>31) {
			t.Errorf("BF16 of NaN %#08x = %#04x", bits, h)
		}
	}
}

type referenceGolden struct {
	F32Bits  []uint32          `json:"f32_bits"`
	F16Bits  []uint16          `json:"f16_bits"`
	BF16Bits []uint16          `json:"bf16_bits"`
	Shapes   map[string][]int  `json:"shapes"`
	Metadata map[string]string `json:"metadata"`
}

func loadReferenceGolden(t *testing.T) *referenceGolden {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testutil.RepoRoot(), "testdata", "model", "reference.json"))
	if err != nil {
		t.Fatal(err)
	}
	var g referenceGolden
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatal(err)
	}
	return &g
}

// The conversions agree with torch's (.to(torch.float16 / torch.bfloat16)) on the golden values.
func TestEncodeMatchesTorch(t *testing.T) {
	g := loadReferenceGolden(t)
	x := make([]float32, len(g.F32Bits))
	for i, b := range g.F32Bits {
		x[i] = math.Float32frombits(b)
	}
	for _, c := range []struct {
		d    DType
		want []uint16
	}{{F16, g.F16Bits}, {BF16, g.BF16Bits}} {
		enc := EncodeFloat32(c.d, x)
		for i := range x {
			if got := binary.LittleEndian.Uint16(enc[2*i:]); got != c.want[i] {
				t.Fatalf("%s(%g = %#08x) = %#04x, torch %#04x", c.d, x[i], g.F32Bits[i], got, c.want[i])
			}
		}
	}
}

func TestF32EncodeDecodeIsBitExact(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	x := make([]float32, 10000)
	for i := range x {
		x[i] = math.Float32frombits(r.Uint32()) // NaNs with payloads, infinities, subnormals
	}
	got := DecodeFloat32(F32, EncodeFloat32(F32, x))
	for i := range x {
		if math.Float32bits(got[i]) != math.Float32bits(x[i]) {
			t.Fatalf("%#08x came back as %#08x", math.Float32bits(x[i]), math.Float32bits(got[i]))
		}
	}
}
