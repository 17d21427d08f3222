package guard

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/medassist/medassist/model"
)

// MiddlewareOptions connect the guard to a route.
type MiddlewareOptions struct {
	// Extract returns the conversation to check. It may read the request body: the middleware puts
	// the body back, whole, for the handler. When it fails, the request goes on unchecked so that the
	// handler answers the bad request itself (400, 413). Nil: ExtractChat.
	Extract func(*gin.Context) ([]model.Message, error)
	// Intervene answers a non-allow verdict in place of the handler. Nil: a 200 JSON body
	// {"guard": {"verdict", "reason"}, "message"}.
	Intervene func(c *gin.Context, v Verdict)
	// Metrics records verdicts. Nil: the metrics made by RegisterMetrics, if any.
	Metrics *Metrics
}

const verdictKey = "medassist.guard.verdict"

// FromContext returns the verdict the middleware stored for this request.
func FromContext(c *gin.Context) (Verdict, bool) {
	v, ok := c.Get(verdictKey)
	if !ok {
		return Verdict{}, false
	}
	vv, ok := v.(Verdict)
	return vv, ok
}

// Middleware checks each request before its handler: it extracts the conversation, checks it, counts the
// verdict, stores it in the context (FromContext) and, unless the verdict is Allow without a
// message of its own, lets Intervene answer and stops the chain.
func (g *Guard) Middleware(opts MiddlewareOptions) gin.HandlerFunc {
	extract := opts.Extract
	if extract == nil {
		extract = ExtractChat
	}
	intervene := opts.Intervene
	if intervene == nil {
		intervene = defaultIntervene
	}
	return func(c *gin.Context) {
		conv, err := extractKeepingBody(c, extract)
		if err != nil {
			c.Next()
			return
		}
		start := time.Now()
		v := g.Check(conv)
		m := opts.Metrics
		if m == nil {
			m = g.metrics.Load()
		}
		m.Observe(v, time.Since(start))
		c.Set(verdictKey, v)
		if v.Kind != Allow || v.Message != "" {
			intervene(c, v)
			c.Abort()
			return
		}
		c.Next()
	}
}

// extractKeepingBody runs extract while recording what it reads of the body, then gives the handler
// a body that replays those bytes followed by the unread rest. Reads stay lazy: a size limit that
// extract applies (http.MaxBytesReader) still holds, and the body is never read twice into memory.
func extractKeepingBody(c *gin.Context, extract func(*gin.Context) ([]model.Message, error)) ([]model.Message, error) {
	body := c.Request.Body
	if body == nil || body == http.NoBody {
		return extract(c)
	}
	rec := &recordingBody{r: body}
	c.Request.Body = rec
	conv, err := extract(c)
	c.Request.Body = &replayBody{Reader: io.MultiReader(bytes.NewReader(rec.buf.Bytes()), body), orig: body}
	return conv, err
}

type recordingBody struct {
	r   io.Reader
	buf bytes.Buffer
}

func (b *recordingBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	b.buf.Write(p[:n])
	return n, err
}

// Close does nothing: the handler still needs the body.
func (b *recordingBody) Close() error { return nil }

type replayBody struct {
	io.Reader
	orig io.Closer
}

func (b *replayBody) Close() error { return b.orig.Close() }

// maxChatBody bounds how much of a request ExtractChat reads.
const maxChatBody = 8 << 20

// ExtractChat returns the messages of an OpenAI Chat Completions request
// ({"messages": [{"role": ..., "content": "..." or [{"type": "text", "text": "..."}]}]}).
func ExtractChat(c *gin.Context) ([]model.Message, error) {
	if c.Request.Body == nil {
		return nil, errors.New("empty request body")
	}
	var req struct {
		Messages []struct {
			Role    string          `json:"role"`
			Content json.RawMessage `json:"content"`
		} `json:"messages"`
	}
	dec := json.NewDecoder(io.LimitReader(c.Request.Body, maxChatBody))
	if err := dec.Decode(&req); err != nil {
		return nil, fmt.Errorf("request body: %w", err)
	}
	conv := make([]model.Message, 0, len(req.Messages))
	for i, m := range req.Messages {
		text, err := ContentText(m.Content)
		if err != nil {
			return nil, fmt.Errorf("messages[%d].content: %w", i, err)
		}
		conv = append(conv, model.Message{Role: m.Role, Content: text})
	}
	for _, m := range conv {
		if m.Role == RoleUser {
			return conv, nil
		}
	}
	return nil, errors.New("request has no user message")
}

// ContentText reads an OpenAI message content: null, a string, or a list of parts whose text parts
// are joined with newlines. Any other part type is an error (only text is understood).
func ContentText(raw []byte) (string, error) {
	if len(bytes.TrimSpace(raw)) == 0 || bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return s, nil
	}
	var parts []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	if err := json.Unmarshal(raw, &parts); err != nil {
		return "", errors.New("content must be a string or a list of text parts")
	}
	var b strings.Builder
	for i, p := range parts {
		if p.Type != "text" {
			return "", fmt.Errorf("content part type %q is not supported (only text)", p.Type)
		}
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(p.Text)
	}
	return b.String(), nil
}

func defaultIntervene(c *gin.Context, v Verdict) {
	c.JSON(http.StatusOK, gin.H{
		"guard":   gin.H{"verdict": v.Kind.String(), "reason": v.Reason},
		"message": v.Message,
	})
}
