package engine

import (
	"context"
	"os"
	"slices"
	"testing"
	"time"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/medassist/medassist/export"
	"github.com/medassist/medassist/generation"
	"github.com/medassist/medassist/internal/testutil"
)

// The decode-step benchmarks compare the engine's KV cache (present outputs pre-allocated in Go
// memory, two buffers used in turn) with the plain way of calling ONNX Runtime: present outputs left
// to ORT, which allocates them, and the Go binding copies each into a new Go tensor that is fed back
// as the next past. Both run the same graph from a 128-token prompt.
//
//	MEDASSIST_BENCH_MODEL=$PWD/out/bench/models/tinyllama-onnx-int4 go test ./engine -run '^$' -bench Decode -benchtime 32x
//	MEDASSIST_BENCH_KV=device ... -bench DecodeStepPreallocated   # the same on the I/O-binding cache
//
// Without MEDASSIST_BENCH_MODEL they run on the stories260K export.

func benchEngine(b *testing.B) *Engine {
	b.Helper()
	dir := os.Getenv("MEDASSIST_BENCH_MODEL")
	if dir == "" {
		dir = exportStories(b, export.DefaultOptions())
	}
	// MEDASSIST_BENCH_KV=device runs BenchmarkDecodeStepPreallocated on the I/O-binding cache.
	e, err := Open(Config{ModelDir: dir, ORTLib: testutil.ORTLibrary(b), Device: DeviceCPU,
		KVCache: os.Getenv("MEDASSIST_BENCH_KV")}, quiet)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { e.Close() })
	return e
}

func benchPromptIDs(e *Engine, n int) []int {
	ids := make([]int, n)
	for i := range ids {
		ids[i] = 3 + (i*7919)%(e.lay.vocab-3)
	}
	return ids
}

func BenchmarkDecodeStepPreallocated(b *testing.B) {
	e := benchEngine(b)
	ctx := context.Background()
	batch, err := e.NewBatch(1, 128+b.N+1)
	if err != nil {
		b.Fatal(err)
	}
	defer batch.Close()
	logits, err := batch.Append(ctx, [][]int{benchPromptIDs(e, 128)})
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		if logits, err = batch.Decode(ctx, []int{generation.Argmax(logits[0])}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeStepORTAllocated(b *testing.B) {
	e := benchEngine(b)
	if e.lay.kvElem != elemFloat || !e.lay.positionIDs {
		b.Skip("the plain loop here handles float32 caches with position_ids only")
	}
	lay := e.lay
	prompt := benchPromptIDs(e, 128)
	past := make([]ort.Value, 2*lay.layers)
	for i := range past {
		t, err := ort.NewTensor(ort.NewShape(1, int64(lay.kvHeads), 0, int64(lay.headDim)), make([]float32, 1))
		if err != nil {
			b.Fatal(err)
		}
		past[i] = t
	}
	ids, n := prompt, 0
	step := func() int {
		s := int64(len(ids))
		idsIn := make([]int64, len(ids))
		posIn := make([]int64, len(ids))
		for i, id := range ids {
			idsIn[i], posIn[i] = int64(id), int64(n+i)
		}
		mask := make([]int64, n+len(ids))
		for i := range mask {
			mask[i] = 1
		}
		in := []ort.Value{mustTensor(b, ort.NewShape(1, s), idsIn), mustTensor(b, ort.NewShape(1, int64(len(mask))), mask),
			mustTensor(b, ort.NewShape(1, s), posIn)}
		in = append(in, past...)
		out := make([]ort.Value, 1+2*lay.layers) // all nil: ORT allocates, the binding copies into Go
		if err := e.sess.Run(in, out); err != nil {
			b.Fatal(err)
		}
		for _, v := range in {
			v.Destroy()
		}
		logits := out[0].(*ort.Tensor[float32]).GetData()
		next := generation.Argmax(logits[len(logits)-lay.vocab:])
		out[0].Destroy()
		copy(past, out[1:])
		n += len(ids)
		ids = []int{next}
		return next
	}
	step()
	b.ResetTimer()
	for range b.N {
		step()
	}
	b.StopTimer()
	for _, v := range past {
		v.Destroy()
	}
}

func mustTensor(b *testing.B, s ort.Shape, v []int64) ort.Value {
	t, err := ort.NewTensor(s, v)
	if err != nil {
		b.Fatal(err)
	}
	return t
}

// BenchmarkDecodeStepHostVersusDevice times decode steps of the host cache and of the I/O-binding
// cache in turn, one step each, on two engines over the same model: on a shared machine both see
// the same load, and the median of the per-pair ratios compares them.
func BenchmarkDecodeStepHostVersusDevice(b *testing.B) {
	b.Setenv("MEDASSIST_BENCH_KV", KVCacheHost)
	host := benchEngine(b)
	b.Setenv("MEDASSIST_BENCH_KV", KVCacheDevice)
	dev := benchEngine(b)
	ctx := context.Background()
	var batches [2]*Batch
	var logits [2][][]float32
	for i, e := range []*Engine{host, dev} {
		batch, err := e.NewBatch(1, 128+b.N+1)
		if err != nil {
			b.Fatal(err)
		}
		defer batch.Close()
		if logits[i], err = batch.Append(ctx, [][]int{benchPromptIDs(e, 128)}); err != nil {
			b.Fatal(err)
		}
		batches[i] = batch
	}
	var times [2][]float64
	var ratios []float64
	b.ResetTimer()
	for n := range b.N {
		var dt [2]float64
		for j := range 2 {
			i := (n + j) % 2 // alternate which goes first
			start := time.Now()
			var err error
			if logits[i], err = batches[i].Decode(ctx, []int{generation.Argmax(logits[i][0])}); err != nil {
				b.Fatal(err)
			}
			dt[i] = float64(time.Since(start).Microseconds()) / 1000
			times[i] = append(times[i], dt[i])
		}
		if generation.Argmax(logits[0][0]) != generation.Argmax(logits[1][0]) {
			b.Fatalf("step %d: host and device caches chose different tokens", n)
		}
		ratios = append(ratios, dt[1]/dt[0])
	}
	b.StopTimer()
	med := func(v []float64) float64 { v = slices.Clone(v); slices.Sort(v); return v[len(v)/2] }
	b.ReportMetric(med(times[0]), "host-ms/step")
	b.ReportMetric(med(times[1]), "device-ms/step")
	b.ReportMetric(med(ratios), "device/host")
	b.ReportMetric(slices.Min(ratios), "min-ratio")
	b.ReportMetric(slices.Max(ratios), "max-ratio")
}
