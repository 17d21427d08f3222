package serve

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/medassist/medassist/generation"
	"github.com/medassist/medassist/guard"
)

const (
	question  = "What are the common symptoms of iron deficiency anemia?"
	emergency = "My father has crushing chest pain and his left arm is numb"
	offTopic  = "Write a poem about sailing ships on the ocean at sunset"
)

func chatBody(content string, extra string) string {
	msg, _ := json.Marshal(content)
	return `{"model":"stories260k","messages":[{"role":"user","content":` + string(msg) + `}]` + extra + `}`
}

func decodeCompletion(t *testing.T, body []byte) completion {
	t.Helper()
	var c completion
	if err := json.Unmarshal(body, &c); err != nil {
		t.Fatalf("response is not JSON: %v: %s", err, body)
	}
	return c
}

// direct generates p's answer with the engine itself, bypassing HTTP: the reference for usage counts.
func direct(t *testing.T, h *harness, p *params) (promptTokens int, res generation.Result) {
	t.Helper()
	svc := h.srv.svc.Load()
	req, err := svc.request(p)
	if err != nil {
		t.Fatal(err)
	}
	res, err = svc.b.Gen.Generate(context.Background(), req, func(int) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	return len(req.PromptIDs), res
}

func TestChatPlainAndStreamed(t *testing.T) {
	b := storiesBackend(t)
	h := newHarness(t, b, nil)
	disclaimer := guard.DefaultConfig().Disclaimer
	const extra = `,"max_tokens":40,"temperature":0,"seed":3`

	resp, body := h.post(chatBody(question, extra))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("plain: status %d: %s", resp.StatusCode, body)
	}
	if id := resp.Header.Get("X-Request-ID"); id == "" {
		t.Error("no X-Request-ID header")
	}
	plain := decodeCompletion(t, body)
	if plain.Object != "chat.completion" || plain.Model != "stories260k" || len(plain.Choices) != 1 || plain.Choices[0].Message == nil {
		t.Fatalf("plain: unexpected shape: %s", body)
	}
	text := plain.Choices[0].Message.Content
	if plain.Choices[0].Message.Role != "assistant" || !strings.HasPrefix(text, "**Summary**\n") || len(text) < len(disclaimer)+40 {
		t.Errorf("plain: content %q", text)
	}
	if n := strings.Count(text, disclaimer); n != 1 {
		t.Errorf("plain: disclaimer %d times in %q", n, text)
	}
	if plain.Guard != nil {
		t.Errorf("plain: guard object on an allowed answer: %+v", plain.Guard)
	}

	// usage against the engine driven directly with the same (greedy) request
	p, err := decodeChatRequest(strings.NewReader(chatBody(question, extra)), &h.srv.cfg)
	if err != nil {
		t.Fatal(err)
	}
	promptTokens, ref := direct(t, h, p)
	wantFinish := string(ref.Finish)
	if u := plain.Usage; u == nil || u.PromptTokens != promptTokens || u.CompletionTokens != len(ref.IDs) ||
		u.TotalTokens != promptTokens+len(ref.IDs) || *plain.Choices[0].FinishReason != wantFinish {
		t.Errorf("plain: usage %+v finish %q; the engine itself: %d prompt + %d generated tokens, finish %q",
			plain.Usage, *plain.Choices[0].FinishReason, promptTokens, len(ref.IDs), wantFinish)
	}
	t.Logf("prompt %d tokens, generated %d (%s), answer %d bytes", promptTokens, len(ref.IDs), ref.Finish, len(text))

	resp, body = h.post(chatBody(question, extra+`,"stream":true,"stream_options":{"include_usage":true}`))
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("stream: status %d, content type %q: %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	s := parseSSE(t, body)
	if !s.done || s.role != "assistant" || s.finish != wantFinish {
		t.Errorf("stream: done=%v role=%q finish=%q", s.done, s.role, s.finish)
	}
	if len(s.chunks) < 4 {
		t.Errorf("stream: only %d chunks: the answer was not streamed", len(s.chunks))
	}
	for _, c := range s.chunks {
		if c.Object != "chat.completion.chunk" || c.ID != s.chunks[0].ID {
			t.Fatalf("stream: chunk %+v", c)
		}
	}
	if s.content != text {
		t.Errorf("stream: greedy content differs from the plain answer:\nstream %q\nplain  %q", s.content, text)
	}
	if n := strings.Count(s.content, disclaimer); n != 1 {
		t.Errorf("stream: disclaimer %d times", n)
	}
	if s.usage == nil || *s.usage != *plain.Usage {
		t.Errorf("stream: usage %+v, plain %+v", s.usage, plain.Usage)
	}

	// the generated-tokens counter saw all three generations (plain, direct is not counted, stream)
	if got := h.metric("medassist_generated_tokens_total"); got != float64(2*len(ref.IDs)) {
		t.Errorf("medassist_generated_tokens_total = %v, want %d", got, 2*len(ref.IDs))
	}
}

func TestStopSequence(t *testing.T) {
	b := storiesBackend(t)
	h := newHarness(t, b, nil)
	p, err := decodeChatRequest(strings.NewReader(chatBody(question, `,"max_tokens":40,"temperature":0`)), &h.srv.cfg)
	if err != nil {
		t.Fatal(err)
	}
	_, ref := direct(t, h, p)
	dec, raw := b.Tok.StreamDecoder(true), ""
	for _, id := range ref.IDs {
		raw += dec.Add(id)
	}
	raw += dec.Flush()
	if len(raw) < 30 {
		t.Fatalf("the greedy answer of stories260K is too short to take a stop string from: %q", raw)
	}
	stop := strings.TrimSpace(raw[len(raw)/2 : len(raw)/2+6])
	before, _, _ := strings.Cut(raw, stop)
	stopJSON, _ := json.Marshal(stop)
	resp, body := h.post(chatBody(question, `,"max_tokens":40,"temperature":0,"stop":`+string(stopJSON)))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	c := decodeCompletion(t, body)
	answer, _, _ := strings.Cut(c.Choices[0].Message.Content, "**When to seek care**")
	if strings.Contains(answer, stop) || *c.Choices[0].FinishReason != "stop" || c.Usage.CompletionTokens >= len(ref.IDs) {
		t.Errorf("stop %q: finish %q, %d of %d tokens, answer %q", stop, *c.Choices[0].FinishReason, c.Usage.CompletionTokens, len(ref.IDs), answer)
	}
	if last := strings.TrimSpace(before); last != "" && !strings.Contains(answer, last[max(0, len(last)-8):]) {
		t.Errorf("the text before the stop string is missing: %q not in %q", last, answer)
	}
}

func TestGuardPassthrough(t *testing.T) {
	b := storiesBackend(t)
	for _, tc := range []struct {
		name, text, verdict string
		stream              bool
	}{
		{"emergency", emergency, "emergency", false},
		{"emergency stream", emergency, "emergency", true},
		{"out of domain", offTopic, "out_of_domain", false},
		{"out of domain stream", offTopic, "out_of_domain", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, b, nil) // fresh metrics
			extra := ""
			if tc.stream {
				extra = `,"stream":true`
			}
			resp, body := h.post(chatBody(tc.text, extra))
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d: %s", resp.StatusCode, body)
			}
			var g *guardResult
			var content, finish string
			if tc.stream {
				s := parseSSE(t, body)
				if !s.done {
					t.Error("stream without [DONE]")
				}
				g, content, finish = s.guard, s.content, s.finish
			} else {
				c := decodeCompletion(t, body)
				g, content, finish = c.Guard, c.Choices[0].Message.Content, *c.Choices[0].FinishReason
			}
			if g == nil || g.Verdict != tc.verdict || g.Reason == "" || finish != "content_filter" || content == "" {
				t.Fatalf("guard %+v finish %q content %q", g, finish, content)
			}
			if tc.verdict == "emergency" && !strings.Contains(content, "911") {
				t.Errorf("emergency guidance without the number to call: %q", content)
			}
			fams := h.scrapeMetrics()
			if n := metricValue(fams, "medassist_generated_tokens_total"); n != 0 {
				t.Errorf("the model generated %v tokens for a guarded message", n)
			}
			if n := metricValue(fams, "medassist_guard_verdicts_total", "verdict", tc.verdict); n != 1 {
				t.Errorf("guard verdict %s counted %v times", tc.verdict, n)
			}
		})
	}
}

func TestClientErrors(t *testing.T) {
	h := newHarness(t, fakeBackend(t, nil), nil)
	big := chatBody(strings.Repeat("a", 2<<20), "")
	for _, tc := range []struct {
		name, method, path, body string
		status                   int
		code                     string
	}{
		{"bad JSON", "POST", "/v1/chat/completions", `{"messages":[{"role":"user","content":"hi"}`, 400, ""},
		{"not JSON", "POST", "/v1/chat/completions", `hello`, 400, ""},
		{"n=2", "POST", "/v1/chat/completions", chatBody(question, `,"n":2`), 400, "invalid_value"},
		{"max_tokens too big", "POST", "/v1/chat/completions", chatBody(question, `,"max_tokens":1000000`), 400, "invalid_value"},
		{"2 MiB body", "POST", "/v1/chat/completions", big, 413, "request_too_large"},
		{"wrong method", "GET", "/v1/chat/completions", "", 405, "method_not_allowed"},
		{"wrong route", "POST", "/v1/completions", "{}", 404, "not_found"},
		{"models wrong method", "DELETE", "/v1/models", "", 405, "method_not_allowed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := h.do(tc.method, tc.path, "application/json", strings.NewReader(tc.body))
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, body)
			}
			var e struct {
				Error struct {
					Message string  `json:"message"`
					Type    string  `json:"type"`
					Code    *string `json:"code"`
				} `json:"error"`
			}
			if err := json.Unmarshal(body, &e); err != nil || e.Error.Message == "" || e.Error.Type != "invalid_request_error" {
				t.Fatalf("not an OpenAI error: %v %s", err, body)
			}
			if tc.code != "" && (e.Error.Code == nil || *e.Error.Code != tc.code) {
				t.Errorf("code %v, want %q", e.Error.Code, tc.code)
			}
		})
	}
	if n := h.metric("medassist_generated_tokens_total"); n != 0 {
		t.Errorf("client errors generated %v tokens", n)
	}
}

func TestHealthReadyModels(t *testing.T) {
	h := newHarness(t, nil, nil)
	if resp, _ := h.get("/healthz"); resp.StatusCode != http.StatusOK {
		t.Errorf("/healthz while loading: %d", resp.StatusCode)
	}
	resp, body := h.get("/readyz")
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" || !strings.Contains(string(body), "loading") {
		t.Errorf("/readyz without a backend: %d %q %s", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	resp, body = h.post(chatBody(question, ""))
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" || !strings.Contains(string(body), "not_ready") {
		t.Errorf("chat without a backend: %d %s", resp.StatusCode, body)
	}

	h.srv.SetBackend(storiesBackend(t))
	resp, body = h.get("/readyz")
	var ready struct{ Status, Model, Device string }
	if err := json.Unmarshal(body, &ready); err != nil || resp.StatusCode != http.StatusOK || ready.Status != "ready" || ready.Device != "cpu" {
		t.Errorf("/readyz with a backend: %d %s", resp.StatusCode, body)
	}
	resp, body = h.get("/v1/models")
	var models struct {
		Object string
		Data   []struct{ ID, Object string }
	}
	if err := json.Unmarshal(body, &models); err != nil || resp.StatusCode != http.StatusOK || models.Object != "list" ||
		len(models.Data) != 1 || models.Data[0].ID != "stories260k" || models.Data[0].Object != "model" {
		t.Errorf("/v1/models: %d %s", resp.StatusCode, body)
	}
	resp, body = h.get("/")
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") || !strings.Contains(string(body), "disclaimer") {
		t.Errorf("/: %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
}

func TestMetricsExposition(t *testing.T) {
	h := newHarness(t, fakeBackend(t, nil), nil)
	h.post(chatBody(question, `,"max_tokens":8`))
	h.post(chatBody(question, `,"max_tokens":8,"stream":true`))
	h.post(chatBody(emergency, ""))
	h.post(`{`)
	fams := h.scrapeMetrics()
	for _, want := range []struct {
		name   string
		labels []string
		min    float64
	}{
		{"medassist_http_requests_total", []string{"route", "/v1/chat/completions", "code", "200"}, 3},
		{"medassist_http_requests_total", []string{"route", "/v1/chat/completions", "code", "400"}, 1},
		{"medassist_http_request_duration_seconds", []string{"route", "/v1/chat/completions"}, 4},
		{"medassist_guard_verdicts_total", []string{"verdict", "allow", "reason", "medical"}, 2},
		{"medassist_guard_verdicts_total", []string{"verdict", "emergency"}, 1},
		{"medassist_guard_check_seconds", nil, 3},
		{"medassist_time_to_first_token_seconds", nil, 2},
		{"medassist_generated_tokens_total", nil, 2},
		{"medassist_generation_tokens_per_second", nil, 2},
		{"medassist_finish_reasons_total", nil, 2},
		{"medassist_queue_depth", nil, 0},
		{"medassist_active_sequences", nil, 0},
		{"medassist_client_disconnects_total", nil, 0},
		{"go_goroutines", nil, 1},
		{"process_resident_memory_bytes", nil, 1},
	} {
		if fams[want.name] == nil {
			t.Errorf("series %s missing", want.name)
			continue
		}
		if v := metricValue(fams, want.name, want.labels...); v < want.min {
			t.Errorf("%s%v = %v, want >= %v", want.name, want.labels, v, want.min)
		}
	}
	if v := metricValue(fams, "medassist_active_sequences") + metricValue(fams, "medassist_queue_depth"); v != 0 {
		t.Errorf("idle server: active + queued = %v", v)
	}
}

func TestQueueFull(t *testing.T) {
	gate := newGatedGen(fakeGen{})
	h := newHarness(t, fakeBackend(t, gate), func(c *Config) { c.MaxConcurrent, c.QueueSize = 1, 0 })
	first := make(chan []byte)
	go func() {
		_, body := h.post(chatBody(question, `,"max_tokens":8,"stream":true`))
		first <- body
	}()
	<-gate.started // the first request holds the only slot

	resp, body := h.post(chatBody(question, `,"max_tokens":8`))
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("full queue: status %d Retry-After %q: %s", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	var e struct{ Error struct{ Type, Code string } }
	if err := json.Unmarshal(body, &e); err != nil || e.Error.Type != "rate_limit_error" || e.Error.Code != "queue_full" {
		t.Errorf("full queue: %s", body)
	}
	if v := h.metric("medassist_active_sequences"); v != 1 {
		t.Errorf("active sequences %v while one request generates", v)
	}
	close(gate.open)
	if s := parseSSE(t, <-first); !s.done || s.content == "" {
		t.Errorf("the request in flight did not finish: %+v", s)
	}
	if resp, body := h.post(chatBody(question, `,"max_tokens":4`)); resp.StatusCode != http.StatusOK {
		t.Errorf("after the slot was freed: %d %s", resp.StatusCode, body)
	}
}

func TestQueueWaits(t *testing.T) {
	gate := newGatedGen(fakeGen{})
	h := newHarness(t, fakeBackend(t, gate), func(c *Config) { c.MaxConcurrent, c.QueueSize = 1, 1 })
	done := make(chan int, 2)
	for range 2 {
		go func() {
			resp, _ := h.post(chatBody(question, `,"max_tokens":4`))
			done <- resp.StatusCode
		}()
	}
	<-gate.started
	waitFor(t, 5*time.Second, "one request queued", func() bool { return h.metric("medassist_queue_depth") == 1 })
	close(gate.open)
	for range 2 {
		if code := <-done; code != http.StatusOK {
			t.Errorf("queued request: %d", code)
		}
	}
}

func TestRequestDeadline(t *testing.T) {
	gate := newGatedGen(fakeGen{}) // never opened: only the deadline ends the generation
	h := newHarness(t, fakeBackend(t, gate), func(c *Config) { c.RequestTimeout = 200 * time.Millisecond })
	resp, body := h.post(chatBody(question, ""))
	if resp.StatusCode != http.StatusGatewayTimeout || !strings.Contains(string(body), `"timeout"`) {
		t.Errorf("plain: %d %s", resp.StatusCode, body)
	}
	resp, body = h.post(chatBody(question, `,"stream":true`))
	s := parseSSE(t, body)
	if resp.StatusCode != http.StatusOK || !s.done || len(s.chunks) == 0 || s.chunks[len(s.chunks)-1].Error == nil {
		t.Errorf("stream: %d %s", resp.StatusCode, body)
	}
	if v := h.metric("medassist_active_sequences"); v != 0 {
		t.Errorf("active sequences %v after the deadlines", v)
	}
}

func TestLogsOmitContent(t *testing.T) {
	b := fakeBackend(t, nil)
	secret := "my rash from the lake trip itches"
	for _, logContent := range []bool{false, true} {
		t.Run(fmt.Sprint("log-content=", logContent), func(t *testing.T) {
			h := newHarness(t, b, func(c *Config) { c.LogContent = logContent })
			req, _ := http.NewRequest(http.MethodPost, h.url+"/v1/chat/completions", strings.NewReader(chatBody("Why does "+secret+"?", `,"max_tokens":4`)))
			req.Header.Set("X-Request-ID", "trace-42.a_b")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			var c completion
			_ = json.NewDecoder(resp.Body).Decode(&c)
			resp.Body.Close()
			if resp.Header.Get("X-Request-ID") != "trace-42.a_b" || c.ID != "chatcmpl-trace-42.a_b" {
				t.Errorf("caller's request id: header %q, completion id %q", resp.Header.Get("X-Request-ID"), c.ID)
			}
			h.post(chatBody(emergency, ""))
			logs := h.logs.String()
			if !strings.Contains(logs, `"request_id":"trace-42.a_b"`) {
				t.Errorf("the caller's request id is not in the log:\n%s", logs)
			}
			ids := 0
			for _, line := range strings.Split(strings.TrimSpace(logs), "\n") {
				var rec map[string]any
				if err := json.Unmarshal([]byte(line), &rec); err != nil {
					t.Fatalf("log line is not JSON: %q", line)
				}
				if id, _ := rec["request_id"].(string); id != "" {
					ids++
				}
			}
			if ids < 3 {
				t.Errorf("%d log lines carry a request_id:\n%s", ids, logs)
			}
			for _, s := range []string{secret, "crushing chest pain"} {
				if strings.Contains(logs, s) != logContent {
					t.Errorf("log-content=%v but %q in the log is %v:\n%s", logContent, s, !logContent, logs)
				}
			}
		})
	}
}

// panicGen fails the way a bug in the engine would.
type panicGen struct{}

func (panicGen) Generate(context.Context, generation.Request, func(int) error) (generation.Result, error) {
	panic("engine bug")
}

func TestPanicIsContained(t *testing.T) {
	h := newHarness(t, fakeBackend(t, panicGen{}), nil)
	resp, body := h.post(chatBody(question, ""))
	var e struct{ Error struct{ Type, Code string } }
	if err := json.Unmarshal(body, &e); err != nil || resp.StatusCode != http.StatusInternalServerError || e.Error.Code != "internal" {
		t.Errorf("panicking engine: %d %s", resp.StatusCode, body)
	}
	if strings.Contains(string(body), "engine bug") {
		t.Errorf("the panic's text reached the client: %s", body)
	}
	if v := h.metric("medassist_active_sequences"); v != 0 {
		t.Errorf("the slot of the panicked request was not released: active %v", v)
	}
	if resp, _ := h.get("/healthz"); resp.StatusCode != http.StatusOK {
		t.Errorf("server down after a panic: %d", resp.StatusCode)
	}
	if !strings.Contains(h.logs.String(), "panic in handler") {
		t.Error("the panic was not logged")
	}
}
