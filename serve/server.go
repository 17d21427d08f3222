package serve

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/medassist/medassist/assets"
	"github.com/medassist/medassist/guard"
)

// Server is the HTTP server. Build it with New, install a backend with SetBackend (or let Run load one),
// and serve Router() or call Run.
type Server struct {
	cfg       Config
	log       *slog.Logger
	reg       *prometheus.Registry
	metrics   *metrics
	guard     *guard.Guard
	queue     *queue
	modelName string
	started   time.Time

	svc       atomic.Pointer[chatService]
	loadErr   atomic.Pointer[error]
	loadStage atomic.Pointer[string] // what the background load is doing, for /readyz
	backend   atomic.Pointer[Backend]

	// drain is cancelled (cause ErrShuttingDown) when the shutdown timeout is over: generations still
	// running end with an error event instead of a cut connection.
	drain     context.Context
	stopDrain context.CancelCauseFunc
}

// New builds a server from a validated config. The guard is built here, once; its sentence encoder
// (cfg.Guard) opens in Serve's background load, before the model, so the server listens at once and
// an encoder that cannot be opened is reported by /readyz. Serve releases it when it returns.
func New(cfg Config, log *slog.Logger) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	g, err := guard.NewDeferred(cfg.Guard)
	if err != nil {
		return nil, fmt.Errorf("guard: %w", err)
	}
	return withGuard(cfg, log, g), nil
}

// NewWithEmbedder is New with a sentence encoder the caller owns (shared by several servers).
func NewWithEmbedder(cfg Config, log *slog.Logger, emb guard.Embedder) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	g, err := guard.NewWithEmbedder(cfg.Guard, emb)
	if err != nil {
		return nil, fmt.Errorf("guard: %w", err)
	}
	return withGuard(cfg, log, g), nil
}

func withGuard(cfg Config, log *slog.Logger, g *guard.Guard) *Server {
	reg := prometheus.NewRegistry()
	s := &Server{cfg: cfg, log: log, reg: reg, metrics: newMetrics(reg), guard: g, started: time.Now()}
	s.drain, s.stopDrain = context.WithCancelCause(context.Background())
	s.queue = newQueue(cfg.MaxConcurrent, cfg.QueueSize, func(waiting, active int64) {
		s.metrics.queueDepth.Set(float64(waiting))
		s.metrics.activeSeqs.Set(float64(active))
	})
	s.guard.RegisterMetrics(reg)
	s.modelName = cfg.ModelName
	if s.modelName == "" {
		s.modelName = "medassist"
		if cfg.Model != "" {
			s.modelName = filepath.Base(filepath.Clean(cfg.Model))
		} else if cfg.ModelID != "" {
			s.modelName = modelIDName(cfg.ModelID)
		}
	}
	return s
}

// SetBackend installs the generation backend; the server is ready from then on.
func (s *Server) SetBackend(b *Backend) {
	system := s.cfg.SystemPrompt
	if system == "" {
		system = assets.SystemPrompt()
	}
	s.backend.Store(b)
	s.svc.Store(&chatService{b: b, cfg: &s.cfg, guard: s.guard, system: system, onToken: s.metrics.tokens.Inc})
}

// SetLoadStatus records what the background load is doing (pulling, exporting, loading); /readyz and
// the chat page show it until the model is ready or has failed.
func (s *Server) SetLoadStatus(stage string) { s.loadStage.Store(&stage) }

// loadStatus is the stage last set, or "loading the model".
func (s *Server) loadStatus() string {
	if p := s.loadStage.Load(); p != nil {
		return *p
	}
	return "loading the model"
}

// generationContext bounds one generation by the client's connection, the request deadline and the
// server's shutdown; context.Cause tells which ended it.
func (s *Server) generationContext(parent context.Context) (context.Context, context.CancelFunc) {
	ctx, cancelTimeout := context.WithTimeout(parent, s.cfg.RequestTimeout)
	ctx, cancel := context.WithCancelCause(ctx)
	stop := context.AfterFunc(s.drain, func() { cancel(context.Cause(s.drain)) })
	return ctx, func() {
		stop()
		cancel(context.Canceled)
		cancelTimeout()
	}
}

// Router is the HTTP handler; tests drive it with httptest.
func (s *Server) Router() *gin.Engine {
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.HandleMethodNotAllowed = true
	r.Use(s.recoverer(), s.requestLog())
	r.NoRoute(s.handleNoRoute)
	r.NoMethod(s.handleNoMethod)

	r.GET("/", s.handleIndex)
	r.GET("/healthz", s.handleHealth)
	r.GET("/readyz", s.handleReady)
	r.GET("/metrics", gin.WrapH(promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{Registry: s.reg})))
	v1 := r.Group("/v1")
	v1.GET("/models", s.handleModels)
	v1.POST("/chat/completions", s.guard.Middleware(guard.MiddlewareOptions{
		Extract:   s.guardConversation,
		Intervene: s.intervene,
	}), s.handleChat)
	return r
}

// pagePolicy lets the chat page use only itself: inline script and style, requests to this server.
const pagePolicy = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:; connect-src 'self'; base-uri 'none'; form-action 'none'"

func (s *Server) handleIndex(c *gin.Context) {
	c.Header("Cache-Control", "no-cache")
	c.Header("Content-Security-Policy", pagePolicy)
	c.Header("X-Content-Type-Options", "nosniff")
	c.Data(http.StatusOK, "text/html; charset=utf-8", assets.ChatPage())
}

// Run serves on cfg.Addr until ctx is cancelled (SIGTERM/SIGINT in main), loading the backend with load
// in the background so /healthz answers at once and /readyz turns 200 when the model is in memory.
// On shutdown it stops accepting, lets in-flight requests and streams finish for up to ShutdownTimeout,
// then ends the generations still running (a stream gets an error event and [DONE]), releases the
// backend and returns nil when everything ended cleanly.
func (s *Server) Run(ctx context.Context, load func(context.Context) (*Backend, error)) error {
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", s.cfg.Addr, err)
	}
	return s.Serve(ctx, ln, load)
}

// Serve is Run on an existing listener.
func (s *Server) Serve(ctx context.Context, ln net.Listener, load func(context.Context) (*Backend, error)) error {
	srv := &http.Server{Handler: s.Router(), ReadHeaderTimeout: 10 * time.Second}
	loadCtx, cancelLoad := context.WithCancel(ctx)
	defer cancelLoad()
	loaded := make(chan struct{})
	go func() {
		defer close(loaded)
		if load != nil {
			s.load(loadCtx, load)
		}
	}()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	s.log.Info("listening", "addr", ln.Addr().String())

	var err error
	select {
	case err = <-errc:
	case <-ctx.Done():
		err = s.shutdown(srv)
	}
	cancelLoad()
	<-loaded // a backend loaded during shutdown is closed too
	if b := s.backend.Load(); b != nil && b.Close != nil {
		err = errors.Join(err, b.Close())
	}
	err = errors.Join(err, s.guard.Close())
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	s.log.Info("stopped")
	return nil
}

// load opens the guard's encoder, then installs the backend that load returns, or records why either
// failed (/readyz reports it; without the encoder no chat is answered).
func (s *Server) load(ctx context.Context, load func(context.Context) (*Backend, error)) {
	start := time.Now()
	s.SetLoadStatus("loading the guard's sentence encoder")
	b, err := (*Backend)(nil), s.guard.Open() // its errors name the guard's encoder
	if err == nil {
		s.SetLoadStatus("loading the model")
		b, err = load(ctx)
	}
	if err != nil {
		s.loadErr.Store(&err)
		s.log.Error("model failed to load", "err", err)
		return
	}
	s.SetBackend(b)
	s.log.Info("model ready", "model", s.modelName, "device", b.Device, "load_seconds", time.Since(start).Seconds())
}

// drainGrace is how long streams get to write their final error event once the shutdown timeout is over.
const drainGrace = 2 * time.Second

// shutdown stops accepting and waits for in-flight requests; after ShutdownTimeout it ends the
// generations still running (each stream gets an error event and [DONE]) and closes what is left.
func (s *Server) shutdown(srv *http.Server) error {
	s.log.Info("shutting down: finishing in-flight requests", "timeout", s.cfg.ShutdownTimeout.String())
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	err := srv.Shutdown(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	s.log.Warn("shutdown timeout: ending the generations still running")
	s.stopDrain(ErrShuttingDown)
	graceCtx, cancelGrace := context.WithTimeout(context.Background(), drainGrace)
	defer cancelGrace()
	if err := srv.Shutdown(graceCtx); err != nil {
		return errors.Join(err, srv.Close())
	}
	return nil
}

const (
	requestIDKey    = "medassist.request_id"
	requestStartKey = "medassist.request_start"
)

func requestID(c *gin.Context) string { return c.GetString(requestIDKey) }

func newID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// validRequestID accepts a caller's X-Request-ID of up to 128 letters, digits, '-', '_' and '.'.
func validRequestID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return false
		}
	}
	return true
}

// completionID is the id of a chat completion: OpenAI's prefix and the request id.
func completionID(c *gin.Context) string { return "chatcmpl-" + requestID(c) }

// requestLog gives each request an id, counts it in metrics and logs one line (never message contents).
func (s *Server) requestLog() gin.HandlerFunc {
	return func(c *gin.Context) {
		start := time.Now()
		id := c.GetHeader("X-Request-ID")
		if !validRequestID(id) {
			id = newID()
		}
		c.Set(requestIDKey, id)
		c.Set(requestStartKey, start)
		c.Header("X-Request-ID", id)
		c.Next()
		route := c.FullPath()
		if route == "" {
			route = "unmatched"
		}
		status := c.Writer.Status()
		s.metrics.requests.WithLabelValues(route, strconv.Itoa(status)).Inc()
		s.metrics.duration.WithLabelValues(route).Observe(time.Since(start).Seconds())
		attrs := []any{"request_id", id, "method", c.Request.Method, "route", route, "status", status,
			"duration_ms", time.Since(start).Milliseconds()}
		if s.cfg.LogContent {
			if p, ok := c.Get(paramsKey); ok {
				if pp, ok := p.(*params); ok {
					attrs = append(attrs, "last_user_message", pp.LastUser)
				}
			}
		}
		s.log.Info("request", attrs...)
	}
}

// recoverer turns a panic into a logged 500 with OpenAI error JSON instead of a dropped connection.
func (s *Server) recoverer() gin.HandlerFunc {
	return func(c *gin.Context) {
		defer func() {
			if r := recover(); r != nil {
				if r == http.ErrAbortHandler {
					panic(r)
				}
				s.log.Error("panic in handler", "request_id", requestID(c), "panic", fmt.Sprint(r))
				if !c.Writer.Written() {
					writeError(c, errPanic)
				}
				c.Abort()
			}
		}()
		c.Next()
	}
}
