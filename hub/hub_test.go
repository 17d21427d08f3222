package hub_test

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/medassist/medassist/hub"
	"github.com/medassist/medassist/hub/hubtest"
)

const (
	commitA = "0123456789abcdef0123456789abcdef01234567"
	commitB = "89abcdef0123456789abcdef0123456789abcdef"
	repoID  = "medassist-test/tiny-llama"
)

func randomBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

var (
	weights   = randomBytes(600_000, 1)
	torchBin  = randomBytes(50_000, 2)
	spModel   = randomBytes(20_000, 3)
	configV1  = []byte(`{"architectures": ["LlamaForCausalLM"], "hidden_size": 64}` + "\n")
	configV2  = []byte(`{"architectures": ["LlamaForCausalLM"], "hidden_size": 64, "rope_theta": 10000.0}` + "\n")
	tokenizer = bytes.Repeat([]byte(`{"vocab": ["a", "b"]} `), 500)
)

func modelFiles(config []byte) []hubtest.File {
	return []hubtest.File{
		{Path: ".gitattributes", Data: []byte("*.safetensors filter=lfs diff=lfs merge=lfs -text\n")},
		{Path: "config.json", Data: config},
		{Path: "tokenizer.json", Data: tokenizer},
		{Path: "tokenizer.model", Data: spModel, LFS: true},
		{Path: "model.safetensors", Data: weights, LFS: true},
		{Path: "pytorch_model.bin", Data: torchBin, LFS: true},
		{Path: "extra/dir/notes.md", Data: []byte("# nested file\n")},
	}
}

// modelRepo has commit A on main and commit B (a new config.json, same weights) on tag v2.
func modelRepo() hubtest.Repo {
	return hubtest.Repo{ID: repoID, Commits: []hubtest.Commit{
		{SHA: commitA, Refs: []string{"main"}, Files: modelFiles(configV1)},
		{SHA: commitB, Refs: []string{"v2"}, Files: modelFiles(configV2)},
	}}
}

func newClient(t *testing.T, s *hubtest.Server, edit func(*hub.Config)) (*hub.Client, hub.Config) {
	t.Helper()
	cfg := hub.Defaults()
	cfg.Endpoint = s.URL
	cfg.CacheDir = filepath.Join(t.TempDir(), "hub")
	cfg.RetryBackoff = time.Millisecond
	cfg.MaxBackoff = 5 * time.Millisecond
	if edit != nil {
		edit(&cfg)
	}
	c, err := hub.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c, cfg
}

func fileByPath(files []hubtest.File, p string) hubtest.File {
	for _, f := range files {
		if f.Path == p {
			return f
		}
	}
	panic("no file " + p)
}

// checkSnapshot asserts the huggingface_hub layout for want: relative symlinks into blobs/ named
// by etag, byte-exact content, and no leftover partial files.
func checkSnapshot(t *testing.T, cacheDir, folder, commit, dir string, want []hubtest.File) {
	t.Helper()
	repoDir := filepath.Join(cacheDir, folder)
	if dir != filepath.Join(repoDir, "snapshots", commit) {
		t.Fatalf("snapshot dir = %s, want %s", dir, filepath.Join(repoDir, "snapshots", commit))
	}
	for _, f := range want {
		p := filepath.Join(dir, filepath.FromSlash(f.Path))
		target, err := os.Readlink(p)
		if err != nil {
			t.Fatalf("%s: not a symlink: %v", f.Path, err)
		}
		wantTarget := strings.Repeat("../", 2+strings.Count(f.Path, "/")) + "blobs/" + f.Etag()
		if target != wantTarget {
			t.Errorf("%s -> %s, want %s", f.Path, target, wantTarget)
		}
		got, err := os.ReadFile(p)
		if err != nil || !bytes.Equal(got, f.Data) {
			t.Errorf("%s: content differs (%d bytes, want %d; err %v)", f.Path, len(got), len(f.Data), err)
		}
	}
	leftovers, _ := filepath.Glob(filepath.Join(repoDir, "blobs", "*.incomplete"))
	if len(leftovers) > 0 {
		t.Errorf("partial files left: %v", leftovers)
	}
}

func TestSnapshotLayoutAndDefaults(t *testing.T) {
	s := hubtest.New(t, hubtest.Options{}, modelRepo())
	c, cfg := newClient(t, s, nil)
	dir, err := c.Snapshot(context.Background(), repoID, hub.Model, "main", nil)
	if err != nil {
		t.Fatal(err)
	}
	files := modelFiles(configV1)
	var want []hubtest.File
	for _, f := range files {
		if f.Path != "pytorch_model.bin" {
			want = append(want, f)
		}
	}
	checkSnapshot(t, cfg.CacheDir, "models--medassist-test--tiny-llama", commitA, dir, want)
	// Safetensors exist, so the other weight format is neither asked for nor present.
	if n := s.Count("GET", "pytorch_model.bin") + s.Count("HEAD", "pytorch_model.bin"); n != 0 {
		t.Errorf("pytorch_model.bin was requested %d times", n)
	}
	if _, err := os.Lstat(filepath.Join(dir, "pytorch_model.bin")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("pytorch_model.bin should not be in the snapshot: %v", err)
	}
	ref, err := os.ReadFile(filepath.Join(cfg.CacheDir, "models--medassist-test--tiny-llama", "refs", "main"))
	if err != nil || string(ref) != commitA {
		t.Fatalf("refs/main = %q (%v), want %s", ref, err, commitA)
	}
	blobs, _ := os.ReadDir(filepath.Join(cfg.CacheDir, "models--medassist-test--tiny-llama", "blobs"))
	if len(blobs) != len(want) {
		t.Errorf("%d blobs, want %d", len(blobs), len(want))
	}
	// Files are resolved at the commit, not the branch, so a moving branch cannot mix versions.
	if n := s.Count("GET", "/resolve/"+commitA+"/"); n != len(want) {
		t.Errorf("%d GETs pinned to the commit, want %d", n, len(want))
	}
}

func TestSecondRunDownloadsNothing(t *testing.T) {
	s := hubtest.New(t, hubtest.Options{}, modelRepo())
	c, cfg := newClient(t, s, nil)
	ctx := context.Background()
	dir1, err := c.Snapshot(ctx, repoID, hub.Model, "main", nil)
	if err != nil {
		t.Fatal(err)
	}
	s.Reset()
	dir2, err := c.Snapshot(ctx, repoID, hub.Model, "main", nil)
	if err != nil {
		t.Fatal(err)
	}
	if dir1 != dir2 {
		t.Fatalf("dirs differ: %s vs %s", dir1, dir2)
	}
	if got := s.Requests(); len(got) != 1 || !strings.HasPrefix(got[0].Path, "/api/models/") {
		t.Fatalf("second run made %d requests (%v), want only the listing", len(got), got)
	}

	// Tag v2 shares every blob but config.json: only that file is downloaded, others are linked.
	s.Reset()
	dirB, err := c.Snapshot(ctx, repoID, hub.Model, "v2", nil)
	if err != nil {
		t.Fatal(err)
	}
	if n := s.Downloads(); n != 1 || s.Count("GET", "config.json") != 1 {
		t.Fatalf("v2: %d downloads (config.json GETs %d), want only config.json", n, s.Count("GET", "config.json"))
	}
	got, _ := os.ReadFile(filepath.Join(dirB, "config.json"))
	if !bytes.Equal(got, configV2) {
		t.Fatalf("v2 config.json = %q", got)
	}
	ref, _ := os.ReadFile(filepath.Join(cfg.CacheDir, "models--medassist-test--tiny-llama", "refs", "v2"))
	if string(ref) != commitB {
		t.Fatalf("refs/v2 = %q, want %s", ref, commitB)
	}
	// A commit hash as revision writes no ref.
	if _, err := c.Snapshot(ctx, repoID, hub.Model, commitB, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(cfg.CacheDir, "models--medassist-test--tiny-llama", "refs", commitB)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a ref named after a commit hash was written: %v", err)
	}
}

func TestInterruptedDownloadResumes(t *testing.T) {
	s := hubtest.New(t, hubtest.Options{}, modelRepo())
	s.SetFault("model.safetensors", hubtest.Fault{CutAfter: 200_000, CutTimes: 1})
	ctx := context.Background()
	include := []string{"model.safetensors"}

	// First run without retries: the cut connection fails it and leaves the partial blob.
	c0, cfg := newClient(t, s, func(c *hub.Config) { c.MaxRetries = 0 })
	if _, err := c0.Snapshot(ctx, repoID, hub.Model, "main", include); err == nil {
		t.Fatal("want an error from the cut connection")
	}
	blob := filepath.Join(cfg.CacheDir, "models--medassist-test--tiny-llama", "blobs", hubtest.SHA256(weights))
	st, err := os.Stat(blob + ".incomplete")
	if err != nil || st.Size() == 0 || st.Size() > 200_000 {
		t.Fatalf("partial file: %v, %v", st, err)
	}
	partial := st.Size()

	// A new client (a restarted process) continues with a Range request.
	s.Reset()
	c1, err := hub.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	dir, err := c1.Snapshot(ctx, repoID, hub.Model, "main", include)
	if err != nil {
		t.Fatal(err)
	}
	var gets []hubtest.Request
	for _, r := range s.Requests() {
		if r.Method == "GET" && strings.HasSuffix(r.Path, "model.safetensors") {
			gets = append(gets, r)
		}
	}
	if len(gets) != 1 || gets[0].Range != "bytes="+strconv.FormatInt(partial, 10)+"-" {
		t.Fatalf("resume requests = %+v, want one with Range bytes=%d-", gets, partial)
	}
	checkSnapshot(t, cfg.CacheDir, "models--medassist-test--tiny-llama", commitA, dir,
		[]hubtest.File{fileByPath(modelFiles(configV1), "model.safetensors")})
}

func TestRetryResumesWithinOneRun(t *testing.T) {
	s := hubtest.New(t, hubtest.Options{}, modelRepo())
	s.SetFault("model.safetensors", hubtest.Fault{CutAfter: 100_000, CutTimes: 2})
	s.SetFault("config.json", hubtest.Fault{Fail: 2}) // 503 twice on its HEAD
	s.SetFault("api", hubtest.Fault{Fail: 1})
	c, cfg := newClient(t, s, nil)
	dir, err := c.Snapshot(context.Background(), repoID, hub.Model, "main", []string{"model.safetensors", "config.json"})
	if err != nil {
		t.Fatal(err)
	}
	var ranges []string
	for _, r := range s.Requests() {
		if r.Method == "GET" && strings.HasSuffix(r.Path, "model.safetensors") {
			ranges = append(ranges, r.Range)
		}
	}
	want := []string{"", "bytes=100000-", "bytes=200000-"}
	if strings.Join(ranges, "|") != strings.Join(want, "|") {
		t.Fatalf("ranges = %q, want %q", ranges, want)
	}
	if n := s.Count("GET", "/api/"); n != 2 {
		t.Errorf("API requests = %d, want 2 (one 503, one retry)", n)
	}
	if n := s.Count("HEAD", "config.json"); n != 3 {
		t.Errorf("config.json HEADs = %d, want 3 (two 503s, then success)", n)
	}
	files := modelFiles(configV1)
	checkSnapshot(t, cfg.CacheDir, "models--medassist-test--tiny-llama", commitA, dir,
		[]hubtest.File{fileByPath(files, "model.safetensors"), fileByPath(files, "config.json")})
}

func TestStalledDownloadIsRetried(t *testing.T) {
	s := hubtest.New(t, hubtest.Options{}, modelRepo())
	s.SetFault("model.safetensors", hubtest.Fault{CutAfter: 100_000, CutTimes: 1, Pause: 20 * time.Second})
	c, cfg := newClient(t, s, func(c *hub.Config) { c.StallTimeout = 200 * time.Millisecond })
	start := time.Now()
	dir, err := c.Snapshot(context.Background(), repoID, hub.Model, "main", []string{"model.safetensors"})
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("took %s: the stall was not detected", d)
	}
	if r := s.Requests(); r[len(r)-1].Range != "bytes=100000-" {
		t.Fatalf("after the stall, the GET should resume: %+v", r[len(r)-1])
	}
	checkSnapshot(t, cfg.CacheDir, "models--medassist-test--tiny-llama", commitA, dir,
		[]hubtest.File{fileByPath(modelFiles(configV1), "model.safetensors")})
}

func TestServerIgnoringRangeRestartsCleanly(t *testing.T) {
	s := hubtest.New(t, hubtest.Options{}, modelRepo())
	s.SetFault("model.safetensors", hubtest.Fault{IgnoreRange: true})
	c, cfg := newClient(t, s, nil)
	// A stale partial file whose bytes are wrong: appending to it would fail the sha256.
	blobs := filepath.Join(cfg.CacheDir, "models--medassist-test--tiny-llama", "blobs")
	os.MkdirAll(blobs, 0o755)
	if err := os.WriteFile(filepath.Join(blobs, hubtest.SHA256(weights)+".incomplete"), randomBytes(12_345, 9), 0o644); err != nil {
		t.Fatal(err)
	}
	dir, err := c.Snapshot(context.Background(), repoID, hub.Model, "main", []string{"*.safetensors"})
	if err != nil {
		t.Fatal(err)
	}
	if n := s.Count("GET", "model.safetensors"); n != 1 {
		t.Fatalf("%d GETs, want 1", n)
	}
	if r := s.Requests(); r[len(r)-1].Range != "bytes=12345-" {
		t.Fatalf("the GET should have asked to resume: %+v", r[len(r)-1])
	}
	checkSnapshot(t, cfg.CacheDir, "models--medassist-test--tiny-llama", commitA, dir,
		[]hubtest.File{fileByPath(modelFiles(configV1), "model.safetensors")})
}

func TestCorruptDownloadIsRefused(t *testing.T) {
	s := hubtest.New(t, hubtest.Options{}, modelRepo())
	s.SetFault("model.safetensors", hubtest.Fault{Corrupt: true})
	c, cfg := newClient(t, s, nil)
	_, err := c.Snapshot(context.Background(), repoID, hub.Model, "main", nil)
	if !errors.Is(err, hub.ErrVerification) {
		t.Fatalf("want ErrVerification, got %v", err)
	}
	for _, want := range []string{"model.safetensors", "sha256", hubtest.SHA256(weights)} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q should mention %q", err, want)
		}
	}
	repoDir := filepath.Join(cfg.CacheDir, "models--medassist-test--tiny-llama")
	blob := filepath.Join(repoDir, "blobs", hubtest.SHA256(weights))
	for _, p := range []string{blob, blob + ".incomplete", filepath.Join(repoDir, "snapshots", commitA, "model.safetensors")} {
		if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s must not exist after a failed check: %v", p, err)
		}
	}
	// A hash mismatch is not retried: one GET only.
	if n := s.Count("GET", "model.safetensors"); n != 1 {
		t.Errorf("%d GETs, want 1", n)
	}
}

func TestOffline(t *testing.T) {
	s := hubtest.New(t, hubtest.Options{}, modelRepo())
	_, cfg := newClient(t, s, nil)
	online, err := hub.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	dir, err := online.Snapshot(ctx, repoID, hub.Model, "main", []string{"*.json", "model.safetensors"})
	if err != nil {
		t.Fatal(err)
	}
	s.Reset()
	cfg.Offline = true
	offline, err := hub.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	got, err := offline.Snapshot(ctx, repoID, hub.Model, "main", []string{"config.json", "model.safetensors"})
	if err != nil || got != dir {
		t.Fatalf("offline = %s, %v; want %s", got, err, dir)
	}
	if _, err := offline.Snapshot(ctx, repoID, hub.Model, commitA, nil); err != nil {
		t.Fatalf("offline by commit hash: %v", err)
	}
	if n := len(s.Requests()); n != 0 {
		t.Fatalf("offline mode made %d requests", n)
	}

	// A file that was never pulled.
	_, err = offline.Snapshot(ctx, repoID, hub.Model, "main", []string{"config.json", "tokenizer.model"})
	if !errors.Is(err, hub.ErrNotCached) || !strings.Contains(err.Error(), "tokenizer.model") ||
		!strings.Contains(err.Error(), "medassist pull "+repoID) {
		t.Fatalf("want ErrNotCached naming tokenizer.model and the fix, got %v", err)
	}
	// A snapshot whose blob was deleted.
	os.Remove(filepath.Join(cfg.CacheDir, "models--medassist-test--tiny-llama", "blobs", hubtest.SHA256(weights)))
	_, err = offline.Snapshot(ctx, repoID, hub.Model, "main", nil)
	if !errors.Is(err, hub.ErrNotCached) || !strings.Contains(err.Error(), "model.safetensors") {
		t.Fatalf("want ErrNotCached naming model.safetensors, got %v", err)
	}
	// A revision and a repository never pulled.
	if _, err := offline.Snapshot(ctx, repoID, hub.Model, "v2", nil); !errors.Is(err, hub.ErrNotCached) ||
		!strings.Contains(err.Error(), "--revision v2") {
		t.Fatalf("want ErrNotCached with the pull command for v2, got %v", err)
	}
	if _, err := offline.Snapshot(ctx, "other/repo", hub.Dataset, "main", nil); !errors.Is(err, hub.ErrNotCached) ||
		!strings.Contains(err.Error(), "--type dataset") {
		t.Fatalf("want ErrNotCached for an unknown dataset, got %v", err)
	}
	if len(s.Requests()) != 0 {
		t.Fatal("offline Snapshot made requests")
	}
}

func TestFallsBackToCacheWhenHubIsDown(t *testing.T) {
	s := hubtest.New(t, hubtest.Options{}, modelRepo())
	c, _ := newClient(t, s, func(c *hub.Config) { c.MaxRetries = 1 })
	ctx := context.Background()
	dir, err := c.Snapshot(ctx, repoID, hub.Model, "main", []string{"config.json"})
	if err != nil {
		t.Fatal(err)
	}
	s.SetFault("api", hubtest.Fault{Fail: 100})
	got, err := c.Snapshot(ctx, repoID, hub.Model, "main", []string{"config.json"})
	if err != nil || got != dir {
		t.Fatalf("with the Hub down: %s, %v; want the cached %s", got, err, dir)
	}
	// Not cached: the Hub's failure is reported.
	if _, err := c.Snapshot(ctx, repoID, hub.Model, "main", []string{"tokenizer.json"}); err == nil ||
		!strings.Contains(err.Error(), "503") {
		t.Fatalf("want the 503 reported, got %v", err)
	}
}

func TestHTTPErrors(t *testing.T) {
	private := hubtest.Repo{ID: "org/private", Private: true, Commits: []hubtest.Commit{
		{SHA: commitA, Refs: []string{"main"}, Files: []hubtest.File{{Path: "config.json", Data: configV1}}},
	}}
	s := hubtest.New(t, hubtest.Options{Token: "hf_secret"}, modelRepo(), private)
	ctx := context.Background()
	c, _ := newClient(t, s, nil)

	_, err := c.Snapshot(ctx, "org/private", hub.Model, "main", nil)
	if !errors.Is(err, hub.ErrUnauthorized) || !strings.Contains(err.Error(), "gated or private") ||
		!strings.Contains(err.Error(), "set HF_TOKEN") {
		t.Fatalf("401: got %v", err)
	}
	_, err = c.Snapshot(ctx, "org/missing", hub.Model, "main", nil)
	if !errors.Is(err, hub.ErrNotFound) || !strings.Contains(err.Error(), "model org/missing not found") {
		t.Fatalf("404: got %v", err)
	}
	_, err = c.Snapshot(ctx, repoID, hub.Model, "no-such-branch", nil)
	if !errors.Is(err, hub.ErrNotFound) || !strings.Contains(err.Error(), `revision "no-such-branch" not found`) {
		t.Fatalf("unknown revision: got %v", err)
	}
	_, err = c.Snapshot(ctx, repoID, hub.Model, "main", []string{"missing.json"})
	if !errors.Is(err, hub.ErrNotFound) || !strings.Contains(err.Error(), "missing.json") {
		t.Fatalf("unknown file: got %v", err)
	}
	if n := len(s.Requests()); n != 4 {
		t.Fatalf("401/404 must not be retried: %d requests, want 4 (one listing each)", n)
	}

	bad, _ := newClient(t, s, func(c *hub.Config) { c.Token = "hf_wrong" })
	if _, err := bad.Snapshot(ctx, "org/private", hub.Model, "main", nil); !errors.Is(err, hub.ErrUnauthorized) ||
		!strings.Contains(err.Error(), "token was refused") {
		t.Fatalf("wrong token: got %v", err)
	}
	good, _ := newClient(t, s, func(c *hub.Config) { c.Token = "hf_secret" })
	if _, err := good.Snapshot(ctx, "org/private", hub.Model, "main", nil); err != nil {
		t.Fatalf("with the token: %v", err)
	}
}

func TestDatasetRepo(t *testing.T) {
	data := []byte(`{"instruction": "Answer this question truthfully", "input": "What is X?", "output": "Y."}` + "\n")
	ds := hubtest.Repo{ID: "medalpaca/medical_meadow_medical_flashcards", Type: "dataset", Commits: []hubtest.Commit{
		{SHA: commitB, Refs: []string{"main"}, Files: []hubtest.File{
			{Path: "README.md", Data: []byte("# flashcards\n")},
			{Path: "medical_meadow_wikidoc_medical_flashcards.json", Data: bytes.Repeat(data, 300), LFS: true},
			{Path: "model.bin", Data: []byte("not a weight file here")}, // datasets get no weight-format defaults
		}},
	}}
	s := hubtest.New(t, hubtest.Options{}, ds)
	c, cfg := newClient(t, s, nil)
	dir, err := c.Snapshot(context.Background(), ds.ID, hub.Dataset, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	checkSnapshot(t, cfg.CacheDir, "datasets--medalpaca--medical_meadow_medical_flashcards", commitB, dir, ds.Commits[0].Files)
	if s.Count("GET", "/api/datasets/medalpaca/medical_meadow_medical_flashcards/revision/main") != 1 ||
		s.Count("GET", "/datasets/medalpaca/medical_meadow_medical_flashcards/resolve/"+commitB+"/") != 3 {
		t.Fatalf("unexpected dataset URLs: %+v", s.Requests())
	}
	// The same id as a model does not exist.
	if _, err := c.Snapshot(context.Background(), ds.ID, hub.Model, "main", nil); !errors.Is(err, hub.ErrNotFound) {
		t.Fatalf("model with a dataset's id: %v", err)
	}
}

func TestRedirectToCDNDropsToken(t *testing.T) {
	s := hubtest.New(t, hubtest.Options{CDN: true, Token: "hf_secret"}, modelRepo())
	c, cfg := newClient(t, s, func(c *hub.Config) { c.Token = "hf_secret" })
	dir, err := c.Snapshot(context.Background(), repoID, hub.Model, "main", []string{"*.safetensors", "config.json", "tokenizer.model"})
	if err != nil {
		t.Fatal(err)
	}
	files := modelFiles(configV1)
	checkSnapshot(t, cfg.CacheDir, "models--medassist-test--tiny-llama", commitA, dir,
		[]hubtest.File{fileByPath(files, "model.safetensors"), fileByPath(files, "config.json"), fileByPath(files, "tokenizer.model")})
	cdn := 0
	for _, r := range s.Requests() {
		switch r.Server {
		case "cdn":
			cdn++
			if r.Auth != "" {
				t.Errorf("the token was sent to the CDN: %+v", r)
			}
		case "hub":
			if r.Auth != "Bearer hf_secret" {
				t.Errorf("the Hub request lacks the token: %+v", r)
			}
		}
	}
	if cdn != 2 {
		t.Fatalf("%d CDN requests, want 2 (the LFS files)", cdn)
	}
}

func TestResumeThroughCDN(t *testing.T) {
	s := hubtest.New(t, hubtest.Options{CDN: true}, modelRepo())
	s.SetFault("model.safetensors", hubtest.Fault{CutAfter: 300_000, CutTimes: 1})
	c, cfg := newClient(t, s, nil)
	dir, err := c.Snapshot(context.Background(), repoID, hub.Model, "main", []string{"model.safetensors"})
	if err != nil {
		t.Fatal(err)
	}
	var cdnRanges []string
	for _, r := range s.Requests() {
		if r.Server == "cdn" {
			cdnRanges = append(cdnRanges, r.Range)
		}
	}
	if strings.Join(cdnRanges, "|") != "|bytes=300000-" {
		t.Fatalf("CDN ranges = %q; the Range must survive the redirect", cdnRanges)
	}
	checkSnapshot(t, cfg.CacheDir, "models--medassist-test--tiny-llama", commitA, dir,
		[]hubtest.File{fileByPath(modelFiles(configV1), "model.safetensors")})
}

func TestIncludePatterns(t *testing.T) {
	s := hubtest.New(t, hubtest.Options{}, modelRepo())
	c, _ := newClient(t, s, nil)
	ctx := context.Background()
	cases := []struct {
		include []string
		want    []string
	}{
		{[]string{"*.json"}, []string{"config.json", "tokenizer.json"}},
		{[]string{"tokenizer.*"}, []string{"tokenizer.json", "tokenizer.model"}},
		{[]string{"extra/"}, []string{"extra/dir/notes.md"}},
		{[]string{"*.md"}, []string{"extra/dir/notes.md"}}, // '*' crosses '/', as in fnmatch
		{[]string{"*.bin"}, []string{"pytorch_model.bin"}}, // asked for explicitly: no defaults
	}
	for _, tc := range cases {
		dir, err := c.Snapshot(ctx, repoID, hub.Model, commitB, tc.include)
		if err != nil {
			t.Fatalf("%v: %v", tc.include, err)
		}
		for _, w := range tc.want {
			if _, err := os.Stat(filepath.Join(dir, w)); err != nil {
				t.Errorf("%v: %s missing", tc.include, w)
			}
		}
	}
	if _, err := c.Snapshot(ctx, repoID, hub.Model, "main", []string{"*.gguf"}); !errors.Is(err, hub.ErrNotFound) ||
		!strings.Contains(err.Error(), "*.gguf") {
		t.Fatalf("a pattern matching nothing: %v", err)
	}
}

func TestUnsafeNamesRefused(t *testing.T) {
	evil := hubtest.Repo{ID: "org/evil", Commits: []hubtest.Commit{
		{SHA: commitA, Refs: []string{"main"}, Files: []hubtest.File{{Path: "../../../escape.txt", Data: []byte("x")}}},
	}}
	s := hubtest.New(t, hubtest.Options{}, evil)
	c, _ := newClient(t, s, nil)
	if _, err := c.Snapshot(context.Background(), "org/evil", hub.Model, "main", nil); err == nil ||
		!strings.Contains(err.Error(), "unsafe file name") {
		t.Fatalf("want an unsafe-name error, got %v", err)
	}
	for _, id := range []string{"a/b/c", "../x", "org/na--me", ""} {
		if _, err := c.Snapshot(context.Background(), id, hub.Model, "main", nil); err == nil {
			t.Errorf("repo id %q accepted", id)
		}
	}
	if _, err := c.Snapshot(context.Background(), "org/evil", hub.Model, "../../x", nil); err == nil {
		t.Error("revision ../../x accepted")
	}
}

func TestConcurrentPullsShareOneDownload(t *testing.T) {
	s := hubtest.New(t, hubtest.Options{Throttle: 2 * time.Millisecond}, modelRepo())
	_, cfg := newClient(t, s, nil)
	var wg sync.WaitGroup
	errs := make([]error, 3)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := hub.New(cfg)
			if err == nil {
				_, err = c.Snapshot(context.Background(), repoID, hub.Model, "main", []string{"model.safetensors"})
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if n := s.Count("GET", "model.safetensors"); n != 1 {
		t.Fatalf("%d GETs of one blob by 3 concurrent pulls, want 1", n)
	}
}

func TestProgressBar(t *testing.T) {
	s := hubtest.New(t, hubtest.Options{}, modelRepo())
	var buf syncBuffer
	c, _ := newClient(t, s, func(c *hub.Config) { c.Progress = &buf; c.ProgressMinBytes = 100_000 })
	if _, err := c.Snapshot(context.Background(), repoID, hub.Model, "main", []string{"model.safetensors", "config.json"}); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	if !strings.Contains(out, "model.safetensors") || !strings.Contains(out, "100%") {
		t.Fatalf("progress output lacks the large file at 100%%: %q", out)
	}
	if strings.Contains(out, "config.json") {
		t.Fatalf("small files get no bar: %q", out)
	}
}

func TestContextCancelStopsDownload(t *testing.T) {
	s := hubtest.New(t, hubtest.Options{}, modelRepo())
	s.SetFault("model.safetensors", hubtest.Fault{CutAfter: 100_000, CutTimes: 1, Pause: time.Minute})
	c, cfg := newClient(t, s, nil)
	blob := filepath.Join(cfg.CacheDir, "models--medassist-test--tiny-llama", "blobs", hubtest.SHA256(weights))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { // cancel once the first bytes are on disk
		for ctx.Err() == nil {
			if st, err := os.Stat(blob + ".incomplete"); err == nil && st.Size() > 0 {
				cancel()
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	_, err := c.Snapshot(ctx, repoID, hub.Model, "main", []string{"model.safetensors"})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("want the cancellation, got %v", err)
	}
	if n := s.Count("GET", "model.safetensors"); n != 1 {
		t.Fatalf("a cancelled download was retried: %d GETs", n)
	}
	// What arrived is kept for the next run.
	if st, err := os.Stat(blob + ".incomplete"); err != nil || st.Size() == 0 {
		t.Fatalf("partial file: %v", err)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestRevisionWithSlashes(t *testing.T) {
	repo := hubtest.Repo{ID: repoID, Commits: []hubtest.Commit{
		{SHA: commitB, Refs: []string{"refs/pr/1"}, Files: []hubtest.File{{Path: "config.json", Data: configV2}}},
	}}
	s := hubtest.New(t, hubtest.Options{}, repo)
	c, cfg := newClient(t, s, nil)
	if _, err := c.Snapshot(context.Background(), repoID, hub.Model, "refs/pr/1", nil); err != nil {
		t.Fatal(err)
	}
	if s.Count("GET", "/revision/refs/pr/1") != 1 {
		t.Fatalf("listing request: %+v", s.Requests())
	}
	ref, err := os.ReadFile(filepath.Join(cfg.CacheDir, "models--medassist-test--tiny-llama", "refs", "refs", "pr", "1"))
	if err != nil || string(ref) != commitB {
		t.Fatalf("refs/refs/pr/1 = %q, %v", ref, err)
	}
	cfg.Offline = true
	offline, err := hub.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if dir, err := offline.Snapshot(context.Background(), repoID, hub.Model, "refs/pr/1", []string{"config.json"}); err != nil ||
		filepath.Base(dir) != commitB {
		t.Fatalf("offline refs/pr/1: %s, %v", dir, err)
	}
}
