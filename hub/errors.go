package hub

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// Errors a caller can test with errors.Is.
var (
	// ErrUnauthorized: 401 or 403, the repository is gated or private and the token is missing,
	// invalid, or has no access.
	ErrUnauthorized = errors.New("unauthorized")
	// ErrNotFound: 404, no such repository, revision or file.
	ErrNotFound = errors.New("not found")
	// ErrVerification: the downloaded content does not match the size or sha256 the Hub announced.
	ErrVerification = errors.New("verification failed")
	// ErrNotCached: offline, and the cache lacks what was asked for.
	ErrNotCached = errors.New("offline, and not in the cache")
)

// StatusError is an HTTP error answer from the Hub or its CDN.
type StatusError struct {
	Code       int
	ErrorCode  string // X-Error-Code: RepoNotFound, RevisionNotFound, EntryNotFound, GatedRepo
	Message    string // X-Error-Message, when the server sent one
	URL        string
	what       string // human description of the request
	hint       string // what to do about it
	retryAfter time.Duration
}

func (e *StatusError) Error() string {
	msg := fmt.Sprintf("%s: HTTP %d %s", e.what, e.Code, http.StatusText(e.Code))
	if e.Message != "" {
		msg += " (" + e.Message + ")"
	}
	if e.hint != "" {
		msg += ": " + e.hint
	}
	return msg
}

// Is maps status codes onto ErrUnauthorized and ErrNotFound.
func (e *StatusError) Is(target error) bool {
	switch target {
	case ErrUnauthorized:
		return e.Code == http.StatusUnauthorized || e.Code == http.StatusForbidden
	case ErrNotFound:
		return e.Code == http.StatusNotFound
	}
	return false
}

func (e *StatusError) transient() bool {
	return e.Code >= 500 || e.Code == http.StatusTooManyRequests || e.Code == http.StatusRequestTimeout
}

// statusError explains an HTTP error answer about r (file "" for repository-level requests).
func statusError(resp *http.Response, what string, r repo, revision, file string, tokenSet bool) *StatusError {
	e := &StatusError{
		Code:      resp.StatusCode,
		ErrorCode: resp.Header.Get("X-Error-Code"),
		Message:   resp.Header.Get("X-Error-Message"),
		URL:       resp.Request.URL.String(),
		what:      what,
	}
	if secs, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && secs > 0 {
		e.retryAfter = time.Duration(secs) * time.Second
	}
	switch {
	case e.Code == http.StatusUnauthorized && tokenSet:
		e.hint = fmt.Sprintf("%s is gated or private and the token was refused: check HF_TOKEN (or HF_HOME/token) and that it has read access", r)
	case e.Code == http.StatusUnauthorized:
		e.hint = fmt.Sprintf("%s is gated or private (or does not exist): set HF_TOKEN to a token with read access (https://huggingface.co/settings/tokens)", r)
	case e.Code == http.StatusForbidden:
		e.hint = fmt.Sprintf("%s is gated or private and this token has no access: request access on the repository page, or set HF_TOKEN to a token that has it", r)
	case e.Code == http.StatusNotFound && e.ErrorCode == "RevisionNotFound":
		e.hint = fmt.Sprintf("revision %q not found in %s: check --revision (a branch, tag or commit hash)", revision, r)
	case e.Code == http.StatusNotFound && (e.ErrorCode == "EntryNotFound" || (file != "" && e.ErrorCode == "")):
		e.hint = fmt.Sprintf("file %s not found in %s at %s", file, r, revision)
	case e.Code == http.StatusNotFound:
		e.hint = fmt.Sprintf("%s not found: check the repository id and --type (model or dataset)", r)
	case e.transient():
		e.hint = "the server failed; retry later"
	}
	return e
}

// transientError marks network failures worth retrying (connection reset, timeout, stall).
type transientError struct{ err error }

func (e *transientError) Error() string { return e.err.Error() }
func (e *transientError) Unwrap() error { return e.err }

// isTransient tells whether err may go away on retry. ctx ending is never transient.
func isTransient(ctx context.Context, err error) bool {
	if err == nil || ctx.Err() != nil {
		return false
	}
	var se *StatusError
	if errors.As(err, &se) {
		return se.transient()
	}
	var te *transientError
	return errors.As(err, &te)
}
