package guard

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/medassist/medassist/encoder"
	"github.com/medassist/medassist/internal/testutil"
)

// The package's tests share one encoder, wrapped in the embedding cache (saved by TestMain), and
// one guard with the default configuration.
var (
	encOnce   sync.Once
	sharedEnc *encoder.Encoder
	sharedEmb *EmbeddingCache
	encErr    error

	guardOnce   sync.Once
	sharedGuard *Guard
	guardErr    error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if sharedEmb != nil {
		if err := sharedEmb.Save(); err != nil {
			fmt.Fprintln(os.Stderr, "guard tests: embedding cache not saved:", err)
		}
		sharedEnc.Close()
	}
	os.Exit(code)
}

// testEmbedder is the shared all-MiniLM-L6-v2 encoder behind the embedding cache; it skips (or
// fails under MEDASSIST_REQUIRE_ASSETS=1) when the model or ONNX Runtime is missing.
func testEmbedder(t testing.TB) Embedder {
	t.Helper()
	dir := testutil.MiniLM(t)
	lib := testutil.ORTLibrary(t)
	encOnce.Do(func() {
		sharedEnc, encErr = encoder.Open(dir, encoder.Options{ORTLib: lib})
		if encErr != nil {
			return
		}
		path, err := DefaultCachePath(dir)
		if err != nil {
			path = filepath.Join(t.TempDir(), "embeddings.bin")
		}
		sharedEmb, encErr = NewEmbeddingCache(sharedEnc, path)
	})
	if encErr != nil {
		t.Fatal(encErr)
	}
	return sharedEmb
}

// testConfig is DefaultConfig with the shared encoder's folder.
func testConfig(t testing.TB) Config {
	cfg := DefaultConfig()
	cfg.Encoder = testutil.MiniLM(t)
	return cfg
}

// testGuard is one guard with the default configuration, built once for the package's tests.
func testGuard(t testing.TB) *Guard {
	t.Helper()
	emb := testEmbedder(t)
	guardOnce.Do(func() { sharedGuard, guardErr = NewWithEmbedder(testConfig(t), emb) })
	if guardErr != nil {
		t.Fatal(guardErr)
	}
	return sharedGuard
}

// newTestGuard builds a guard with cfg on the shared encoder.
func newTestGuard(t testing.TB, cfg Config) *Guard {
	t.Helper()
	g, err := NewWithEmbedder(cfg, testEmbedder(t))
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// corpusItems is the training corpus.
func corpusItems(t testing.TB) []Item {
	t.Helper()
	items, err := LoadCorpus(filepath.Join(testutil.RepoRoot(), "assets", "guard", "corpus"))
	if err != nil {
		t.Fatal(err)
	}
	return items
}

// frozenSplits are the frozen test splits, oldest first: v1 was measured once and is spent; v2 was
// written before the head that it measures; v3 was written after that head was frozen, by someone who
// had not seen the corpus, the rules or the other splits; v4 to v9 likewise, v4 committed before
// any change to the v3 head, v5 to v9 before any run of the head each measures (v7 and v8 side by
// side, by two writers). Only the shape and
// overlap tests read them here (their results are measured by `medassist guard eval`, never tuned on).
var frozenSplits = []string{"test_frozen.jsonl", "test_frozen_v2.jsonl", "test_frozen_v3.jsonl", "test_frozen_v4.jsonl", "test_frozen_v5.jsonl", "test_frozen_v6.jsonl", "test_frozen_v7.jsonl", "test_frozen_v8.jsonl", "test_frozen_v9.jsonl"}

// frozenTestSplit is one frozen test split of testdata/guard.
func frozenTestSplit(t testing.TB, name string) []Item {
	t.Helper()
	items, err := ReadItemsFile(filepath.Join(testutil.RepoRoot(), "testdata", "guard", name))
	if err != nil {
		t.Fatal(err)
	}
	return items
}
