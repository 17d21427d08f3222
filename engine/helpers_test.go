package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/medassist/medassist/export"
	"github.com/medassist/medassist/internal/testutil"
)

// Every test model is an export of the real stories260K, written once per test binary.
var exports struct {
	sync.Mutex
	root string
	dirs map[string]string
}

func TestMain(m *testing.M) {
	code := m.Run()
	if exports.root != "" {
		os.RemoveAll(exports.root)
	}
	os.Exit(code)
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// exportStories exports stories260K with opt (once per distinct options) and returns the dir.
func exportStories(t testing.TB, opt export.Options) string {
	t.Helper()
	src := testutil.Stories260K(t)
	exports.Lock()
	defer exports.Unlock()
	key := fmt.Sprintf("%s-%s-%d-%v", opt.DType, opt.Quantize, opt.BlockSize, opt.Contrib)
	if d, ok := exports.dirs[key]; ok {
		return d
	}
	if exports.root == "" {
		root, err := os.MkdirTemp("", "engine-test-")
		if err != nil {
			t.Fatal(err)
		}
		exports.root, exports.dirs = root, map[string]string{}
	}
	dir := filepath.Join(exports.root, key)
	if _, err := export.Export(context.Background(), src, dir, opt, quiet, nil); err != nil {
		t.Fatalf("export stories260K (%s): %v", key, err)
	}
	exports.dirs[key] = dir
	return dir
}

// openStories opens the float32 export of stories260K on the CPU.
func openStories(t testing.TB) *Engine {
	t.Helper()
	return openExport(t, export.DefaultOptions())
}

func openExport(t testing.TB, opt export.Options) *Engine {
	t.Helper()
	lib := testutil.ORTLibrary(t)
	dir := exportStories(t, opt)
	e, err := Open(Config{ModelDir: dir, ORTLib: lib, Device: DeviceCPU, IntraOpThreads: 1}, quiet)
	if err != nil {
		t.Fatalf("open %s: %v", dir, err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

// golden is testdata/llama/stories260k.json, written by tools/oracle/llama_golden.py from HF
// transformers.
type golden struct {
	Cases []struct {
		Prompt    string      `json:"prompt"`
		IDs       []int       `json:"ids"`
		Logits    [][]float64 `json:"logits"`
		GreedyIDs []int       `json:"greedy_ids"`
	} `json:"cases"`
}

func loadGolden(t testing.TB) golden {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testutil.RepoRoot(), "testdata", "llama", "stories260k.json"))
	if err != nil {
		t.Fatal(err)
	}
	var g golden
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatal(err)
	}
	return g
}

// logBuffer collects log records for assertions.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}
