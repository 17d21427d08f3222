package serve

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	pmodel "github.com/prometheus/common/model"

	"github.com/medassist/medassist/encoder"
	"github.com/medassist/medassist/export"
	"github.com/medassist/medassist/generation"
	"github.com/medassist/medassist/internal/testutil"
)

// stories is stories260K exported to ONNX once per package and opened once; tests share the backend.
var stories struct {
	once sync.Once
	dir  string
	b    *Backend
	err  error
}

// minilm is the guard's sentence encoder, opened once per package and shared by every server.
var minilm struct {
	once sync.Once
	enc  *encoder.Encoder
	err  error
}

// guardEncoder is the shared all-MiniLM-L6-v2 encoder; it skips the test when the model or ONNX
// Runtime is absent.
func guardEncoder(t testing.TB) *encoder.Encoder {
	t.Helper()
	dir := testutil.MiniLM(t)
	lib := testutil.ORTLibrary(t)
	minilm.once.Do(func() { minilm.enc, minilm.err = encoder.Open(dir, encoder.Options{ORTLib: lib, Threads: 1}) })
	if minilm.err != nil {
		t.Fatalf("guard encoder: %v", minilm.err)
	}
	return minilm.enc
}

func TestMain(m *testing.M) {
	code := m.Run()
	if minilm.enc != nil {
		_ = minilm.enc.Close()
	}
	if stories.b != nil {
		_ = stories.b.Close()
	}
	if stories.dir != "" {
		_ = os.RemoveAll(stories.dir)
	}
	os.Exit(code)
}

var quietLog = slog.New(slog.NewTextHandler(io.Discard, nil))

// storiesBackend is the real engine on stories260K (exported to ONNX in a temp dir). It skips the test
// when the shared model or ONNX Runtime is absent. Callers must not Close it.
func storiesBackend(t testing.TB) *Backend {
	t.Helper()
	src := testutil.Stories260K(t)
	lib := testutil.ORTLibrary(t)
	stories.once.Do(func() {
		stories.dir, stories.err = os.MkdirTemp("", "medassist-serve-")
		if stories.err != nil {
			return
		}
		start := time.Now()
		if _, stories.err = export.Export(context.Background(), src, stories.dir, export.DefaultOptions(), quietLog, nil); stories.err != nil {
			return
		}
		exported := time.Since(start)
		cfg := DefaultConfig()
		cfg.Model, cfg.ORTLib, cfg.Device, cfg.Threads = stories.dir, lib, "cpu", 1
		stories.b, stories.err = OpenBackend(context.Background(), cfg, quietLog)
		t.Logf("stories260K: export %v, open %v", exported.Round(time.Millisecond), (time.Since(start) - exported).Round(time.Millisecond))
	})
	if errors.Is(stories.err, ErrNoCgo) {
		testutil.Missing(t, "stories260K backend: %v", stories.err)
	}
	if stories.err != nil {
		t.Fatalf("stories260K backend: %v", stories.err)
	}
	return stories.b
}

// withGen is b generating through gen; Close does nothing (the shared backend outlives the test).
func withGen(b *Backend, gen generation.Generator) *Backend {
	c := *b
	c.Gen = gen
	c.Close = func() error { return nil }
	return &c
}

// syncBuffer collects log output from several goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// harness is a real server (httptest, loopback) with a JSON log captured in memory.
type harness struct {
	t    *testing.T
	srv  *Server
	url  string
	logs *syncBuffer
}

func testConfig() Config {
	cfg := DefaultConfig()
	cfg.ModelName = "stories260k"
	cfg.Addr = "127.0.0.1:0"
	cfg.DefaultMaxTok = 48
	cfg.RequestTimeout = time.Minute
	return cfg
}

func newServer(t testing.TB, cfg Config) (*Server, *syncBuffer) {
	t.Helper()
	logs := &syncBuffer{}
	srv, err := NewWithEmbedder(cfg, slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})), guardEncoder(t))
	if err != nil {
		t.Fatal(err)
	}
	return srv, logs
}

// newHarness serves a new server with backend b (nil: not ready) on an httptest listener.
func newHarness(t *testing.T, b *Backend, mod func(*Config)) *harness {
	t.Helper()
	cfg := testConfig()
	if mod != nil {
		mod(&cfg)
	}
	srv, logs := newServer(t, cfg)
	if b != nil {
		srv.SetBackend(b)
	}
	ts := httptest.NewServer(srv.Router())
	t.Cleanup(ts.Close)
	return &harness{t: t, srv: srv, url: ts.URL, logs: logs}
}

// do sends a request and returns the response with its whole body.
func (h *harness) do(method, path, contentType string, body io.Reader) (*http.Response, []byte) {
	h.t.Helper()
	req, err := http.NewRequest(method, h.url+path, body)
	if err != nil {
		h.t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		h.t.Fatalf("%s %s: reading the body: %v", method, path, err)
	}
	return resp, b
}

func (h *harness) post(body string) (*http.Response, []byte) {
	h.t.Helper()
	return h.do(http.MethodPost, "/v1/chat/completions", "application/json", strings.NewReader(body))
}

func (h *harness) get(path string) (*http.Response, []byte) {
	h.t.Helper()
	return h.do(http.MethodGet, path, "", nil)
}

// completion is a chat.completion or chat.completion.chunk as a client decodes it.
type completion struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Model   string `json:"model"`
	Choices []struct {
		Index   int `json:"index"`
		Message *struct {
			Role    string `json:"role"`
			Content string `json:"content"`
		} `json:"message"`
		Delta *struct {
			Role    string  `json:"role"`
			Content *string `json:"content"`
		} `json:"delta"`
		FinishReason *string `json:"finish_reason"`
	} `json:"choices"`
	Usage *usage       `json:"usage"`
	Guard *guardResult `json:"guard"`
	Error *struct {
		Message string `json:"message"`
		Type    string `json:"type"`
		Code    any    `json:"code"`
	} `json:"error"`
}

// stream is a parsed SSE response.
type stream struct {
	chunks  []completion
	done    bool   // ended with data: [DONE]
	content string // the deltas' content joined
	finish  string // the last finish_reason
	role    string
	usage   *usage
	guard   *guardResult
}

// parseSSE checks the event framing and decodes every chunk.
func parseSSE(t testing.TB, body []byte) stream {
	t.Helper()
	var s stream
	for _, ev := range strings.Split(strings.TrimSuffix(string(body), "\n\n"), "\n\n") {
		data, ok := strings.CutPrefix(ev, "data: ")
		if !ok || strings.Contains(data, "\n") {
			t.Fatalf("malformed SSE event %q in %q", ev, body)
		}
		if s.done {
			t.Fatalf("event after [DONE]: %q", ev)
		}
		if data == "[DONE]" {
			s.done = true
			continue
		}
		var c completion
		if err := json.Unmarshal([]byte(data), &c); err != nil {
			t.Fatalf("chunk %q: %v", data, err)
		}
		s.chunks = append(s.chunks, c)
		if c.Error != nil {
			continue
		}
		if c.Usage != nil {
			s.usage = c.Usage
		}
		if c.Guard != nil {
			s.guard = c.Guard
		}
		for _, ch := range c.Choices {
			if ch.Delta != nil && ch.Delta.Content != nil {
				s.content += *ch.Delta.Content
			}
			if ch.Delta != nil && ch.Delta.Role != "" {
				s.role = ch.Delta.Role
			}
			if ch.FinishReason != nil {
				s.finish = *ch.FinishReason
			}
		}
	}
	return s
}

// scrapeMetrics reads /metrics with Prometheus' own text parser.
func (h *harness) scrapeMetrics() map[string]*dto.MetricFamily {
	h.t.Helper()
	resp, body := h.get("/metrics")
	if resp.StatusCode != http.StatusOK {
		h.t.Fatalf("/metrics: %d", resp.StatusCode)
	}
	p := expfmt.NewTextParser(pmodel.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		h.t.Fatalf("/metrics does not parse as Prometheus text: %v", err)
	}
	return fams
}

// metric is the value of the series name{labels} (counter, gauge or histogram count); 0 when absent.
func (h *harness) metric(name string, labels ...string) float64 {
	h.t.Helper()
	return metricValue(h.scrapeMetrics(), name, labels...)
}

func metricValue(fams map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	f := fams[name]
	if f == nil {
		return 0
	}
	var total float64
	for _, m := range f.GetMetric() {
		if !hasLabels(m, labels) {
			continue
		}
		switch {
		case m.Counter != nil:
			total += m.Counter.GetValue()
		case m.Gauge != nil:
			total += m.Gauge.GetValue()
		case m.Histogram != nil:
			total += float64(m.Histogram.GetSampleCount())
		}
	}
	return total
}

func hasLabels(m *dto.Metric, kv []string) bool {
	for i := 0; i+1 < len(kv); i += 2 {
		found := false
		for _, l := range m.GetLabel() {
			if l.GetName() == kv[i] && l.GetValue() == kv[i+1] {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// readEvent reads one SSE event ("data: ..." up to the blank line) from r.
func readEvent(r *bufio.Reader) (string, error) {
	var data string
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return "", err
		}
		line = strings.TrimRight(line, "\n")
		if line == "" {
			return data, nil
		}
		data += strings.TrimPrefix(line, "data: ")
	}
}

// gatedGen is the real engine, paused in each generation after pauseAfter tokens until open is
// closed (or the generation's context ends): a request that stays in flight as long as a test needs.
type gatedGen struct {
	generation.Generator
	pauseAfter int
	started    chan struct{} // receives once per generation, when it pauses
	open       chan struct{}
}

func newGatedGen(g generation.Generator) *gatedGen {
	return &gatedGen{Generator: g, started: make(chan struct{}, 16), open: make(chan struct{})}
}

func (g *gatedGen) Generate(ctx context.Context, req generation.Request, emit func(int) error) (generation.Result, error) {
	n := 0
	return g.Generator.Generate(ctx, req, func(id int) error {
		if n == g.pauseAfter {
			g.started <- struct{}{}
			select {
			case <-g.open:
			case <-ctx.Done():
			}
		}
		n++
		return emit(id)
	})
}
