// Package hub downloads repositories from the Hugging Face Hub into the standard Hugging Face
// cache layout (the one huggingface_hub writes and reads), so that caches are shared both ways:
//
//	HF_HUB_CACHE/models--org--name/
//	  blobs/<etag>                      file contents, named by git blob sha1 or LFS sha256
//	  snapshots/<commit>/<path>         relative symlinks to ../../blobs/<etag>
//	  refs/<revision>                   the commit a branch or tag pointed to
//
// Downloads resume from blobs/<etag>.incomplete with HTTP Range requests, LFS files are checked
// against their sha256, and offline mode serves snapshots from the cache alone.
package hub

import (
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/medassist/medassist/internal/config"
)

// DefaultEndpoint is the public Hugging Face Hub.
const DefaultEndpoint = "https://huggingface.co"

// Config configures a Client. Build it with FromEnv and override fields from flags.
type Config struct {
	// Endpoint is the Hub's base URL (HF_ENDPOINT), without a trailing slash.
	Endpoint string
	// CacheDir is the hub cache root (HF_HUB_CACHE, default HF_HOME/hub).
	CacheDir string
	// Token is sent as "Authorization: Bearer" to the Hub's own host (HF_TOKEN or HF_HOME/token).
	Token string
	// Offline serves from the cache only and makes no request (HF_HUB_OFFLINE).
	Offline bool
	// MaxRetries is how many times a transient failure (5xx, 429, connection reset, stall) is
	// retried without progress before giving up. 0 disables retries.
	MaxRetries int
	// RetryBackoff is the first wait between retries; it doubles up to MaxBackoff.
	RetryBackoff time.Duration
	MaxBackoff   time.Duration
	// StallTimeout aborts and retries a download that received no byte for this long.
	StallTimeout time.Duration
	// Progress receives one progress bar per file of at least ProgressMinBytes; nil disables them.
	Progress         io.Writer
	ProgressMinBytes int64
	// Logger receives one line per downloaded file; nil discards.
	Logger *slog.Logger
	// HTTPClient replaces the default client (its CheckRedirect is replaced so that the token
	// never leaves the Hub's host). Nil builds one.
	HTTPClient *http.Client
	// UserAgent is sent with every request.
	UserAgent string
}

// FromEnv builds the configuration huggingface_hub would use from the environment read through
// getenv (os.Getenv in main): HF_ENDPOINT, HF_HOME, HF_HUB_CACHE (or the legacy
// HUGGINGFACE_HUB_CACHE), XDG_CACHE_HOME, HF_TOKEN (or HUGGING_FACE_HUB_TOKEN, HF_TOKEN_PATH,
// HF_HOME/token) and HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE).
func FromEnv(getenv func(string) string) Config {
	c := Defaults()
	if e := getenv("HF_ENDPOINT"); e != "" {
		c.Endpoint = strings.TrimRight(e, "/")
	}
	home := expandPath(getenv("HF_HOME"), getenv)
	if home == "" {
		cacheHome := expandPath(getenv("XDG_CACHE_HOME"), getenv)
		if cacheHome == "" {
			cacheHome = expandPath("~/.cache", getenv)
		}
		home = filepath.Join(cacheHome, "huggingface")
	}
	c.CacheDir = filepath.Join(home, "hub")
	for _, k := range []string{"HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"} {
		if v := getenv(k); v != "" {
			c.CacheDir = expandPath(v, getenv)
			break
		}
	}
	c.Token = tokenFromEnv(getenv, home)
	c.Offline = envTrue(getenv("HF_HUB_OFFLINE")) || envTrue(getenv("TRANSFORMERS_OFFLINE"))
	return c
}

// Defaults are the settings that do not come from the environment.
func Defaults() Config {
	return Config{
		Endpoint:         DefaultEndpoint,
		MaxRetries:       5,
		RetryBackoff:     time.Second,
		MaxBackoff:       30 * time.Second,
		StallTimeout:     60 * time.Second,
		ProgressMinBytes: 8 << 20,
		UserAgent:        "medassist-hub/1",
	}
}

// Validate reports every bad field at once.
func (c *Config) Validate() error {
	u, err := url.Parse(c.Endpoint)
	okURL := err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" && u.RawQuery == ""
	return config.Join(
		config.Check(okURL, "endpoint", c.Endpoint, "an http(s) URL such as https://huggingface.co (HF_ENDPOINT)"),
		config.Check(c.CacheDir != "", "cache-dir", c.CacheDir, "a directory (HF_HUB_CACHE or HF_HOME)"),
		config.Check(c.MaxRetries >= 0, "retries", c.MaxRetries, ">= 0"),
		config.Check(c.RetryBackoff >= 0 && c.MaxBackoff >= 0, "retry-backoff", c.RetryBackoff, ">= 0"),
		config.Check(c.StallTimeout >= 0, "stall-timeout", c.StallTimeout, ">= 0 (0 disables)"),
	)
}

// tokenFromEnv follows huggingface_hub: HF_TOKEN, then the legacy HUGGING_FACE_HUB_TOKEN, then
// the file HF_TOKEN_PATH (default HF_HOME/token) written by `hf auth login`.
func tokenFromEnv(getenv func(string) string, home string) string {
	for _, k := range []string{"HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"} {
		if v := strings.TrimSpace(getenv(k)); v != "" {
			return v
		}
	}
	path := expandPath(getenv("HF_TOKEN_PATH"), getenv)
	if path == "" {
		path = filepath.Join(home, "token")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// envTrue matches huggingface_hub's truthy values: 1, ON, YES, TRUE (any case).
func envTrue(v string) bool {
	switch strings.ToUpper(strings.TrimSpace(v)) {
	case "1", "ON", "YES", "TRUE":
		return true
	}
	return false
}

// expandPath expands a leading ~ and $VARS, as os.path.expanduser/expandvars do.
func expandPath(p string, getenv func(string) string) string {
	if p == "" {
		return ""
	}
	p = os.Expand(p, func(name string) string {
		if v := getenv(name); v != "" {
			return v
		}
		return "$" + name // unknown variables stay as written, as in os.path.expandvars
	})
	if p == "~" || strings.HasPrefix(p, "~/") {
		home := getenv("HOME")
		if home == "" {
			home, _ = os.UserHomeDir()
		}
		p = filepath.Join(home, strings.TrimPrefix(p, "~"))
	}
	return p
}
