package export

import (
	"math"
	"runtime"
	"sync"
)

// quantLayout describes the blockwise weight-only quantization of ONNX Runtime's com.microsoft
// MatMulNBits: a weight [rows = N outputs, cols = K inputs] (Hugging Face's layout) is cut along K
// into blocks of `block` values; each block has one scale and one zero point, and holds its values
// as unsigned `bits`-bit integers, q = round(w / scale) + zero_point. With 4 bits two values share
// a byte, the lower-index one in the low nibble. K is padded to whole blocks with the zero point
// (which dequantizes to 0).
type quantLayout struct {
	rows, cols int
	bits       int // 4 or 8
	block      int // values per block along cols, a power of two ≥ 16
	asymmetric bool
}

// quantized holds one weight in MatMulNBits form.
type quantized struct {
	packed []byte    // [rows][blocks][block·bits/8]
	scales []float32 // [rows · blocks]
	zeros  []byte    // packed zero points (asymmetric only): [rows][blocks·bits/8 rounded up]
}

func (l quantLayout) blocks() int       { return (l.cols + l.block - 1) / l.block }
func (l quantLayout) blockBytes() int   { return l.block * l.bits / 8 }
func (l quantLayout) maxQ() int         { return 1<<l.bits - 1 }
func (l quantLayout) defaultZero() int  { return 1 << (l.bits - 1) }
func (l quantLayout) zeroRowBytes() int { return (l.blocks()*l.bits + 7) / 8 }

// zeroBytes is the length of the packed zero points of a weight.
func (l quantLayout) zeroBytes() int { return l.rows * l.zeroRowBytes() }

// quantize converts a row-major [rows, cols] float32 weight, rows split across the CPUs.
func (l quantLayout) quantize(w []float32) *quantized {
	nb := l.blocks()
	q := &quantized{
		packed: make([]byte, l.rows*nb*l.blockBytes()),
		scales: make([]float32, l.rows*nb),
	}
	if l.asymmetric {
		q.zeros = make([]byte, l.zeroBytes())
	}
	workers := min(runtime.GOMAXPROCS(0), max(1, l.rows/64))
	var wg sync.WaitGroup
	for k := 0; k < workers; k++ {
		wg.Add(1)
		go func(from, to int) {
			defer wg.Done()
			l.quantizeRows(w, q, from, to)
		}(k*l.rows/workers, (k+1)*l.rows/workers)
	}
	wg.Wait()
	return q
}

// quantizeRows fills rows [from, to) of q; rows are independent.
func (l quantLayout) quantizeRows(w []float32, q *quantized, from, to int) {
	nb := l.blocks()
	vals := make([]int, l.block)
	for r := from; r < to; r++ {
		row := w[r*l.cols : (r+1)*l.cols]
		for b := 0; b < nb; b++ {
			blk := row[b*l.block : min((b+1)*l.block, l.cols)]
			scale, zero := l.blockParams(blk)
			for i := range vals {
				vals[i] = zero // padding beyond cols dequantizes to 0
				if i < len(blk) {
					vals[i] = l.level(blk[i], scale, zero)
				}
			}
			q.scales[r*nb+b] = scale
			l.pack(q.packed[(r*nb+b)*l.blockBytes():], vals)
			if l.asymmetric {
				l.putZero(q.zeros[r*l.zeroRowBytes():], b, zero)
			}
		}
	}
}

// level is the quantized level of x: round(x / scale) + zero, clamped to the levels.
func (l quantLayout) level(x, scale float32, zero int) int {
	if scale == 0 {
		return zero
	}
	return max(0, min(l.maxQ(), int(roundEven(x*(1/scale)))+zero))
}

// roundEven rounds to the nearest integer, ties to even, for |x| < 2²²: adding and removing
// 1.5·2²³ leaves no fraction bits, and float32 addition rounds to nearest even. It is several
// times faster than math.RoundToEven, which matters in the scale search's inner loop.
func roundEven(x float32) float32 {
	if x > 1<<22 || x < -(1<<22) {
		return float32(math.RoundToEven(float64(x)))
	}
	const magic = 1.5 * (1 << 23)
	return (x + magic) - magic
}

// blockParams chooses a block's scale and zero point.
//
// Symmetric: the zero point is 2^(bits-1) and the full-range scale makes the value of largest
// magnitude v land on the lowest level (s = v / -2^(bits-1)), so all levels are used, as ONNX
// Runtime's own quantizer does. Asymmetric: the full range [min, max] (widened to include 0) maps
// onto [0, 2^bits - 1]. Then the range is narrowed by the factors of scaleSearch and the choice
// with the least squared error over the block is kept: clipping the extreme values a little
// often rounds all the others better.
func (l quantLayout) blockParams(blk []float32) (scale float32, zero int) {
	var v, lo, hi float32 // value of largest magnitude; range widened to include 0
	for _, x := range blk {
		if abs32(x) > abs32(v) {
			v = x
		}
		lo, hi = min(lo, x), max(hi, x)
	}
	best := math.Inf(1)
	for _, f := range scaleSearch {
		s, z := l.rangeParams(v, lo, hi, f)
		if e := l.blockError(blk, s, z); e < best {
			scale, zero, best = s, z, e
		}
	}
	return scale, zero
}

// rangeParams is the scale and zero point for a block's range narrowed by factor f.
func (l quantLayout) rangeParams(v, lo, hi, f float32) (scale float32, zero int) {
	if !l.asymmetric {
		return v * f / -float32(l.defaultZero()), l.defaultZero()
	}
	lo, hi = lo*f, hi*f
	if hi == lo {
		return 0, 0
	}
	scale = (hi - lo) / float32(l.maxQ())
	zero = int(math.RoundToEven(float64(-lo / scale)))
	return scale, max(0, min(l.maxQ(), zero))
}

// scaleSearch are the fractions of the full-range scale that blockParams tries.
var scaleSearch = []float32{1, 0.975, 0.95, 0.925, 0.9, 0.875, 0.85, 0.825, 0.8}

// blockError is the squared error of quantizing blk with scale s and zero point zero; it is
// level() in float32 arithmetic only, since the scale search runs it ~10 times per weight.
func (l quantLayout) blockError(blk []float32, s float32, zero int) float64 {
	if s == 0 {
		return 0
	}
	inv := 1 / s
	lo, hi := float32(-zero), float32(l.maxQ()-zero) // level - zero ranges over [lo, hi]
	var e float32
	for _, x := range blk {
		q := min(max(roundEven(x*inv), lo), hi)
		d := x - q*s
		e += d * d
	}
	return float64(e)
}

func (l quantLayout) pack(dst []byte, vals []int) {
	if l.bits == 8 {
		for i, v := range vals {
			dst[i] = byte(v)
		}
		return
	}
	for i := 0; i < len(vals); i += 2 {
		dst[i/2] = byte(vals[i]) | byte(vals[i+1])<<4
	}
}

func (l quantLayout) putZero(row []byte, b, zero int) {
	if l.bits == 8 {
		row[b] = byte(zero)
		return
	}
	row[b/2] |= byte(zero) << (4 * (b % 2))
}

func abs32(x float32) float32 { return math.Float32frombits(math.Float32bits(x) &^ (1 << 31)) }
