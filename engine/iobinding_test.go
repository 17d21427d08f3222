package engine

import (
	"context"
	"errors"
	"testing"

	"github.com/medassist/medassist/export"
	"github.com/medassist/medassist/generation"
	"github.com/medassist/medassist/internal/testutil"
)

func openKV(t testing.TB, kv string, opt export.Options, chunk int) *Engine {
	t.Helper()
	e, err := Open(Config{ModelDir: exportStories(t, opt), ORTLib: testutil.ORTLibrary(t), Device: DeviceCPU,
		IntraOpThreads: 1, KVCache: kv, PrefillChunk: chunk}, quiet)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	if e.deviceKV != (kv == KVCacheDevice) {
		t.Fatalf("kv-cache %s: device cache %v", kv, e.deviceKV)
	}
	return e
}

func openDeviceKV(t testing.TB, opt export.Options, chunk int) *Engine {
	t.Helper()
	return openKV(t, KVCacheDevice, opt, chunk)
}

// TestDeviceKVCache runs the I/O-binding cache (the CUDA path, and the default) on the CPU: cached
// decode equals full recompute, and the host cache gives exactly the same logits and tokens.
func TestDeviceKVCache(t *testing.T) {
	if err := checkHandleLayout(); err != nil {
		t.Fatal(err)
	}
	g := loadGolden(t)
	dev := openDeviceKV(t, export.DefaultOptions(), 0)
	host := openKV(t, KVCacheHost, export.DefaultOptions(), 0)
	t.Run("cached equals recompute", func(t *testing.T) {
		worst := cachedVersusRecompute(t, host, [][]int{g.Cases[0].IDs, g.Cases[1].IDs}, 40, 1e-5)
		t.Logf("host cache: max |cached - recompute| = %.2e over 41 steps, batch of 2 (left-padded)", worst)
		worst = cachedVersusRecompute(t, dev, [][]int{g.Cases[0].IDs, g.Cases[1].IDs}, 40, 1e-5)
		t.Logf("max |cached - recompute| = %.2e over 41 steps, batch of 2 (left-padded)", worst)
	})
	t.Run("chunked prefill", func(t *testing.T) {
		worst := cachedVersusRecompute(t, openDeviceKV(t, export.DefaultOptions(), 3), [][]int{g.Cases[1].IDs}, 10, 5e-5)
		t.Logf("max |cached - recompute| = %.2e", worst)
	})
	t.Run("same as the host cache", func(t *testing.T) {
		for _, c := range g.Cases {
			var logits [2][][]float32
			var ids [2][]int
			for i, e := range []*Engine{host, dev} {
				b, err := e.NewBatch(1, 4)
				if err != nil {
					t.Fatal(err)
				}
				l, err := b.Append(context.Background(), [][]int{c.IDs})
				for step := 0; err == nil && step < 20; step++ {
					logits[i] = append(logits[i], append([]float32(nil), l[0]...))
					next := generation.Argmax(l[0])
					ids[i] = append(ids[i], next)
					l, err = b.Decode(context.Background(), []int{next})
				}
				b.Close()
				if err != nil {
					t.Fatal(err)
				}
			}
			for s := range logits[0] {
				if d := testutil.MaxAbsDiff(logits[0][s], logits[1][s]); d != 0 {
					t.Fatalf("%q step %d: device cache logits differ from the host cache's by %.2e", c.Prompt, s, d)
				}
			}
			res, err := dev.Generate(context.Background(), greedy(c.IDs, len(c.GreedyIDs)), nil)
			if err != nil {
				t.Fatal(err)
			}
			if want := c.GreedyIDs; len(res.IDs) > len(want) || !equalPrefix(res.IDs, want) {
				t.Fatalf("%q: greedy %v, transformers %v", c.Prompt, res.IDs, want)
			}
		}
	})
	t.Run("float16 contrib", func(t *testing.T) {
		// The fused graph (GroupQueryAttention) with a half-precision cache.
		opt := export.DefaultOptions()
		opt.DType, opt.Contrib = "float16", true
		worst := cachedVersusRecompute(t, openDeviceKV(t, opt, 0), [][]int{g.Cases[0].IDs, g.Cases[1].IDs}, 20, 5e-2)
		t.Logf("float16 fused: max |cached - recompute| = %.2e", worst)
	})
}

func equalPrefix(a, b []int) bool {
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestDeviceKVCacheOutlivesEngine: a batch whose engine closed fails cleanly and closes without
// touching the released session.
func TestDeviceKVCacheOutlivesEngine(t *testing.T) {
	e, err := Open(Config{ModelDir: exportStories(t, export.DefaultOptions()), ORTLib: testutil.ORTLibrary(t),
		Device: DeviceCPU, IntraOpThreads: 1}, quiet)
	if err != nil {
		t.Fatal(err)
	}
	if !e.deviceKV {
		t.Fatal("auto did not choose the device cache")
	}
	b, err := e.NewBatch(1, 8)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Append(context.Background(), [][]int{{1, 403}}); err != nil {
		t.Fatal(err)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Decode(context.Background(), []int{5}); !errors.Is(err, ErrClosed) {
		t.Fatalf("decode after the engine closed: %v", err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := e.NewBatch(1, 8); !errors.Is(err, ErrClosed) {
		t.Fatalf("new batch on a closed engine: %v", err)
	}
}
