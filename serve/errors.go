package serve

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"
)

// apiError is an error with its HTTP status and OpenAI error type/code.
type apiError struct {
	Status     int
	Type       string
	Code       string
	Param      string
	Message    string
	RetryAfter int // seconds; sent as Retry-After when > 0
}

func (e *apiError) Error() string { return e.Message }

var (
	// ErrQueueFull is returned when every slot is busy and the wait queue is full.
	ErrQueueFull = errors.New("server busy: the request queue is full, retry later")
	// ErrNotReady is returned while the model is still loading.
	ErrNotReady = errors.New("model is still loading, retry later")
	// ErrShuttingDown ends generations still running when the shutdown timeout is over.
	ErrShuttingDown = errors.New("server is shutting down, retry on another instance or later")
	// errPanic stands for a recovered panic.
	errPanic = errors.New("internal error")
)

func badRequest(format string, args ...any) *apiError {
	return &apiError{Status: http.StatusBadRequest, Type: "invalid_request_error", Message: fmt.Sprintf(format, args...)}
}

func badParam(param, format string, args ...any) *apiError {
	e := badRequest(format, args...)
	e.Param, e.Code = param, "invalid_value"
	return e
}

func errTooLarge(limit int64) *apiError {
	return &apiError{Status: http.StatusRequestEntityTooLarge, Type: "invalid_request_error", Code: "request_too_large",
		Message: fmt.Sprintf("request body exceeds %d bytes", limit)}
}

// toAPIError is the one place that maps errors to status codes.
func toAPIError(err error) *apiError {
	var ae *apiError
	switch {
	case errors.As(err, &ae):
		return ae
	case errors.Is(err, ErrQueueFull):
		return &apiError{Status: http.StatusTooManyRequests, Type: "rate_limit_error", Code: "queue_full", Message: err.Error(), RetryAfter: 2}
	case errors.Is(err, ErrNotReady):
		return &apiError{Status: http.StatusServiceUnavailable, Type: "server_error", Code: "not_ready", Message: err.Error(), RetryAfter: 5}
	case errors.Is(err, ErrShuttingDown):
		return &apiError{Status: http.StatusServiceUnavailable, Type: "server_error", Code: "shutting_down", Message: err.Error(), RetryAfter: 5}
	case errors.Is(err, context.DeadlineExceeded):
		return &apiError{Status: http.StatusGatewayTimeout, Type: "server_error", Code: "timeout", Message: "generation exceeded the request deadline"}
	case errors.Is(err, context.Canceled):
		return &apiError{Status: 499, Type: "server_error", Code: "cancelled", Message: "request cancelled"}
	}
	return &apiError{Status: http.StatusInternalServerError, Type: "server_error", Code: "internal", Message: "internal error"}
}

// writeError renders err as OpenAI error JSON and aborts the chain.
func writeError(c *gin.Context, err error) {
	ae := toAPIError(err)
	if ae.RetryAfter > 0 {
		c.Header("Retry-After", strconv.Itoa(ae.RetryAfter))
	}
	body := gin.H{"message": ae.Message, "type": ae.Type, "code": nilIfEmpty(ae.Code), "param": nilIfEmpty(ae.Param)}
	c.AbortWithStatusJSON(ae.Status, gin.H{"error": body})
	if ae.Status >= 500 {
		_ = c.Error(err)
	}
}

func nilIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}
