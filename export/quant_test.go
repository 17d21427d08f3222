package export

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"testing"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/medassist/medassist/internal/testutil"
)

// A hand-checked block: 4-bit symmetric, one row of 16 values. The largest magnitude is -1.6, so
// scale = -1.6 / -8 = 0.2 and q = round(w / 0.2) + 8; two values per byte, low nibble first.
func TestQuantizePacksMatMulNBitsLayout(t *testing.T) {
	w := []float32{-1.6, 0, 0.2, 1.4, -0.2, 0.4, 0.6, 0.8, 1.0, 1.2, -0.4, -0.6, -0.8, -1.0, -1.2, -1.4}
	l := quantLayout{rows: 1, cols: 16, bits: 4, block: 16}
	q := l.quantize(w)
	if math.Abs(float64(q.scales[0])-0.2) > 1e-7 {
		t.Fatalf("scale = %v, want 0.2", q.scales[0])
	}
	// levels: 0 8 9 15 7 10 11 12 13 14 6 5 4 3 2 1
	want := []byte{0x80, 0xf9, 0xa7, 0xcb, 0xed, 0x56, 0x34, 0x12}
	if fmt.Sprintf("% x", q.packed) != fmt.Sprintf("% x", want) {
		t.Fatalf("packed = % x, want % x", q.packed, want)
	}
	if q.zeros != nil {
		t.Fatalf("symmetric quantization stored zero points")
	}
}

func TestQuantizeRoundTripError(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, l := range []quantLayout{
		{rows: 5, cols: 172, bits: 4, block: 32},
		{rows: 5, cols: 172, bits: 4, block: 32, asymmetric: true},
		{rows: 5, cols: 64, bits: 8, block: 32},
		{rows: 5, cols: 100, bits: 8, block: 16, asymmetric: true},
	} {
		w := randomMatrix(rng, l.rows, l.cols)
		q := l.quantize(w)
		dq := l.dequantize(q)
		nb := l.blocks()
		for i, v := range w {
			r, b := i/l.cols, (i%l.cols)/l.block
			s := float64(q.scales[r*nb+b])
			zero := float64(l.zeroPoint(q, r, b))
			// The representable range is levels 0 … maxQ; inside it rounding errs by at most half
			// a step, outside it the value is clipped to the nearest end.
			lo, hi := (0-zero)*s, (float64(l.maxQ())-zero)*s
			lo, hi = min(lo, hi), max(lo, hi)
			want, limit := float64(v), math.Abs(s)/2+1e-6
			if want < lo || want > hi {
				want, limit = min(max(want, lo), hi), 1e-6
			}
			if e := math.Abs(want - float64(dq[i])); e > limit {
				t.Fatalf("%+v: element %d: %v dequantizes to %v (error %g > %g)", l, i, v, dq[i], e, limit)
			}
		}
	}
}

// The scale search must never do worse than the full-range scale, and does better on Gaussian
// weights.
func TestQuantizeScaleSearchLowersError(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	l := quantLayout{rows: 64, cols: 256, bits: 4, block: 32}
	w := randomMatrix(rng, l.rows, l.cols)
	searched := l.dequantize(l.quantize(w))
	saved := scaleSearch
	scaleSearch = []float32{1}
	full := l.dequantize(l.quantize(w))
	scaleSearch = saved
	se := func(dq []float32) float64 {
		var e float64
		for i := range w {
			e += float64((w[i] - dq[i]) * (w[i] - dq[i]))
		}
		return e / float64(len(w))
	}
	t.Logf("4-bit MSE: full-range scale %.5f, searched %.5f", se(full), se(searched))
	if se(searched) >= 0.97*se(full) {
		t.Fatalf("scale search MSE %.5f is not below the full-range %.5f", se(searched), se(full))
	}
}

// MatMulNBits in ONNX Runtime must compute exactly x · dequantize(W)ᵀ: this checks the packing,
// the scales, the zero points and the padding of K to whole blocks against the runtime.
func TestMatMulNBitsMatchesDequantizedWeights(t *testing.T) {
	initORT(t)
	rng := rand.New(rand.NewPCG(3, 4))
	for _, l := range []quantLayout{
		{rows: 24, cols: 64, bits: 4, block: 32},
		{rows: 24, cols: 172, bits: 4, block: 32},
		{rows: 24, cols: 172, bits: 4, block: 32, asymmetric: true},
		{rows: 24, cols: 172, bits: 8, block: 32},
		{rows: 24, cols: 96, bits: 8, block: 32, asymmetric: true},
	} {
		t.Run(fmt.Sprintf("bits%d_k%d_asym%v", l.bits, l.cols, l.asymmetric), func(t *testing.T) {
			w := randomMatrix(rng, l.rows, l.cols)
			q := l.quantize(w)
			const m = 3
			x := randomMatrix(rng, m, l.cols)
			got := runMatMulNBits(t, l, q, x, m)
			want := matMulT(x, l.dequantize(q), m, l.cols, l.rows)
			if d := testutil.MaxAbsDiff(got, want); d > 1e-4 {
				t.Fatalf("MatMulNBits differs from x·dequantize(W)ᵀ by %g", d)
			}
		})
	}
}

// runMatMulNBits runs a one-node graph x [m, K] → [m, N] in ONNX Runtime.
func runMatMulNBits(t *testing.T, l quantLayout, q *quantized, x []float32, m int) []float32 {
	t.Helper()
	g := newGraph("matmulnbits", 17)
	in := g.input("x", Float32, fixed(m), fixed(l.cols))
	bytesOf := func(b []byte) func() ([]byte, error) { return func() ([]byte, error) { return b, nil } }
	inputs := []string{in,
		g.addInit(&Initializer{Name: "B", DType: Uint8, Dims: []int64{int64(l.rows), int64(l.blocks()), int64(l.blockBytes())}, Data: bytesOf(q.packed)}),
		g.addInit(&Initializer{Name: "scales", DType: Float32, Dims: []int64{int64(len(q.scales))}, Data: bytesOf(floatBytes(q.scales, Float32))}),
	}
	if l.asymmetric {
		inputs = append(inputs, g.addInit(&Initializer{Name: "zero_points", DType: Uint8, Dims: []int64{int64(len(q.zeros))}, Data: bytesOf(q.zeros)}))
	}
	out := g.domainOpN(microsoftDomain, "MatMulNBits", 1, inputs,
		attrInt("K", int64(l.cols)), attrInt("N", int64(l.rows)), attrInt("bits", int64(l.bits)), attrInt("block_size", int64(l.block)))[0]
	g.rename(out, "y")
	g.output("y", Float32, fixed(m), fixed(l.rows))
	dir := t.TempDir()
	if _, err := writeModel(context.Background(), g, dir, false, irVersion, nil); err != nil {
		t.Fatal(err)
	}
	xt, err := ort.NewTensor(ort.NewShape(int64(m), int64(l.cols)), x)
	if err != nil {
		t.Fatal(err)
	}
	defer xt.Destroy()
	yt, err := ort.NewEmptyTensor[float32](ort.NewShape(int64(m), int64(l.rows)))
	if err != nil {
		t.Fatal(err)
	}
	defer yt.Destroy()
	s, err := ort.NewAdvancedSession(filepath.Join(dir, ModelFile), []string{"x"}, []string{"y"}, []ort.Value{xt}, []ort.Value{yt}, nil)
	if err != nil {
		t.Fatalf("session: %v", err)
	}
	defer s.Destroy()
	if err := s.Run(); err != nil {
		t.Fatalf("run: %v", err)
	}
	return append([]float32(nil), yt.GetData()...)
}

func randomMatrix(rng *rand.Rand, rows, cols int) []float32 {
	m := make([]float32, rows*cols)
	for i := range m {
		m[i] = float32(rng.NormFloat64())
	}
	return m
}

// matMulT is x [m, k] · wᵀ for w [n, k], in float64.
func matMulT(x, w []float32, m, k, n int) []float32 {
	out := make([]float32, m*n)
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			var s float64
			for c := 0; c < k; c++ {
				s += float64(x[i*k+c]) * float64(w[j*k+c])
			}
			out[i*n+j] = float32(s)
		}
	}
	return out
}

func TestTranspose2D(t *testing.T) {
	m := []float32{1, 2, 3, 4, 5, 6} // [2, 3]
	got := transpose2D(m, 2, 3)
	if fmt.Sprint(got) != fmt.Sprint([]float32{1, 4, 2, 5, 3, 6}) {
		t.Fatalf("transpose2D = %v", got)
	}
	rng := rand.New(rand.NewPCG(5, 6))
	big := randomMatrix(rng, 130, 70)
	tr := transpose2D(big, 130, 70)
	for r := 0; r < 130; r++ {
		for c := 0; c < 70; c++ {
			if tr[c*130+r] != big[r*70+c] {
				t.Fatalf("transpose2D [%d,%d] wrong", r, c)
			}
		}
	}
}

// dequantize reverses quantize: row-major [rows, cols] float32. It is what MatMulNBits computes
// with the packed weights, so the tests check the packing against it.
func (l quantLayout) dequantize(q *quantized) []float32 {
	nb := l.blocks()
	out := make([]float32, l.rows*l.cols)
	for r := 0; r < l.rows; r++ {
		for c := 0; c < l.cols; c++ {
			b, i := c/l.block, c%l.block
			blk := q.packed[(r*nb+b)*l.blockBytes():]
			var v int
			if l.bits == 8 {
				v = int(blk[i])
			} else {
				v = int(blk[i/2]>>(4*(i%2))) & 0xf
			}
			out[r*l.cols+c] = float32(v-l.zeroPoint(q, r, b)) * q.scales[r*nb+b]
		}
	}
	return out
}

// zeroPoint is the zero point of block b of row r.
func (l quantLayout) zeroPoint(q *quantized, r, b int) int {
	if !l.asymmetric {
		return l.defaultZero()
	}
	zr := q.zeros[r*l.zeroRowBytes():]
	if l.bits == 8 {
		return int(zr[b])
	}
	return int(zr[b/2]>>(4*(b%2))) & 0xf
}

// int8 defaults to 128-value blocks, never wider than a weight's row; int4 to 32.
func TestDefaultBlockSize(t *testing.T) {
	for _, c := range []struct {
		q    Quantization
		k    int
		want int
	}{{QuantInt8, 2048, 128}, {QuantInt8, 172, 128}, {QuantInt8, 127, 64}, {QuantInt8, 64, 64}, {QuantInt8, 8, 16},
		{QuantInt4, 2048, 32}, {QuantInt4, 64, 32}} {
		if got := DefaultBlockSize(c.q, c.k); got != c.want {
			t.Errorf("DefaultBlockSize(%s, %d) = %d, want %d", c.q, c.k, got, c.want)
		}
	}
	opt := DefaultOptions()
	opt.Quantize = QuantInt8
	if got := opt.blockSize(2048); got != 128 {
		t.Errorf("default int8 options: block %d, want 128", got)
	}
	opt.BlockSize = 32
	if got := opt.blockSize(2048); got != 32 {
		t.Errorf("--block-size 32: block %d", got)
	}
}
