package guard

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
)

// MiddlewareOptions connect the guard to a route.
type MiddlewareOptions struct {
	// Extract returns the text to check (typically the last user message). It may read the request
	// body: the middleware puts the body back, whole, for the handler. When it fails, the request goes
	// on unchecked so that the handler answers the bad request itself (400, 413). Nil: ExtractChat.
	Extract func(*gin.Context) (string, error)
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

// Middleware checks each request before its handler: it extracts the text, checks it, counts the
// verdict, stores it in the context (FromContext) and, unless the verdict is Allow, lets Intervene
// answer and stops the chain.
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
		text, err := extractKeepingBody(c, extract)
		if err != nil {
			c.Next()
			return
		}
		start := time.Now()
		v := g.Check(text)
		m := opts.Metrics
		if m == nil {
			m = g.metrics.Load()
		}
		m.Observe(v, time.Since(start))
		c.Set(verdictKey, v)
		if v.Kind != Allow {
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
func extractKeepingBody(c *gin.Context, extract func(*gin.Context) (string, error)) (string, error) {
	body := c.Request.Body
	if body == nil || body == http.NoBody {
		return extract(c)
	}
	rec := &recordingBody{r: body}
	c.Request.Body = rec
	text, err := extract(c)
	c.Request.Body = &replayBody{Reader: io.MultiReader(bytes.NewReader(rec.buf.Bytes()), body), orig: body}
	return text, err
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

// ExtractChat returns the last user message of an OpenAI Chat Completions request
// ({"messages": [{"role": "user", "content": "..." or [{"type": "text", "text": "..."}]}]}).
func ExtractChat(c *gin.Context) (string, error) {
	if c.Request.Body == nil {
		return "", errors.New("empty request body")
	}
	var req struct {
		Messages []struct {
			Role    string          `json:"role"`
			Content json.RawMessage `json:"content"`
		} `json:"messages"`
	}
	dec := json.NewDecoder(io.LimitReader(c.Request.Body, maxChatBody))
	if err := dec.Decode(&req); err != nil {
		return "", fmt.Errorf("request body: %w", err)
	}
	for i := len(req.Messages) - 1; i >= 0; i-- {
		if req.Messages[i].Role == "user" {
			return contentText(req.Messages[i].Content)
		}
	}
	return "", errors.New("request has no user message")
}

// contentText reads a message content: a string or a list of parts whose text parts are joined.
func contentText(raw json.RawMessage) (string, error) {
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return s, nil
	}
	var parts []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	if err := json.Unmarshal(raw, &parts); err != nil {
		return "", fmt.Errorf("message content must be a string or a list of parts: %w", err)
	}
	var b bytes.Buffer
	for _, p := range parts {
		if p.Type == "text" {
			if b.Len() > 0 {
				b.WriteByte('\n')
			}
			b.WriteString(p.Text)
		}
	}
	return b.String(), nil
}

func defaultIntervene(c *gin.Context, v Verdict) {
	c.JSON(http.StatusOK, gin.H{
		"guard":   gin.H{"verdict": v.Kind.String(), "reason": v.Reason},
		"message": v.Message,
	})
}
