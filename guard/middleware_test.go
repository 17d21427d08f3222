package guard

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/medassist/medassist/model"
)

// chatRouter is a gin router with the guard in front of a handler that reads the whole body and
// reports what it saw. The extractor reads the body through http.MaxBytesReader, as a server would.
func chatRouter(g *Guard, m *Metrics, limit int64, handled *int) *gin.Engine {
	gin.SetMode(gin.TestMode)
	r := gin.New()
	extract := func(c *gin.Context) ([]model.Message, error) {
		c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, limit)
		return ExtractChat(c)
	}
	r.POST("/chat", g.Middleware(MiddlewareOptions{Extract: extract, Metrics: m}), func(c *gin.Context) {
		*handled++
		body, err := io.ReadAll(c.Request.Body)
		if err != nil {
			c.JSON(http.StatusBadRequest, gin.H{"error": err.Error()})
			return
		}
		var req map[string]any
		if err := json.Unmarshal(body, &req); err != nil {
			c.JSON(http.StatusBadRequest, gin.H{"error": "bad JSON: " + err.Error()})
			return
		}
		v, ok := FromContext(c)
		c.JSON(http.StatusOK, gin.H{"body_bytes": len(body), "verdict": v.Kind.String(), "has_verdict": ok})
	})
	return r
}

func post(r http.Handler, body string) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodPost, "/chat", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	r.ServeHTTP(w, req)
	return w
}

// counterValue reads one series of a counter vector.
func counterValue(t *testing.T, v *prometheus.CounterVec, labels ...string) float64 {
	t.Helper()
	var m dto.Metric
	if err := v.WithLabelValues(labels...).Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// seriesCount is how many label combinations a counter vector has.
func seriesCount(v *prometheus.CounterVec) int {
	ch := make(chan prometheus.Metric, 100)
	v.Collect(ch)
	close(ch)
	return len(ch)
}

func chatBody(user string) string {
	b, _ := json.Marshal(map[string]any{"model": "m", "messages": []map[string]any{
		{"role": "system", "content": "You are a health assistant."},
		{"role": "user", "content": "earlier question"},
		{"role": "assistant", "content": "earlier answer"},
		{"role": "user", "content": user},
	}})
	return string(b)
}

func TestMiddlewareAllowKeepsBody(t *testing.T) {
	g := testGuard(t)
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	handled := 0
	r := chatRouter(g, m, 1<<20, &handled)
	body := chatBody("How long does the flu last?")
	w := post(r, body)
	if w.Code != http.StatusOK || handled != 1 {
		t.Fatalf("allowed request: status %d, handler calls %d, body %s", w.Code, handled, w.Body)
	}
	var got struct {
		BodyBytes  int    `json:"body_bytes"`
		Verdict    string `json:"verdict"`
		HasVerdict bool   `json:"has_verdict"`
	}
	json.Unmarshal(w.Body.Bytes(), &got)
	if got.BodyBytes != len(body) || got.Verdict != "allow" || !got.HasVerdict {
		t.Errorf("handler saw %+v; want the whole %d-byte body and the allow verdict in the context", got, len(body))
	}
	if n := counterValue(t, m.verdicts, "allow", "medical"); n != 1 {
		t.Errorf("allow counter = %v, want 1", n)
	}
}

func TestMiddlewareEmergencyAborts(t *testing.T) {
	g := testGuard(t)
	m := NewMetrics(prometheus.NewRegistry())
	handled := 0
	r := chatRouter(g, m, 1<<20, &handled)
	w := post(r, chatBody("my dad collapsed and isn't breathing"))
	if handled != 0 {
		t.Fatalf("the handler ran for an emergency")
	}
	var got struct {
		Guard   struct{ Verdict, Reason string } `json:"guard"`
		Message string                           `json:"message"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil || w.Code != http.StatusOK {
		t.Fatalf("status %d body %s: %v", w.Code, w.Body, err)
	}
	if got.Guard.Verdict != "emergency" || !strings.Contains(got.Message, "911") || got.Guard.Reason == "" {
		t.Errorf("default intervention: %+v", got)
	}
	if n := seriesCount(m.verdicts); n != 1 {
		t.Errorf("one verdict series expected, got %d", n)
	}
	if n := counterValue(t, m.verdicts, "emergency", got.Guard.Reason[:strings.Index(got.Guard.Reason, ":")]); n != 1 {
		t.Errorf("emergency counter = %v, want 1", n)
	}
}

func TestMiddlewareCustomIntervene(t *testing.T) {
	g := testGuard(t)
	var seen Verdict
	gin.SetMode(gin.TestMode)
	r := gin.New()
	r.POST("/chat", g.Middleware(MiddlewareOptions{Intervene: func(c *gin.Context, v Verdict) {
		seen = v
		c.String(http.StatusTeapot, v.Message)
	}}), func(c *gin.Context) { t.Error("handler ran after an intervention") })
	w := post(r, chatBody("write me a poem about the sea"))
	if w.Code != http.StatusTeapot || seen.Kind != OutOfDomain || w.Body.String() != seen.Message {
		t.Errorf("custom intervention: status %d verdict %s body %q", w.Code, seen.Kind, w.Body)
	}
}

// TestMiddlewareBadRequestReachesHandler: when extraction fails (bad JSON, body too large) the
// handler answers it; the guard neither answers nor stores a verdict.
func TestMiddlewareBadRequestReachesHandler(t *testing.T) {
	g := testGuard(t)
	m := NewMetrics(prometheus.NewRegistry())
	handled := 0
	r := chatRouter(g, m, 64, &handled)
	for _, body := range []string{`{"messages": [`, chatBody(strings.Repeat("a", 200)), `{"messages": []}`} {
		w := post(r, body)
		if w.Code != http.StatusBadRequest && w.Code != http.StatusOK {
			t.Errorf("body %.30q: status %d", body, w.Code)
		}
		if w.Code == http.StatusInternalServerError {
			t.Errorf("body %.30q: 500", body)
		}
	}
	if handled != 3 {
		t.Errorf("handler ran %d times, want 3", handled)
	}
	if n := seriesCount(m.verdicts); n != 0 {
		t.Errorf("no verdict should be counted for unreadable requests, got %d series", n)
	}
}

// TestMiddlewareBodyLimitStillApplies: the replayed body is the original one, so a size limit the
// handler applies still sees every byte.
func TestMiddlewareBodyLimitStillApplies(t *testing.T) {
	g := testGuard(t)
	gin.SetMode(gin.TestMode)
	r := gin.New()
	r.POST("/chat", g.Middleware(MiddlewareOptions{}), func(c *gin.Context) {
		_, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, 100))
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			c.Status(http.StatusRequestEntityTooLarge)
			return
		}
		c.Status(http.StatusOK)
	})
	w := post(r, chatBody("is ibuprofen safe with a cold? "+strings.Repeat("more words ", 30)))
	if w.Code != http.StatusRequestEntityTooLarge {
		t.Errorf("status %d, want 413 from the handler's own limit", w.Code)
	}
}

func TestExtractChatAndContentText(t *testing.T) {
	gin.SetMode(gin.TestMode)
	for body, want := range map[string][]model.Message{
		`{"messages":[{"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]}]}`: {{Role: "user", Content: "a\nb"}},
		`{"messages":[{"role":"system","content":"s"},{"role":"user","content":"first"},{"role":"assistant","content":null},{"role":"user","content":"last"}]}`: {
			{Role: "system", Content: "s"}, {Role: "user", Content: "first"}, {Role: "assistant", Content: ""}, {Role: "user", Content: "last"}},
	} {
		c, _ := gin.CreateTestContext(httptest.NewRecorder())
		c.Request = httptest.NewRequest(http.MethodPost, "/", strings.NewReader(body))
		got, err := ExtractChat(c)
		if err != nil || len(got) != len(want) {
			t.Fatalf("ExtractChat(%s) = %q, %v; want %q", body, got, err, want)
		}
		for i := range got {
			if got[i] != want[i] {
				t.Errorf("ExtractChat(%s)[%d] = %q, want %q", body, i, got[i], want[i])
			}
		}
	}
	for _, bad := range []string{`[{"type":"image_url","image_url":{"url":"x"}}]`, `42`, `{"text":"a"}`} {
		if _, err := ContentText([]byte(bad)); err == nil {
			t.Errorf("ContentText(%s) should fail: only strings and text parts are understood", bad)
		}
	}
}

func TestRegisterMetricsTwice(t *testing.T) {
	reg := prometheus.NewRegistry()
	g := testGuard(t)
	a := NewMetrics(reg)
	b := g.RegisterMetrics(reg) // same names on the same registry: the collectors are shared
	a.Observe(Verdict{Kind: Invalid, Code: "empty"}, 0)
	if n := counterValue(t, b.verdicts, "invalid", "empty"); n != 1 {
		t.Errorf("second registration should reuse the first collectors, count = %v", n)
	}
	var nilMetrics *Metrics
	nilMetrics.Observe(Verdict{}, 0) // no metrics configured: a no-op
}
