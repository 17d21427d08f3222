package hub_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/medassist/medassist/hub"
	"github.com/medassist/medassist/hub/hubtest"
	"github.com/medassist/medassist/internal/testutil"
)

// The fixture and the layout huggingface_hub's snapshot_download wrote for it
// (tools/oracle/hub_cache_layout.py).
type fixture struct {
	Repos []struct {
		ID      string   `json:"id"`
		Type    string   `json:"type"`
		Pull    []string `json:"pull"`
		Commits []struct {
			SHA   string   `json:"sha"`
			Refs  []string `json:"refs"`
			Files []struct {
				Path    string `json:"path"`
				LFS     bool   `json:"lfs"`
				Content string `json:"content"`
			} `json:"files"`
		} `json:"commits"`
	} `json:"repos"`
}

type layoutEntry struct {
	Path   string `json:"path"`
	Kind   string `json:"kind"`
	Target string `json:"target,omitempty"`
	SHA256 string `json:"sha256,omitempty"`
}

type goldenLayout struct {
	Version string `json:"huggingface_hub"`
	Repos   []struct {
		Folder  string        `json:"folder"`
		Entries []layoutEntry `json:"entries"`
	} `json:"repos"`
}

func readJSON(t *testing.T, name string, v any) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testutil.RepoRoot(), "testdata", "hub", name))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
}

func fixtureServer(t *testing.T, fx fixture) *hubtest.Server {
	var repos []hubtest.Repo
	for _, r := range fx.Repos {
		hr := hubtest.Repo{ID: r.ID, Type: r.Type}
		for _, c := range r.Commits {
			hc := hubtest.Commit{SHA: c.SHA, Refs: c.Refs}
			for _, f := range c.Files {
				hc.Files = append(hc.Files, hubtest.File{Path: f.Path, Data: []byte(f.Content), LFS: f.LFS})
			}
			hr.Commits = append(hr.Commits, hc)
		}
		repos = append(repos, hr)
	}
	return hubtest.New(t, hubtest.Options{CDN: true}, repos...)
}

func walkLayout(t *testing.T, dir string) []layoutEntry {
	t.Helper()
	var out []layoutEntry
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		e := layoutEntry{Path: filepath.ToSlash(rel)}
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			e.Kind = "link"
			e.Target, err = os.Readlink(p)
		case d.IsDir():
			e.Kind = "dir"
		default:
			var b []byte
			b, err = os.ReadFile(p)
			sum := sha256.Sum256(b)
			e.Kind, e.SHA256 = "file", hex.EncodeToString(sum[:])
		}
		out = append(out, e)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

// TestLayoutMatchesHuggingFaceHub pulls the fixture and compares every entry of the cache with
// what huggingface_hub wrote for the same repositories.
func TestLayoutMatchesHuggingFaceHub(t *testing.T) {
	var fx fixture
	var golden goldenLayout
	readJSON(t, "fixture.json", &fx)
	readJSON(t, "hf_layout.json", &golden)
	s := fixtureServer(t, fx)
	c, cfg := newClient(t, s, nil)
	for i, r := range fx.Repos {
		rt, _ := hub.ParseRepoType(r.Type)
		for _, rev := range r.Pull {
			if _, err := c.Snapshot(context.Background(), r.ID, rt, rev, nil); err != nil {
				t.Fatal(err)
			}
		}
		want := golden.Repos[i]
		got := walkLayout(t, filepath.Join(cfg.CacheDir, want.Folder))
		if len(got) != len(want.Entries) {
			t.Errorf("%s: %d entries, huggingface_hub %s wrote %d", want.Folder, len(got), golden.Version, len(want.Entries))
		}
		for j := range min(len(got), len(want.Entries)) {
			if got[j] != want.Entries[j] {
				t.Errorf("%s: entry %d = %+v, huggingface_hub wrote %+v", want.Folder, j, got[j], want.Entries[j])
			}
		}
	}
}

// TestReusesHuggingFaceHubCache rebuilds the cache huggingface_hub wrote and pulls again:
// nothing is downloaded, not even a file's metadata.
func TestReusesHuggingFaceHubCache(t *testing.T) {
	var fx fixture
	var golden goldenLayout
	readJSON(t, "fixture.json", &fx)
	readJSON(t, "hf_layout.json", &golden)
	byHash := map[string][]byte{}
	for _, r := range fx.Repos {
		for _, c := range r.Commits {
			byHash[sha256Hex([]byte(c.SHA))] = []byte(c.SHA) // refs hold commit hashes
			for _, f := range c.Files {
				byHash[sha256Hex([]byte(f.Content))] = []byte(f.Content)
			}
		}
	}
	s := fixtureServer(t, fx)
	c, cfg := newClient(t, s, nil)
	for _, repo := range golden.Repos {
		root := filepath.Join(cfg.CacheDir, repo.Folder)
		for _, e := range repo.Entries {
			p := filepath.Join(root, filepath.FromSlash(e.Path))
			var err error
			switch e.Kind {
			case "dir":
				err = os.MkdirAll(p, 0o755)
			case "link":
				err = os.Symlink(e.Target, p)
			default:
				data, ok := byHash[e.SHA256]
				if !ok {
					t.Fatalf("no fixture content for %s", e.Path)
				}
				err = os.WriteFile(p, data, 0o644)
			}
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, r := range fx.Repos {
		rt, _ := hub.ParseRepoType(r.Type)
		for _, rev := range r.Pull {
			if _, err := c.Snapshot(context.Background(), r.ID, rt, rev, nil); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, req := range s.Requests() {
		if req.Method != "GET" || req.Server != "hub" || !strings.HasPrefix(req.Path, "/api/") {
			t.Errorf("request on a complete cache: %+v", req)
		}
	}
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
