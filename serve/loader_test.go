package serve

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/medassist/medassist/export"
	"github.com/medassist/medassist/hub"
	"github.com/medassist/medassist/internal/testutil"
)

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestClassifyModelID(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "exported", export.ModelFile), "onnx")
	writeFile(t, filepath.Join(dir, "hf", "config.json"), "{}")
	writeFile(t, filepath.Join(dir, "m.Q8_0.gguf"), "GGUF")
	writeFile(t, filepath.Join(dir, "notes.txt"), "x")
	if err := os.Mkdir(filepath.Join(dir, "empty"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		id      string
		want    SourceKind
		wantErr string
	}{
		{"TinyLlama/TinyLlama-1.1B-Chat-v1.0", SourceHub, ""},
		{filepath.Join(dir, "exported"), SourceExported, ""},
		{filepath.Join(dir, "hf"), SourceHFDir, ""},
		{filepath.Join(dir, "m.Q8_0.gguf"), SourceGGUF, ""},
		{filepath.Join(dir, "missing"), "", "no such file"},
		{filepath.Join(dir, "missing.gguf"), "", "no such file"},
		{filepath.Join(dir, "notes.txt"), "", "not a .gguf file"},
		{filepath.Join(dir, "empty"), "", "neither model.onnx"},
		{"", "", "no model id"},
	} {
		got, err := ClassifyModelID(c.id)
		if c.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Errorf("ClassifyModelID(%q) = %q, %v; want an error containing %q", c.id, got, err, c.wantErr)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("ClassifyModelID(%q) = %q, %v; want %q", c.id, got, err, c.want)
		}
	}
}

func testLoader(t *testing.T) *Loader {
	return &Loader{Hub: hub.Config{Endpoint: hub.DefaultEndpoint, CacheDir: t.TempDir(), Offline: true}, Log: quietLog}
}

func modTime(t *testing.T, path string) time.Time {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.ModTime()
}

// A local Hugging Face folder is exported once into the model dir with a stamp; the same request reuses
// it, and another quantization or a changed source file re-exports.
func TestPrepareExportsAndStamps(t *testing.T) {
	src := t.TempDir()
	if err := os.CopyFS(src, os.DirFS(testutil.Stories260K(t))); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.ModelID, cfg.ModelDir, cfg.Quantize = src, filepath.Join(t.TempDir(), "model"), "int4"
	l := testLoader(t)
	var stages []string
	l.Status = func(s string) { stages = append(stages, s) }
	dir, err := l.Prepare(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if dir != cfg.ModelDir {
		t.Fatalf("Prepare served %s, want the model dir %s", dir, cfg.ModelDir)
	}
	st, err := ReadStamp(dir)
	if err != nil {
		t.Fatal(err)
	}
	if st.ModelID != src || st.Quantize != "int4" || !strings.HasPrefix(st.Commit, "local-") || st.Format != StampFormat {
		t.Errorf("stamp %+v", st)
	}
	if len(stages) != 1 || !strings.Contains(stages[0], "exporting") {
		t.Errorf("status stages %q, want one exporting stage", stages)
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), partialPrefix) {
			t.Errorf("scratch folder %s left in the model dir", e.Name())
		}
	}
	first := modTime(t, filepath.Join(dir, export.ModelFile))

	stages = nil
	if _, err := l.Prepare(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	if len(stages) != 0 || !modTime(t, filepath.Join(dir, export.ModelFile)).Equal(first) {
		t.Errorf("an up-to-date export was redone (stages %q)", stages)
	}

	cfg.Quantize = "none"
	if _, err := l.Prepare(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	if st, _ := ReadStamp(dir); st.Quantize != "none" {
		t.Errorf("after changing the quantization the stamp says %q", st.Quantize)
	}

	later := time.Now().Add(time.Hour)
	if err := os.Chtimes(filepath.Join(src, "model.safetensors"), later, later); err != nil {
		t.Fatal(err)
	}
	stages = nil
	if _, err := l.Prepare(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	if len(stages) != 1 {
		t.Errorf("a changed source file was not re-exported (stages %q)", stages)
	}
}

// A model dir left half-written (no stamp, a scratch folder, a truncated model.onnx) is re-exported.
func TestPrepareRedoesHalfWrittenDir(t *testing.T) {
	cfg := DefaultConfig()
	cfg.ModelID, cfg.ModelDir = testutil.Stories260K(t), t.TempDir()
	writeFile(t, filepath.Join(cfg.ModelDir, export.ModelFile), "truncat")
	writeFile(t, filepath.Join(cfg.ModelDir, partialPrefix+"123", "export", "config.json"), "{")
	dir, err := testLoader(t).Prepare(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(filepath.Join(dir, export.ModelFile)); err != nil || st.Size() < 1000 {
		t.Errorf("model.onnx not re-exported: %v", err)
	}
	if _, err := os.Stat(filepath.Join(cfg.ModelDir, partialPrefix+"123")); !os.IsNotExist(err) {
		t.Errorf("old scratch folder still there: %v", err)
	}
	if _, err := ReadStamp(dir); err != nil {
		t.Errorf("no stamp after the re-export: %v", err)
	}
}

// A failed export leaves no stamp (so the next start retries) and no scratch folder; a folder that is
// not an export is never emptied.
func TestReplaceExportFailureAndForeignDir(t *testing.T) {
	dir := t.TempDir()
	old := Stamp{ModelID: "a/b", Commit: "c1", Quantize: "int4", Format: StampFormat}
	if err := ReplaceExport(dir, old, func(out, _ string) error { return os.MkdirAll(out, 0o755) }); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("disk full")
	err := ReplaceExport(dir, Stamp{ModelID: "a/b", Commit: "c2"}, func(out, _ string) error {
		writeFile(t, filepath.Join(out, export.ModelFile), "half")
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("ReplaceExport = %v, want the write error", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("a failed export left %d entries (stamp or scratch) in the dir", len(entries))
	}

	foreign := t.TempDir()
	writeFile(t, filepath.Join(foreign, "notes.txt"), "mine")
	err = ReplaceExport(foreign, old, func(out, _ string) error { return os.MkdirAll(out, 0o755) })
	if err == nil || !strings.Contains(err.Error(), "holds no medassist export") {
		t.Errorf("ReplaceExport on a foreign dir = %v", err)
	}
	if _, err := os.Stat(filepath.Join(foreign, "notes.txt")); err != nil {
		t.Errorf("foreign file removed: %v", err)
	}
}

// A GGUF file needs an importer: without one the error says so; with one, its Hugging Face folder is exported.
func TestPrepareGGUF(t *testing.T) {
	gguf := filepath.Join(t.TempDir(), "stories.gguf")
	writeFile(t, gguf, "GGUF")
	cfg := DefaultConfig()
	cfg.ModelID, cfg.ModelDir = gguf, t.TempDir()
	l := testLoader(t)
	if _, err := l.Prepare(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "cannot import GGUF") {
		t.Fatalf("Prepare(gguf) without an importer = %v", err)
	}
	var imported string
	l.Import = func(_ context.Context, file, out string) error {
		imported = file
		return os.CopyFS(out, os.DirFS(testutil.Stories260K(t)))
	}
	dir, err := l.Prepare(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if imported != gguf {
		t.Errorf("importer got %q", imported)
	}
	if _, err := os.Stat(filepath.Join(dir, export.ModelFile)); err != nil {
		t.Error(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "hf")); !os.IsNotExist(err) {
		t.Errorf("the imported folder was left in the model dir: %v", err)
	}
}

// Without the Hub, a Hub id is served from a model dir stamped with the same id, revision and
// quantization (a baked or persistent export), and fails with the pull error otherwise.
func TestPrepareHubUnreachable(t *testing.T) {
	cfg := DefaultConfig()
	cfg.ModelID, cfg.ModelDir = "TinyLlama/TinyLlama-1.1B-Chat-v1.0", t.TempDir()
	l := testLoader(t)
	if _, err := l.Prepare(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "pull TinyLlama") {
		t.Fatalf("Prepare offline with nothing cached = %v", err)
	}
	baked := Stamp{ModelID: cfg.ModelID, Revision: cfg.Revision, Commit: "fe8a4ea1ffedaf415f4da2f062534de366a451e6", Quantize: cfg.Quantize, Format: StampFormat}
	if err := writeStamp(cfg.ModelDir, baked); err != nil {
		t.Fatal(err)
	}
	if dir, err := l.Prepare(context.Background(), cfg); err != nil || dir != cfg.ModelDir {
		t.Errorf("Prepare offline with a baked export = %q, %v", dir, err)
	}
	cfg.Quantize = "int8"
	if _, err := l.Prepare(context.Background(), cfg); err == nil {
		t.Error("an export with another quantization was served")
	}
}

func TestDeviceFor(t *testing.T) {
	dir := t.TempDir()
	lib := filepath.Join(dir, "libonnxruntime.so")
	writeFile(t, lib, "")
	if got := DeviceFor("auto", lib); got != "cpu" {
		t.Errorf("auto with a CPU build = %q, want cpu", got)
	}
	if got := DeviceFor("cuda", lib); got != "cuda" {
		t.Errorf("an explicit device changed to %q", got)
	}
	gpu := t.TempDir()
	writeFile(t, filepath.Join(gpu, "libonnxruntime.so.1.30.0"), "")
	writeFile(t, filepath.Join(gpu, "libonnxruntime_providers_cuda.so"), "")
	link := filepath.Join(t.TempDir(), "libonnxruntime.so")
	if err := os.Symlink(filepath.Join(gpu, "libonnxruntime.so.1.30.0"), link); err != nil {
		t.Fatal(err)
	}
	if got := DeviceFor("auto", link); got != "auto" {
		t.Errorf("auto with a link to a GPU build = %q, want auto", got)
	}
	writeFile(t, filepath.Join(dir, "libonnxruntime_providers_cuda.so"), "")
	if got := DeviceFor("auto", lib); got != "auto" {
		t.Errorf("auto with a GPU build = %q, want auto", got)
	}
}

func getReady(t *testing.T, url string) (int, map[string]string) {
	t.Helper()
	resp, err := http.Get(url + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]string
	_ = json.Unmarshal(b, &m)
	return resp.StatusCode, m
}

// serve listens before the model is ready: /readyz says what the loader is doing, then why it failed,
// or turns 200 once a local Hugging Face folder has been exported and opened.
func TestServeLoadsModelIDInBackground(t *testing.T) {
	lib := testutil.ORTLibrary(t)
	cfg := testConfig()
	cfg.ModelName, cfg.ORTLib, cfg.Threads = "", lib, 1
	for _, c := range []struct {
		name, modelID, wantStatus, wantIn string
	}{
		{"missing", filepath.Join(t.TempDir(), "no-such-model"), "failed", "no such file"},
		{"hf-folder", testutil.Stories260K(t), "ready", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg.ModelID, cfg.ModelDir = c.modelID, t.TempDir()
			srv, _ := newServer(t, cfg)
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			url := "http://" + ln.Addr().String()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			gate := make(chan struct{})
			loader := testLoader(t)
			loader.Status = srv.SetLoadStatus
			errc := make(chan error, 1)
			go func() {
				errc <- srv.Serve(ctx, ln, func(ctx context.Context) (*Backend, error) {
					srv.SetLoadStatus("waiting for the test")
					<-gate
					return loader.Open(ctx, cfg)
				})
			}()
			waitFor(t, 5*time.Second, "the loading stage on /readyz", func() bool {
				code, m := getReady(t, url)
				return code == http.StatusServiceUnavailable && m["reason"] == "waiting for the test"
			})
			close(gate)
			var m map[string]string
			waitFor(t, 30*time.Second, "/readyz to settle", func() bool {
				_, m = getReady(t, url)
				return m["status"] != "loading"
			})
			if m["status"] != c.wantStatus || !strings.Contains(m["reason"], c.wantIn) {
				t.Errorf("/readyz = %v, want status %s and a reason containing %q", m, c.wantStatus, c.wantIn)
			}
			if c.wantStatus == "ready" && (m["model"] != "stories260K" || m["device"] != "cpu") {
				t.Errorf("/readyz = %v, want model stories260K on the cpu", m)
			}
			cancel()
			if err := waitRun(t, errc); err != nil {
				t.Errorf("Serve: %v", err)
			}
		})
	}
}

// A guard encoder that cannot be opened does not stop the server from starting: it listens, /readyz
// says why it is not ready, the model is never loaded and no chat is answered.
func TestServeWithoutGuardEncoderStaysUp(t *testing.T) {
	cfg := testConfig()
	cfg.Guard.Encoder = filepath.Join(t.TempDir(), "no-such-encoder")
	t.Setenv("HF_HOME", t.TempDir()) // an empty Hugging Face cache
	srv, err := New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("New with a missing encoder: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	loaded := false
	errc := make(chan error, 1)
	go func() {
		errc <- srv.Serve(ctx, ln, func(context.Context) (*Backend, error) {
			loaded = true
			return nil, errors.New("the model must not load without the guard")
		})
	}()
	var m map[string]string
	waitFor(t, 10*time.Second, "/readyz to report the encoder", func() bool {
		_, m = getReady(t, url)
		return m["status"] == "failed"
	})
	if !strings.Contains(m["reason"], "guard") || !strings.Contains(m["reason"], "no-such-encoder") {
		t.Errorf("/readyz = %v, want a reason naming the guard's encoder", m)
	}
	resp, err := http.Post(url+"/v1/chat/completions", "application/json",
		strings.NewReader(`{"messages":[{"role":"user","content":"What is a fever?"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("chat without the guard's encoder: status %d, want 503", resp.StatusCode)
	}
	cancel()
	if err := <-errc; err != nil {
		t.Errorf("Serve: %v", err)
	}
	if loaded {
		t.Error("the model was loaded although the guard could not start")
	}
}
