package serve

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/medassist/medassist/guard"
	"github.com/medassist/medassist/model"
)

const paramsKey = "medassist.params"

// requestParams decodes and validates the chat request once; the guard's extractor and the handler share it.
func (s *Server) requestParams(c *gin.Context) (*params, error) {
	if v, ok := c.Get(paramsKey); ok {
		switch x := v.(type) {
		case *params:
			return x, nil
		case error:
			return nil, x
		}
	}
	p, err := decodeChatRequest(http.MaxBytesReader(c.Writer, c.Request.Body, s.cfg.MaxBodyBytes), &s.cfg)
	if err != nil {
		c.Set(paramsKey, err)
		return nil, err
	}
	c.Set(paramsKey, p)
	return p, nil
}

// guardConversation is the guard middleware's extractor: the request's messages.
func (s *Server) guardConversation(c *gin.Context) ([]model.Message, error) {
	p, err := s.requestParams(c)
	if err != nil {
		return nil, err
	}
	return p.Messages, nil
}

// handleChat serves POST /v1/chat/completions: bind, wait for a slot, generate, render.
func (s *Server) handleChat(c *gin.Context) {
	start := c.GetTime(requestStartKey) // time to first token counts from the request's arrival
	if start.IsZero() {
		start = time.Now()
	}
	p, err := s.requestParams(c)
	if err != nil {
		writeError(c, err)
		return
	}
	if v, ok := guard.FromContext(c); ok && v.Guidance != "" {
		p.Guidance, p.GuardReason = v.Guidance, v.Reason
	}
	svc := s.svc.Load()
	if svc == nil {
		writeError(c, ErrNotReady)
		return
	}
	ctx, cancel := s.generationContext(c.Request.Context())
	defer cancel()
	release, err := s.queue.acquire(ctx)
	if err != nil {
		s.generationFailed(c, ctx, err)
		return
	}
	defer release()
	if p.Stream {
		s.streamChat(c, ctx, start, svc, p)
		return
	}
	s.plainChat(c, ctx, start, svc, p)
}

func (s *Server) plainChat(c *gin.Context, ctx context.Context, start time.Time, svc *chatService, p *params) {
	var text []byte
	res, err := svc.run(ctx, start, p, func(delta string) error {
		text = append(text, delta...)
		return nil
	})
	if err != nil {
		s.generationFailed(c, ctx, err)
		return
	}
	s.observe(res)
	finish := res.Finish
	c.JSON(http.StatusOK, chatCompletion{
		ID: completionID(c), Object: "chat.completion", Created: time.Now().Unix(), Model: s.modelName,
		Choices: []choice{{Message: &respMessage{Role: "assistant", Content: string(text)}, FinishReason: &finish}},
		Usage:   res.usage(),
		Guard:   p.guardResult(),
	})
}

// guardResult is the guard object of an allowed answer that carries emergency guidance (nil
// otherwise).
func (p *params) guardResult() *guardResult {
	if p.Guidance == "" {
		return nil
	}
	return &guardResult{Verdict: guard.Allow.String(), Reason: p.GuardReason}
}

func (s *Server) streamChat(c *gin.Context, ctx context.Context, start time.Time, svc *chatService, p *params) {
	sse := newSSE(c, completionID(c), s.modelName)
	if err := sse.send(choice{Delta: &respMessage{Role: "assistant"}}, nil, p.guardResult()); err != nil {
		s.clientGone(c)
		return
	}
	res, err := svc.run(ctx, start, p, func(delta string) error {
		return sse.send(choice{Delta: &respMessage{Content: delta}}, nil, nil)
	})
	if err != nil {
		if c.Request.Context().Err() != nil {
			s.clientGone(c)
			return
		}
		ae := toAPIError(err)
		s.logFailure(c, ae, err)
		_ = sse.data(gin.H{"error": gin.H{"message": ae.Message, "type": ae.Type, "code": nilIfEmpty(ae.Code)}})
		sse.done()
		return
	}
	s.observe(res)
	finish := res.Finish
	_ = sse.send(choice{Delta: &respMessage{}, FinishReason: &finish}, nil, nil)
	if p.WantUsage {
		_ = sse.send(choice{}, res.usage(), nil)
	}
	sse.done()
}

// generationFailed answers an error that ended a request before its first byte was written.
func (s *Server) generationFailed(c *gin.Context, ctx context.Context, err error) {
	if c.Request.Context().Err() != nil {
		s.clientGone(c)
		return
	}
	if ctx.Err() != nil {
		err = context.Cause(ctx) // the request deadline or the server's shutdown
	}
	ae := toAPIError(err)
	s.logFailure(c, ae, err)
	writeError(c, ae)
}

func (s *Server) logFailure(c *gin.Context, ae *apiError, err error) {
	if ae.Status >= 500 {
		s.log.Error("generation failed", "request_id", requestID(c), "status", ae.Status, "err", err)
	}
}

func (s *Server) clientGone(c *gin.Context) {
	s.metrics.disconnections.Inc()
	s.log.Info("client disconnected; generation stopped", "request_id", requestID(c))
	c.Abort()
}

func (s *Server) observe(res chatResult) {
	s.metrics.finishReasons.WithLabelValues(res.Finish).Inc()
	if res.TTFT > 0 {
		s.metrics.ttft.Observe(res.TTFT.Seconds())
	}
	if res.CompletionTokens > 1 && res.Decode > 0 {
		s.metrics.tokensPerSec.Observe(float64(res.CompletionTokens-1) / res.Decode.Seconds())
	}
}

func (r chatResult) usage() *usage {
	return &usage{PromptTokens: r.PromptTokens, CompletionTokens: r.CompletionTokens, TotalTokens: r.PromptTokens + r.CompletionTokens}
}

// intervene answers a guard verdict in place of the model: 200, the guard's message as content,
// finish_reason "content_filter" and the guard object; the guard's own reply to a greeting or
// thanks (an allow verdict with a message) finishes with "stop".
func (s *Server) intervene(c *gin.Context, v guard.Verdict) {
	p, _ := s.requestParams(c)
	g := &guardResult{Verdict: v.Kind.String(), Reason: v.Reason}
	finish := "content_filter"
	if v.Kind == guard.Allow {
		finish = "stop"
	}
	attrs := []any{"request_id", requestID(c), "verdict", g.Verdict, "code", v.Code}
	if s.cfg.LogContent {
		attrs = append(attrs, "reason", v.Reason) // quotes the user's words
	}
	s.log.Info("guard intervened", attrs...)
	if p != nil && p.Stream {
		sse := newSSE(c, completionID(c), s.modelName)
		_ = sse.send(choice{Delta: &respMessage{Role: "assistant", Content: v.Message}}, nil, g)
		_ = sse.send(choice{Delta: &respMessage{}, FinishReason: &finish}, nil, g)
		sse.done()
		return
	}
	c.JSON(http.StatusOK, chatCompletion{
		ID: completionID(c), Object: "chat.completion", Created: time.Now().Unix(), Model: s.modelName,
		Choices: []choice{{Message: &respMessage{Role: "assistant", Content: v.Message}, FinishReason: &finish}},
		Usage:   &usage{},
		Guard:   g,
	})
}

// sse writes OpenAI-style server-sent events.
type sse struct {
	c       *gin.Context
	id      string
	model   string
	created int64
	started bool
}

func newSSE(c *gin.Context, id, model string) *sse {
	return &sse{c: c, id: id, model: model, created: time.Now().Unix()}
}

func (w *sse) send(ch choice, u *usage, g *guardResult) error {
	chunk := chatCompletion{ID: w.id, Object: "chat.completion.chunk", Created: w.created, Model: w.model, Usage: u, Guard: g}
	chunk.Choices = []choice{ch}
	if u != nil && ch.Delta == nil {
		chunk.Choices = []choice{}
	}
	return w.data(chunk)
}

func (w *sse) data(v any) error {
	if !w.started {
		h := w.c.Writer.Header()
		h.Set("Content-Type", "text/event-stream")
		h.Set("Cache-Control", "no-cache")
		h.Set("Connection", "keep-alive")
		h.Set("X-Accel-Buffering", "no")
		w.c.Status(http.StatusOK)
		w.started = true
	}
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if _, err := fmt.Fprintf(w.c.Writer, "data: %s\n\n", b); err != nil {
		return err
	}
	w.c.Writer.Flush()
	return w.c.Request.Context().Err()
}

func (w *sse) done() {
	fmt.Fprint(w.c.Writer, "data: [DONE]\n\n")
	w.c.Writer.Flush()
}

func (s *Server) handleModels(c *gin.Context) {
	c.JSON(http.StatusOK, gin.H{"object": "list", "data": []gin.H{{
		"id": s.modelName, "object": "model", "created": s.started.Unix(), "owned_by": "medassist",
	}}})
}

func (s *Server) handleHealth(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"status": "ok"}) }

func (s *Server) handleReady(c *gin.Context) {
	svc := s.svc.Load()
	if svc == nil {
		if err := s.loadErr.Load(); err != nil {
			c.JSON(http.StatusServiceUnavailable, gin.H{"status": "failed", "error": (*err).Error(), "reason": (*err).Error()})
			return
		}
		c.Header("Retry-After", "5")
		c.JSON(http.StatusServiceUnavailable, gin.H{"status": "loading", "reason": s.loadStatus()})
		return
	}
	c.JSON(http.StatusOK, gin.H{"status": "ready", "model": s.modelName, "device": svc.b.Device})
}

func (s *Server) handleNoRoute(c *gin.Context) {
	writeError(c, &apiError{Status: http.StatusNotFound, Type: "invalid_request_error", Code: "not_found",
		Message: fmt.Sprintf("no route %s %s", c.Request.Method, c.Request.URL.Path)})
}

func (s *Server) handleNoMethod(c *gin.Context) {
	writeError(c, &apiError{Status: http.StatusMethodNotAllowed, Type: "invalid_request_error", Code: "method_not_allowed",
		Message: fmt.Sprintf("method %s not allowed on %s", c.Request.Method, c.Request.URL.Path)})
}
