package hub

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// Client downloads repositories from one Hub endpoint into one cache. It is safe for
// concurrent use.
type Client struct {
	cfg      Config
	log      *slog.Logger
	http     *http.Client // follows redirects; the token never leaves the Hub's host
	meta     *http.Client // stops at redirects to another host, to read the Hub's own headers
	hubHost  string
	endpoint string
}

// New checks cfg and builds a Client.
func New(cfg Config) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	u, _ := url.Parse(cfg.Endpoint)
	c := &Client{cfg: cfg, log: cfg.Logger, hubHost: u.Host, endpoint: strings.TrimRight(cfg.Endpoint, "/")}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	base := http.Client{}
	if cfg.HTTPClient != nil {
		base = *cfg.HTTPClient
	}
	if base.Transport == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.ResponseHeaderTimeout = time.Minute
		base.Transport = t
	}
	c.http, c.meta = new(http.Client), new(http.Client)
	*c.http, *c.meta = base, base
	c.http.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if len(via) >= 10 {
			return errors.New("stopped after 10 redirects")
		}
		if req.URL.Host != via[0].URL.Host {
			req.Header.Del("Authorization")
		}
		return nil
	}
	c.meta.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if len(via) >= 10 {
			return errors.New("stopped after 10 redirects")
		}
		if req.URL.Host != via[0].URL.Host {
			return http.ErrUseLastResponse
		}
		return nil
	}
	return c, nil
}

// Snapshot makes snapshots/<commit> of a repository complete in the cache for the files that
// match include (see matcher; with none, all files, less other weight formats when a model has
// safetensors) and returns that directory. Files already cached are not downloaded again.
// revision is a branch, tag or commit hash ("main" when empty). Offline (Config.Offline), it only
// reads the cache: the commit comes from the revision itself (a commit hash) or refs/<revision>,
// every cached file matching include must resolve to a blob, and every include pattern without
// wildcards must name a cached file; errors wrap ErrNotCached and say how to fill the cache.
func (c *Client) Snapshot(ctx context.Context, repoID string, repoType RepoType, revision string, include []string) (string, error) {
	if revision == "" {
		revision = "main"
	}
	r, m, err := checkRequest(repoID, repoType, revision, include)
	if err != nil {
		return "", err
	}
	cache := newCacheRepo(c.cfg.CacheDir, r)
	if c.cfg.Offline {
		return cache.resolve(revision, m)
	}
	info, err := c.repoInfo(ctx, r, revision)
	if err != nil {
		if isTransient(ctx, err) {
			if dir, cerr := cache.resolve(revision, m); cerr == nil {
				c.log.Warn("the Hub is unreachable; using the cached snapshot", "repo", r.ID, "error", err)
				return dir, nil
			}
		}
		return "", err
	}
	if err := cache.writeRef(revision, info.commit); err != nil {
		return "", fmt.Errorf("cache: %w", err)
	}
	files, err := c.plan(r, revision, info, m)
	if err != nil {
		return "", err
	}
	for _, f := range files {
		if err := c.fetch(ctx, cache, r, info.commit, f); err != nil {
			return "", err
		}
	}
	return cache.snapshotDir(info.commit), nil
}

// plan picks the files to fetch from the listing and checks them.
func (c *Client) plan(r repo, revision string, info repoInfo, m matcher) ([]string, error) {
	for _, f := range info.files {
		if err := checkRepoPath(f); err != nil {
			return nil, fmt.Errorf("%s at %s: %w", r, revision, err)
		}
	}
	files, skipped := selectFiles(info.files, r.Type, m)
	if skipped > 0 {
		c.log.Info("skipping other weight formats since safetensors exist; use --include to choose files",
			"repo", r.ID, "skipped", skipped)
	}
	listed := map[string]bool{}
	for _, f := range info.files {
		listed[f] = true
	}
	for _, lit := range m.literals() {
		if !listed[lit] {
			return nil, fmt.Errorf("%w: file %s is not in %s at %s", ErrNotFound, lit, r, revision)
		}
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("%w: no file of %s at %s matches %s (%d files listed)", ErrNotFound, r, revision, m, len(info.files))
	}
	return files, nil
}

// fetch makes snapshots/<commit>/<file> point at a complete, verified blob.
func (c *Client) fetch(ctx context.Context, cache cacheRepo, r repo, commit, file string) error {
	if _, err := os.Stat(cache.snapshotPath(commit, file)); err == nil {
		c.log.Debug("cached", "file", file)
		return nil
	}
	meta, err := c.fileMeta(ctx, r, commit, file)
	if err != nil {
		return err
	}
	blob := cache.blobPath(meta.etag)
	if !blobComplete(blob, meta.size) {
		unlock, err := lockFile(ctx, cache.lockPath(meta.etag))
		if err != nil {
			return fmt.Errorf("lock %s: %w", cache.lockPath(meta.etag), err)
		}
		defer unlock()
		// Another process may have finished it while we waited for the lock.
		if !blobComplete(blob, meta.size) {
			if err := c.download(ctx, r, commit, file, blob, meta); err != nil {
				return err
			}
		}
	}
	if err := cache.link(commit, file, meta.etag); err != nil {
		return fmt.Errorf("cache: %w", err)
	}
	return nil
}

func blobComplete(path string, size int64) bool {
	st, err := os.Stat(path)
	return err == nil && st.Mode().IsRegular() && (size < 0 || st.Size() == size)
}

// repoInfo is what the revision API says about a repository.
type repoInfo struct {
	commit string
	files  []string
}

// repoInfo asks GET /api/{models,datasets}/{id}/revision/{revision}.
func (c *Client) repoInfo(ctx context.Context, r repo, revision string) (repoInfo, error) {
	u := fmt.Sprintf("%s/api/%ss/%s/revision/%s", c.endpoint, r.Type, r.ID, url.PathEscape(revision))
	what := fmt.Sprintf("list %s at %s", r, revision)
	var info repoInfo
	err := c.retry(ctx, what, func() (bool, error) {
		resp, err := c.do(ctx, c.http, http.MethodGet, u, nil)
		if err != nil {
			return false, err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return false, statusError(resp, what, r, revision, "", c.cfg.Token != "")
		}
		var body struct {
			SHA      string `json:"sha"`
			Siblings []struct {
				RFilename string `json:"rfilename"`
			} `json:"siblings"`
		}
		if err := json.NewDecoder(io.LimitReader(resp.Body, 256<<20)).Decode(&body); err != nil {
			return false, &transientError{fmt.Errorf("%s: reading the answer: %w", what, err)}
		}
		if !commitRe.MatchString(body.SHA) {
			return false, fmt.Errorf("%s: the answer has no commit hash (sha %q); is %s a Hugging Face Hub (HF_ENDPOINT)?", what, body.SHA, c.endpoint)
		}
		info = repoInfo{commit: body.SHA}
		for _, s := range body.Siblings {
			info.files = append(info.files, s.RFilename)
		}
		return false, nil
	})
	return info, err
}

// resolveURL is {endpoint}/[datasets/]{id}/resolve/{revision}/{file}.
func (c *Client) resolveURL(r repo, revision, file string) string {
	parts := strings.Split(file, "/")
	for i, p := range parts {
		parts[i] = url.PathEscape(p)
	}
	return fmt.Sprintf("%s/%s/resolve/%s/%s", c.endpoint, r.urlPrefix(), url.PathEscape(revision), strings.Join(parts, "/"))
}

// fileMeta is what a HEAD on the resolve URL tells about one file.
type fileMeta struct {
	etag   string // the blob's name in the cache
	sha256 string // LFS content hash, "" for files stored in git
	size   int64  // -1 when unknown
}

func (c *Client) fileMeta(ctx context.Context, r repo, commit, file string) (fileMeta, error) {
	u := c.resolveURL(r, commit, file)
	what := fmt.Sprintf("metadata of %s in %s", file, r)
	var meta fileMeta
	err := c.retry(ctx, what, func() (bool, error) {
		resp, err := c.do(ctx, c.meta, http.MethodHead, u, nil)
		if err != nil {
			return false, err
		}
		resp.Body.Close()
		if resp.StatusCode >= 400 {
			return false, statusError(resp, what, r, commit, file, c.cfg.Token != "")
		}
		meta, err = parseFileMeta(resp.Header, resp.StatusCode, commit)
		if err != nil {
			return false, fmt.Errorf("%s: %w", what, err)
		}
		return false, nil
	})
	return meta, err
}

// parseFileMeta reads X-Linked-Etag / ETag, X-Linked-Size / Content-Length and X-Repo-Commit as
// huggingface_hub's get_hf_file_metadata does.
func parseFileMeta(h http.Header, status int, commit string) (fileMeta, error) {
	if got := h.Get("X-Repo-Commit"); got != "" && got != commit {
		return fileMeta{}, fmt.Errorf("the Hub answered for commit %s, not %s", got, commit)
	}
	linked := normalizeEtag(h.Get("X-Linked-Etag"))
	etag := linked
	if etag == "" {
		etag = normalizeEtag(h.Get("ETag"))
	}
	if !safeEtagRe.MatchString(etag) || etag == "." || etag == ".." {
		return fileMeta{}, fmt.Errorf("no usable ETag in the answer (%q); is HF_ENDPOINT a Hugging Face Hub?", etag)
	}
	meta := fileMeta{etag: etag, size: -1}
	if isSHA256(linked) {
		meta.sha256 = linked
	}
	sizeHeader := h.Get("X-Linked-Size")
	if sizeHeader == "" && (status < 300 || status >= 400) {
		sizeHeader = h.Get("Content-Length")
	}
	if sizeHeader != "" {
		n, err := strconv.ParseInt(sizeHeader, 10, 64)
		if err != nil || n < 0 {
			return fileMeta{}, fmt.Errorf("bad file size %q in the answer", sizeHeader)
		}
		meta.size = n
	}
	return meta, nil
}

// normalizeEtag turns W/"abc" or "abc" into abc.
func normalizeEtag(e string) string {
	return strings.Trim(strings.TrimPrefix(strings.TrimSpace(e), "W/"), `"`)
}

func isSHA256(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// do sends one request; network failures come back as transientError.
func (c *Client) do(ctx context.Context, hc *http.Client, method, u string, hdr http.Header) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, u, nil)
	if err != nil {
		return nil, err
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	req.Header.Set("User-Agent", c.cfg.UserAgent)
	// Sizes and ranges refer to the stored bytes: no transparent compression.
	req.Header.Set("Accept-Encoding", "identity")
	if c.cfg.Token != "" && req.URL.Host == c.hubHost {
		req.Header.Set("Authorization", "Bearer "+c.cfg.Token)
	}
	resp, err := hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		var cert *tls.CertificateVerificationError
		if errors.As(err, &cert) {
			return nil, err
		}
		return nil, &transientError{err}
	}
	return resp, nil
}

// retry runs attempt until it succeeds or fails for good: a non-transient error, or MaxRetries
// transient failures in a row without progress (an attempt that made progress resets the count).
func (c *Client) retry(ctx context.Context, what string, attempt func() (progressed bool, err error)) error {
	failures, total := 0, 0
	for {
		progressed, err := attempt()
		if err == nil || !isTransient(ctx, err) {
			return err
		}
		if progressed {
			failures = 0
		}
		failures++
		total++
		if failures > c.cfg.MaxRetries || total > 20*(c.cfg.MaxRetries+1) {
			if c.cfg.MaxRetries == 0 {
				return err
			}
			return fmt.Errorf("%w (gave up after %d retries)", err, total-1)
		}
		wait := c.backoff(failures, err)
		c.log.Warn("retrying", "what", what, "in", wait.Round(time.Millisecond), "error", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
	}
}

// backoff is RetryBackoff doubled per failure, capped at MaxBackoff, with jitter; a server's
// Retry-After (in seconds) is honoured up to MaxBackoff.
func (c *Client) backoff(failures int, err error) time.Duration {
	d := c.cfg.RetryBackoff
	for i := 1; i < failures && d < c.cfg.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, c.cfg.MaxBackoff)
	if d > 0 {
		d = d/2 + rand.N(d/2+1)
	}
	var se *StatusError
	if errors.As(err, &se) && se.retryAfter > d {
		d = min(se.retryAfter, c.cfg.MaxBackoff)
	}
	return d
}
