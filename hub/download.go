package hub

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

var errStalled = errors.New("download stalled")

// download fills blob from the resolve URL through blob.incomplete: it resumes what an earlier
// run left there, retries transient failures with Range requests, checks size and sha256, and
// only then renames the file into place. A failed check deletes the partial file.
func (c *Client) download(ctx context.Context, r repo, commit, file, blob string, meta fileMeta) error {
	start := time.Now()
	inc := blob + ".incomplete"
	if err := os.MkdirAll(filepath.Dir(blob), 0o755); err != nil {
		return fmt.Errorf("cache: %w", err)
	}
	w, err := openPartial(inc, meta)
	if err != nil {
		return fmt.Errorf("cache: %w", err)
	}
	defer w.f.Close()
	resumedAt := w.n
	if resumedAt > 0 {
		c.log.Info("resuming download", "file", file, "from", resumedAt)
	}
	bar := newProgress(c.cfg.Progress, c.cfg.ProgressMinBytes, file, meta.size, w.n)
	u := c.resolveURL(r, commit, file)
	err = c.retry(ctx, "download "+file, func() (bool, error) {
		return c.getOnce(ctx, u, w, bar, meta, r, commit, file)
	})
	bar.finish(err == nil)
	if err != nil {
		return fmt.Errorf("download %s of %s: %w (partial data kept in %s; pull again to resume)", file, r, err, inc)
	}
	if err := w.verify(meta); err != nil {
		w.f.Close()
		os.Remove(inc)
		return fmt.Errorf("%w: %s of %s: %v; the download was deleted: pull again, and if it keeps failing, a proxy or mirror (HF_ENDPOINT) is altering the file", ErrVerification, file, r, err)
	}
	if err := errors.Join(w.f.Sync(), w.f.Close()); err != nil {
		return fmt.Errorf("cache: %w", err)
	}
	if err := os.Rename(inc, blob); err != nil {
		return fmt.Errorf("cache: %w", err)
	}
	c.log.Info("downloaded", "repo", r.ID, "file", file, "bytes", w.n, "resumed_from", resumedAt,
		"seconds", time.Since(start).Round(time.Millisecond).Seconds())
	return nil
}

// partial is blob.incomplete being written, with a running sha256 of its content.
type partial struct {
	f *os.File
	h hash.Hash // nil when there is no sha256 to check
	n int64     // bytes in the file
}

func openPartial(path string, meta fileMeta) (*partial, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o666)
	if err != nil {
		return nil, err
	}
	w := &partial{f: f}
	if meta.sha256 != "" {
		w.h = sha256.New()
	}
	st, err := f.Stat()
	if err == nil && meta.size >= 0 && st.Size() > meta.size {
		err = w.reset() // longer than the file can be: start over
	} else if err == nil {
		w.n = st.Size()
		if w.h != nil && w.n > 0 {
			_, err = io.Copy(w.h, io.NewSectionReader(f, 0, w.n))
		}
	}
	if err == nil {
		_, err = f.Seek(w.n, io.SeekStart)
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return w, nil
}

func (w *partial) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	if w.h != nil {
		w.h.Write(p[:n])
	}
	w.n += int64(n)
	return n, err
}

func (w *partial) reset() error {
	if w.h != nil {
		w.h.Reset()
	}
	w.n = 0
	if err := w.f.Truncate(0); err != nil {
		return err
	}
	_, err := w.f.Seek(0, io.SeekStart)
	return err
}

func (w *partial) verify(meta fileMeta) error {
	if meta.size >= 0 && w.n != meta.size {
		return fmt.Errorf("got %d bytes, the Hub announced %d", w.n, meta.size)
	}
	if w.h != nil {
		if got := hex.EncodeToString(w.h.Sum(nil)); got != meta.sha256 {
			return fmt.Errorf("sha256 %s does not match the Hub's %s", got, meta.sha256)
		}
	}
	return nil
}

// writeError is a local disk failure while writing a download: never retried.
type writeError struct{ err error }

func (e *writeError) Error() string { return "cache: " + e.err.Error() }
func (e *writeError) Unwrap() error { return e.err }

// getOnce is one GET of the file from w.n on. progressed tells whether bytes were added.
func (c *Client) getOnce(ctx context.Context, u string, w *partial, bar progress, meta fileMeta, r repo, commit, file string) (bool, error) {
	if meta.size >= 0 && w.n == meta.size {
		return false, nil // a previous run got every byte
	}
	rctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	hdr := http.Header{}
	if w.n > 0 {
		hdr.Set("Range", fmt.Sprintf("bytes=%d-", w.n))
	}
	resp, err := c.do(rctx, c.http, http.MethodGet, u, hdr)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusPartialContent:
		if got := contentRangeStart(resp.Header.Get("Content-Range")); got != w.n {
			if err := w.reset(); err != nil {
				return false, &writeError{err}
			}
			bar.set(0)
			return false, &transientError{fmt.Errorf("the server resumed at byte %d instead of %d; starting over", got, w.n)}
		}
	case resp.StatusCode == http.StatusOK:
		if w.n > 0 {
			c.log.Info("the server ignored the Range request; downloading from the start", "file", file)
			if err := w.reset(); err != nil {
				return false, &writeError{err}
			}
			bar.set(0)
		}
	case resp.StatusCode == http.StatusRequestedRangeNotSatisfiable:
		if err := w.reset(); err != nil {
			return false, &writeError{err}
		}
		bar.set(0)
		return false, &transientError{errors.New("the server refused the resume range; starting over")}
	default:
		return false, statusError(resp, "download "+file+" of "+r.String(), r, commit, file, c.cfg.Token != "")
	}
	before := w.n
	err = c.copyBody(rctx, cancel, w, bar, resp.Body)
	progressed := w.n > before
	if err == nil && meta.size >= 0 && w.n < meta.size {
		err = &transientError{fmt.Errorf("the connection ended after %d of %d bytes", w.n, meta.size)}
	}
	return progressed, err
}

// copyBody streams body into w; a read that waits longer than StallTimeout aborts the request.
func (c *Client) copyBody(rctx context.Context, cancel context.CancelCauseFunc, w *partial, bar progress, body io.Reader) error {
	stall := c.cfg.StallTimeout
	var timer *time.Timer
	if stall > 0 {
		timer = time.AfterFunc(stall, func() { cancel(errStalled) })
		defer timer.Stop()
	}
	buf := make([]byte, 256<<10)
	for {
		n, rerr := body.Read(buf)
		if n > 0 {
			if timer != nil {
				timer.Reset(stall)
			}
			if _, err := w.Write(buf[:n]); err != nil {
				return &writeError{err}
			}
			bar.add(n)
		}
		switch {
		case rerr == io.EOF:
			return nil
		case rerr == nil:
		case errors.Is(context.Cause(rctx), errStalled):
			return &transientError{fmt.Errorf("no data for %s after %d bytes", stall, w.n)}
		case rctx.Err() != nil && context.Cause(rctx) == rctx.Err():
			return rctx.Err()
		default:
			return &transientError{fmt.Errorf("connection lost after %d bytes: %w", w.n, rerr)}
		}
	}
}

// contentRangeStart reads N from "bytes N-M/T"; -1 when absent or malformed.
func contentRangeStart(h string) int64 {
	rest, ok := strings.CutPrefix(strings.TrimSpace(h), "bytes ")
	if !ok {
		return -1
	}
	first, _, ok := strings.Cut(rest, "-")
	if !ok {
		return -1
	}
	n, err := strconv.ParseInt(first, 10, 64)
	if err != nil {
		return -1
	}
	return n
}
