package serve

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/medassist/medassist/generation"
)

// probeGen is the real engine, watched: for each generation it records the tokens emitted, the mean
// decode step and what happened after its context ended.
type probeGen struct {
	generation.Generator
	emitted atomic.Int64 // tokens of the generation running now
	mu      sync.Mutex
	runs    []probeRun
}

type probeRun struct {
	tokens      int
	afterCancel int           // tokens emitted after the context ended
	cancelled   bool          // the context ended before Generate returned
	stopLatency time.Duration // from the context's end to Generate's return
	step        time.Duration // mean time per decoded token
	end         time.Time     // when Generate returned
	err         error
}

func (g *probeGen) Generate(ctx context.Context, req generation.Request, emit func(int) error) (generation.Result, error) {
	var n, atCancel atomic.Int64
	var cancelledAt atomic.Int64
	atCancel.Store(-1)
	stop := context.AfterFunc(ctx, func() {
		atCancel.Store(n.Load())
		cancelledAt.Store(time.Now().UnixNano())
	})
	var first time.Time
	g.emitted.Store(0)
	res, err := g.Generator.Generate(ctx, req, func(id int) error {
		g.emitted.Add(1)
		if n.Add(1) == 1 {
			first = time.Now()
		}
		return emit(id)
	})
	end := time.Now()
	stop()
	r := probeRun{tokens: int(n.Load()), end: end, err: err}
	if r.tokens > 1 {
		r.step = end.Sub(first) / time.Duration(r.tokens-1)
	}
	if at := atCancel.Load(); at >= 0 {
		r.cancelled = true
		r.afterCancel = r.tokens - int(at)
		r.stopLatency = end.Sub(time.Unix(0, cancelledAt.Load()))
	}
	g.mu.Lock()
	g.runs = append(g.runs, r)
	g.mu.Unlock()
	return res, err
}

func (g *probeGen) last() (probeRun, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.runs) == 0 {
		return probeRun{}, false
	}
	return g.runs[len(g.runs)-1], true
}

// A client that goes away mid-stream frees its sequence within one decode step.
func TestClientDisconnectStopsGeneration(t *testing.T) {
	probe := &probeGen{Generator: fakeGen{}}
	nb := fakeBackend(t, probe)
	nb.StopIDs = nil // only max_tokens (the context length) ends a generation
	h := newHarness(t, nb, nil)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, h.url+"/v1/chat/completions",
		strings.NewReader(chatBody(question, `,"max_tokens":1024,"stream":true`)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(resp.Body)
	const seen = 12 // content chunks read before leaving: the generation is well under way
	for n := 0; n < seen; {
		ev, err := readEvent(r)
		if err != nil {
			t.Fatalf("stream ended after %d content chunks: %v", n, err)
		}
		var c completion
		if json.Unmarshal([]byte(ev), &c) == nil && len(c.Choices) > 0 && c.Choices[0].Delta != nil &&
			c.Choices[0].Delta.Content != nil && *c.Choices[0].Delta.Content != "" {
			n++
		}
	}
	if v := h.metric("medassist_active_sequences"); v != 1 {
		t.Fatalf("active sequences %v while streaming", v)
	}
	atClose := int(probe.emitted.Load())
	closed := time.Now()
	cancel() // the client closes its connection
	resp.Body.Close()

	waitFor(t, 5*time.Second, "the sequence to be freed", func() bool {
		return h.metric("medassist_active_sequences") == 0 && h.metric("medassist_client_disconnects_total") == 1
	})
	freed := time.Since(closed)
	n1 := h.metric("medassist_generated_tokens_total")
	time.Sleep(100 * time.Millisecond)
	n2 := h.metric("medassist_generated_tokens_total")
	run, ok := probe.last()
	if !ok {
		t.Fatal("no generation ran")
	}
	stopped := run.end.Sub(closed)
	t.Logf("sequence freed (metrics) %v after the client closed; generation returned %v after it (%d tokens then, %d at the end; mean step %v); "+
		"its context ended first: %v (%d token(s) after that); Generate returned %v",
		freed.Round(time.Microsecond), stopped.Round(time.Microsecond), atClose, run.tokens, run.step,
		run.cancelled, run.afterCancel, run.err)
	if n2 != n1 || int(n2) != run.tokens || run.tokens < seen || run.tokens >= nb.MaxPositions/2 {
		t.Errorf("generated tokens kept growing or ran to the end: %v then %v (probe %d, context %d)", n1, n2, run.tokens, nb.MaxPositions)
	}
	// one decode step may be under way when the client leaves; a token past it means a second step
	if run.tokens-atClose > 2 || (run.cancelled && run.afterCancel > 1) {
		t.Errorf("generation went on for %d tokens after the client left (%d after its context ended): more than one decode step",
			run.tokens-atClose, run.afterCancel)
	}
	if stopped > run.step+100*time.Millisecond { // one step plus scheduling slack on a shared CPU
		t.Errorf("generation returned %v after the client left; one decode step is %v", stopped, run.step)
	}
}

// startServe runs Serve on a loopback listener with a load function the test releases.
func startServe(t *testing.T, cfg Config, b *Backend) (srv *Server, url string, release func(), stop context.CancelFunc, runErr <-chan error) {
	t.Helper()
	srv, _ = newServer(t, cfg)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	loadNow := make(chan struct{})
	errc := make(chan error, 1)
	go func() {
		errc <- srv.Serve(ctx, ln, func(ctx context.Context) (*Backend, error) {
			select {
			case <-loadNow:
				return b, nil
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		})
	}()
	var once sync.Once
	return srv, "http://" + ln.Addr().String(), func() { once.Do(func() { close(loadNow) }) }, cancel, errc
}

func openStream(t *testing.T, url, body string) *http.Response {
	t.Helper()
	resp, err := http.Post(url+"/v1/chat/completions", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("stream: status %d", resp.StatusCode)
	}
	return resp
}

func waitRun(t *testing.T, errc <-chan error) error {
	t.Helper()
	select {
	case err := <-errc:
		return err
	case <-time.After(15 * time.Second):
		t.Fatal("Serve did not return after shutdown")
		return nil
	}
}

// Cancelling Run's context (SIGTERM) lets the stream in flight finish, then Serve returns nil.
func TestGracefulShutdown(t *testing.T) {
	gate := newGatedGen(fakeGen{})
	var closed atomic.Bool
	nb := fakeBackend(t, gate)
	nb.Close = func() error { closed.Store(true); return nil }
	_, url, load, stop, errc := startServe(t, testConfig(), nb)

	waitFor(t, 5*time.Second, "the listener", func() bool {
		resp, err := http.Get(url + "/healthz")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil && resp.StatusCode == http.StatusOK
	})
	resp, err := http.Get(url + "/readyz")
	if err != nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("/readyz while loading: %v %v", resp.StatusCode, err)
	}
	resp.Body.Close()
	load()
	waitFor(t, 5*time.Second, "/readyz 200", func() bool {
		resp, err := http.Get(url + "/readyz")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil && resp.StatusCode == http.StatusOK
	})

	stream := openStream(t, url, chatBody(question, `,"max_tokens":24,"stream":true`))
	<-gate.started
	stop() // SIGTERM
	addr := strings.TrimPrefix(url, "http://")
	waitFor(t, 5*time.Second, "the listener to close", func() bool {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err != nil
	})
	close(gate.open)
	body, err := io.ReadAll(stream.Body)
	stream.Body.Close()
	if err != nil {
		t.Fatalf("reading the stream: %v", err)
	}
	s := parseSSE(t, body)
	if !s.done || s.content == "" || (s.finish != "stop" && s.finish != "length") {
		t.Errorf("the stream in flight did not complete: done=%v finish=%q", s.done, s.finish)
	}
	if err := waitRun(t, errc); err != nil {
		t.Errorf("Serve: %v", err)
	}
	if !closed.Load() {
		t.Error("the backend was not closed")
	}
}

// Past the shutdown timeout, a stream still generating ends with an error event and [DONE].
func TestShutdownTimeoutEndsStreams(t *testing.T) {
	gate := newGatedGen(fakeGen{}) // never opened
	cfg := testConfig()
	cfg.ShutdownTimeout = 300 * time.Millisecond
	_, url, load, stop, errc := startServe(t, cfg, fakeBackend(t, gate))
	load()
	waitFor(t, 5*time.Second, "/readyz 200", func() bool {
		resp, err := http.Get(url + "/readyz")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil && resp.StatusCode == http.StatusOK
	})
	stream := openStream(t, url, chatBody(question, `,"stream":true`))
	<-gate.started
	start := time.Now()
	stop()
	body, err := io.ReadAll(stream.Body)
	stream.Body.Close()
	if err != nil {
		t.Fatalf("reading the stream: %v", err)
	}
	s := parseSSE(t, body)
	last := s.chunks[len(s.chunks)-1]
	if !s.done || last.Error == nil || last.Error.Code != "shutting_down" {
		t.Errorf("stream cut by shutdown: done=%v last chunk %+v", s.done, last)
	}
	if err := waitRun(t, errc); err != nil {
		t.Errorf("Serve: %v", err)
	}
	if took := time.Since(start); took > cfg.ShutdownTimeout+drainGrace {
		t.Errorf("shutdown took %v", took)
	}
}

// A model that fails to load leaves the process up with /readyz saying why; Serve still stops cleanly.
func TestLoadFailureReported(t *testing.T) {
	srv, _ := newServer(t, testConfig())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errc := make(chan error, 1)
	go func() {
		errc <- srv.Serve(ctx, ln, func(context.Context) (*Backend, error) {
			return nil, errors.New("no model.onnx in /nowhere: run medassist export")
		})
	}()
	url := "http://" + ln.Addr().String()
	var body []byte
	waitFor(t, 5*time.Second, "/readyz to report the failure", func() bool {
		resp, err := http.Get(url + "/readyz")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		body, _ = io.ReadAll(resp.Body)
		return resp.StatusCode == http.StatusServiceUnavailable && strings.Contains(string(body), `"failed"`)
	})
	if !strings.Contains(string(body), "run medassist export") {
		t.Errorf("/readyz does not say why: %s", body)
	}
	if resp, err := http.Get(url + "/healthz"); err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("/healthz after a failed load: %v", err)
	} else {
		resp.Body.Close()
	}
	cancel()
	if err := waitRun(t, errc); err != nil {
		t.Errorf("Serve: %v", err)
	}
}
