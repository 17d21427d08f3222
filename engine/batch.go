package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/medassist/medassist/model"
)

// Batch is the decoding state of one or more sequences fed in lock step: their KV cache, attention
// masks and position ids. Rows of different lengths are left-padded: padding has attention mask 0
// and does not advance a row's positions, so every row computes exactly what it would alone.
//
// The KV cache lives in two Go buffers per batch, each big enough for every layer's keys and values
// at the batch's capacity. A call reads the cache from one buffer as past_key_values and hands the
// other to ONNX Runtime as the pre-allocated present outputs, so the graph's Concat writes the new
// cache straight into Go memory; the two then swap roles. Nothing is allocated or copied in Go per
// step (ONNX Runtime would otherwise allocate every present tensor and the Go binding would copy it).
//
// That is the host cache (--kv-cache host). By default the cache stays in ONNX Runtime's memory
// instead (deviceKV, --kv-cache device): on CUDA it never leaves the GPU.
//
// A Batch is not safe for concurrent use; separate Batches of one Engine are.
type Batch struct {
	e        *Engine
	rows     int
	capacity int // positions the cache can hold per row
	length   int // positions filled per row, padding included

	mask []int64 // attention mask so far, row r at r*capacity
	next []int64 // each row's next position id (its count of real tokens)
	kv   [2][]byte
	cur  int // kv[cur] holds the cache

	logits   []float32 // logits output scratch (float32 graphs) or converted rows (float16)
	logits16 []byte
	opts     *ort.RunOptions
	err      error     // a failed call leaves the cache undefined: later calls return this
	dev      *deviceKV // set when ONNX Runtime keeps the cache in its provider's memory (then kv is unused)
}

// NewBatch prepares rows sequences whose total length (prompt and generated tokens) is expected to
// stay within capacity; the cache grows when it does not.
func (e *Engine) NewBatch(rows, capacity int) (*Batch, error) {
	if rows < 1 {
		return nil, fmt.Errorf("batch of %d rows: need at least 1", rows)
	}
	capacity = min(max(capacity, 1), e.MaxPositions())
	opts, err := ort.NewRunOptions()
	if err != nil {
		return nil, err
	}
	b := &Batch{e: e, rows: rows, next: make([]int64, rows), opts: opts}
	if e.deviceKV {
		if b.dev, err = newDeviceKV(e, rows); err != nil {
			opts.Destroy()
			return nil, err
		}
	}
	b.grow(capacity)
	return b, nil
}

// Close releases the batch's native resources. The cache memory goes with the Batch.
func (b *Batch) Close() error {
	if b.opts == nil {
		return nil
	}
	err := b.opts.Destroy()
	if b.dev != nil {
		b.dev.release()
	}
	b.opts, b.kv, b.mask, b.dev = nil, [2][]byte{}, nil, nil
	return err
}

// Len is the number of positions filled per row (left padding included).
func (b *Batch) Len() int { return b.length }

// Append feeds new tokens to every row (rows may get different numbers; they are left-padded to the
// longest, and a row with none is all padding) and returns each row's logits at its last new token,
// nil for rows that got none. Long inputs run in chunks of the engine's prefill size. The returned
// slices are valid until the next call.
func (b *Batch) Append(ctx context.Context, seqs [][]int) ([][]float32, error) {
	if len(seqs) != b.rows {
		return nil, fmt.Errorf("append: %d sequences for a batch of %d rows", len(seqs), b.rows)
	}
	longest := 0
	for _, s := range seqs {
		longest = max(longest, len(s))
		if slices.Min(append([]int{0}, s...)) < 0 {
			return nil, fmt.Errorf("append: negative token id in %v", s)
		}
	}
	if longest == 0 {
		return nil, errors.New("append: no tokens")
	}
	padded := make([][]int, b.rows)
	for r, s := range seqs {
		padded[r] = slices.Concat(slices.Repeat([]int{padID}, longest-len(s)), s)
	}
	var out []float32
	var s int
	for from := 0; from < longest; from += b.e.chunk {
		to := min(from+b.e.chunk, longest)
		chunk := make([][]int, b.rows)
		for r := range padded {
			chunk[r] = padded[r][from:to]
		}
		var err error
		if out, err = b.step(ctx, chunk, nil); err != nil {
			return nil, err
		}
		s = to - from
	}
	last := make([][]float32, b.rows)
	for r, seq := range seqs {
		if len(seq) > 0 {
			last[r] = out[(r*s+s-1)*b.e.lay.vocab : (r*s+s)*b.e.lay.vocab]
		}
	}
	return last, nil
}

// Decode feeds one token per row (a negative id pads a row that has finished) and returns each
// row's next-token logits (nil for padded rows), valid until the next call.
func (b *Batch) Decode(ctx context.Context, ids []int) ([][]float32, error) {
	seqs := make([][]int, len(ids))
	for r, id := range ids {
		if id >= 0 {
			seqs[r] = []int{id}
		}
	}
	return b.Append(ctx, seqs)
}

// padID marks a padding position inside the batch; it is fed to the graph as token 0 with mask 0.
const padID = -1

// step runs the graph once on s new positions per row (padID for padding) and returns the logits
// [rows, s, vocab] as float32: in out when given (it must hold rows·s·vocab), else in scratch.
func (b *Batch) step(ctx context.Context, ids [][]int, out []float32) ([]float32, error) {
	if b.err != nil {
		return nil, b.err
	}
	if b.opts == nil {
		return nil, errors.New("batch is closed")
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	lay := b.e.lay
	s := len(ids[0])
	total := b.length + s
	if total > b.e.MaxPositions() {
		return nil, fmt.Errorf("sequence of %d positions exceeds the model's %d (max_position_embeddings)", total, b.e.MaxPositions())
	}
	if total > b.capacity {
		b.grow(max(total, min(2*b.capacity, b.e.MaxPositions())))
	}
	if err := b.checkIDs(ids); err != nil {
		return nil, err
	}
	if out == nil {
		b.logits = growFloats(b.logits, b.rows*s*lay.vocab)
		out = b.logits
	}
	inputs, outputs, err := b.tensors(ids, out)
	defer destroyAll(inputs, outputs)
	if err != nil {
		b.err = fmt.Errorf("batch tensors: %w", err)
		return nil, b.err
	}
	stop := context.AfterFunc(ctx, func() { b.opts.Terminate() })
	if b.dev != nil {
		err = b.dev.run(inputs, outputs[0], b.opts)
	} else {
		err = b.e.run(inputs, outputs, b.opts)
	}
	stop()
	if err != nil {
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		b.err = fmt.Errorf("batch unusable after a failed run: %w", err)
		return nil, err
	}
	b.length = total
	b.cur = 1 - b.cur
	if lay.logitsElem == elemFloat16 {
		for i := range out {
			out[i] = model.F16ToFloat32(uint16(b.logits16[2*i]) | uint16(b.logits16[2*i+1])<<8)
		}
	}
	return out, nil
}

// checkIDs rejects ragged rows and ids outside the vocabulary before any state changes.
func (b *Batch) checkIDs(ids [][]int) error {
	for r, row := range ids {
		if len(row) != len(ids[0]) {
			return fmt.Errorf("row %d has %d tokens, row 0 has %d", r, len(row), len(ids[0]))
		}
		for _, id := range row {
			if id != padID && (id < 0 || id >= b.e.lay.vocab) {
				return fmt.Errorf("token id %d outside the vocabulary (0..%d)", id, b.e.lay.vocab-1)
			}
		}
	}
	return nil
}

// tensors wraps the step's inputs and outputs as ONNX Runtime values over Go memory, in the order
// of the layout's names (without the KV cache when it is kept by ONNX Runtime, see deviceKV); float32
// logits go to out. It records the new positions in the mask and the position counters.
func (b *Batch) tensors(ids [][]int, out []float32) (inputs, outputs []ort.Value, err error) {
	lay := b.e.lay
	s := len(ids[0])
	total := b.length + s
	idsIn := make([]int64, 0, b.rows*s)
	posIn := make([]int64, 0, b.rows*s)
	maskIn := make([]int64, 0, b.rows*total)
	for r, row := range ids {
		m := b.mask[r*b.capacity : r*b.capacity+total]
		for j, id := range row {
			if id == padID {
				idsIn, posIn = append(idsIn, 0), append(posIn, 0)
				m[b.length+j] = 0
				continue
			}
			idsIn, posIn = append(idsIn, int64(id)), append(posIn, b.next[r])
			m[b.length+j] = 1
			b.next[r]++
		}
		maskIn = append(maskIn, m...)
	}
	add := func(list *[]ort.Value, v ort.Value, err2 error) {
		if err2 != nil {
			err = errors.Join(err, err2)
			return
		}
		*list = append(*list, v)
	}
	rows, sl, tl := int64(b.rows), int64(s), int64(total)
	v, e := ort.NewTensor(ort.NewShape(rows, sl), idsIn)
	add(&inputs, v, e)
	v, e = ort.NewTensor(ort.NewShape(rows, tl), maskIn)
	add(&inputs, v, e)
	if lay.positionIDs {
		v, e = ort.NewTensor(ort.NewShape(rows, sl), posIn)
		add(&inputs, v, e)
	}
	kv, hd := int64(lay.kvHeads), int64(lay.headDim)
	for region := 0; region < 2*lay.layers && b.dev == nil; region++ {
		v, e := ort.NewCustomDataTensor(ort.NewShape(rows, kv, int64(b.length), hd), b.region(b.cur, region), lay.kvType())
		add(&inputs, v, e)
	}
	n := b.rows * s * lay.vocab
	logitsShape := ort.NewShape(rows, sl, int64(lay.vocab))
	if lay.logitsElem == elemFloat16 { // converted into out by step
		b.logits16 = growBytes(b.logits16, 2*n)
		v, e := ort.NewCustomDataTensor(logitsShape, b.logits16, ort.TensorElementDataTypeFloat16)
		add(&outputs, v, e)
	} else {
		v, e := ort.NewTensor(logitsShape, out[:n])
		add(&outputs, v, e)
	}
	for region := 0; region < 2*lay.layers && b.dev == nil; region++ {
		v, e := ort.NewCustomDataTensor(ort.NewShape(rows, kv, tl, hd), b.region(1-b.cur, region), lay.kvType())
		add(&outputs, v, e)
	}
	return inputs, outputs, err
}

// region is the memory of one layer's keys (even regions) or values (odd) in buffer p, laid out
// [rows, kv_heads, positions, head_dim] for however many positions are in use.
func (b *Batch) region(p, region int) []byte {
	size := b.regionBytes(b.capacity)
	return b.kv[p][region*size : (region+1)*size]
}

func (b *Batch) regionBytes(capacity int) int {
	lay := b.e.lay
	return b.rows * lay.kvHeads * capacity * lay.headDim * lay.kvElemBytes
}

// grow makes room for capacity positions, keeping the cache and masks.
func (b *Batch) grow(capacity int) {
	lay := b.e.lay
	regions := 2 * lay.layers
	size := b.regionBytes(capacity)
	var kv []byte
	if b.dev == nil {
		kv = make([]byte, regions*size)
	}
	if b.length > 0 && b.dev == nil {
		used, old := b.regionBytes(b.length), b.regionBytes(b.capacity)
		for r := range regions {
			copy(kv[r*size:r*size+used], b.kv[b.cur][r*old:r*old+used])
		}
	}
	mask := make([]int64, b.rows*capacity)
	for r := 0; r < b.rows && b.length > 0; r++ {
		copy(mask[r*capacity:], b.mask[r*b.capacity:r*b.capacity+b.length])
	}
	b.kv[b.cur], b.kv[1-b.cur] = kv, make([]byte, len(kv))
	b.mask, b.capacity = mask, capacity
}

func growFloats(v []float32, n int) []float32 {
	if cap(v) < n {
		return make([]float32, n)
	}
	return v[:n]
}

func growBytes(v []byte, n int) []byte {
	if cap(v) < n {
		return make([]byte, n)
	}
	return v[:n]
}

func destroyAll(lists ...[]ort.Value) {
	for _, l := range lists {
		for _, v := range l {
			v.Destroy()
		}
	}
}
