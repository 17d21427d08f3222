package hub

import (
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// Expected values computed with Python's fnmatch.fnmatch, which huggingface_hub uses for patterns.
func TestMatcherIsFnmatch(t *testing.T) {
	cases := []struct {
		pat, name string
		want      bool
	}{
		{"*.json", "config.json", true},
		{"*.json", "sub/x.json", true},
		{"*.json", "config.jsonl", false},
		{"tokenizer.*", "tokenizer.model", true},
		{"tok?nizer.json", "tokenizer.json", true},
		{"[abc]*.bin", "a.bin", true},
		{"[!abc]*.bin", "a.bin", false},
		{"[!abc]*.bin", "d.bin", true},
		{"model-0000[1-2]-of-00002.safetensors", "model-00001-of-00002.safetensors", true},
		{"model-0000[1-2]-of-00002.safetensors", "model-00003-of-00002.safetensors", false},
		{"[", "[", true},
		{"a[", "a[", true},
		{"[]]x", "]x", true},
		{"[!]]x", "]x", false},
		{"[!]]x", "ax", true},
		{"onnx/*", "onnx/model.onnx", true},
		{"onnx/*", "x/onnx/model.onnx", false},
		{"*", ".gitattributes", true},
		{"a.b", "axb", false},
		{"(x)+", "(x)+", true},
		{"*.Json", "config.json", false},
		{"[^a]", "^", true},
		{"[^a]", "b", false},
		{`[a-c\]`, `\`, true},
		{"sub/*/x", "sub/a/b/x", true},
	}
	for _, tc := range cases {
		m, err := newMatcher([]string{tc.pat})
		if err != nil {
			t.Fatalf("%q: %v", tc.pat, err)
		}
		if got := m.match(tc.name); got != tc.want {
			t.Errorf("fnmatch(%q, %q) = %v, want %v", tc.name, tc.pat, got, tc.want)
		}
	}
}

func TestSelectFilesDefaults(t *testing.T) {
	files := []string{"config.json", "model.safetensors", "pytorch_model.bin", "tf_model.h5", "flax_model.msgpack",
		"model.gguf", "onnx/model.onnx", "tokenizer.model", "training_args.bin"}
	all, _ := newMatcher(nil)
	got, skipped := selectFiles(files, Model, all)
	if want := []string{"config.json", "model.safetensors", "tokenizer.model"}; !slices.Equal(got, want) || skipped != 6 {
		t.Fatalf("model with safetensors: %v (skipped %d), want %v", got, skipped, want)
	}
	noST := []string{"config.json", "pytorch_model.bin"}
	if got, _ := selectFiles(noST, Model, all); !slices.Equal(got, noST) {
		t.Fatalf("without safetensors every file is kept: %v", got)
	}
	if got, _ := selectFiles(files, Dataset, all); !slices.Equal(got, files) {
		t.Fatalf("datasets get no defaults: %v", got)
	}
}

func TestParseFileMeta(t *testing.T) {
	const commit = "0123456789abcdef0123456789abcdef01234567"
	sha := "22a24931700539eed53176a75b5d623ae728f3a9f8b82605c4dfa2667ed305ee"
	lfs := http.Header{"X-Repo-Commit": {commit}, "Etag": {`"pointer"`}, "X-Linked-Etag": {`"` + sha + `"`},
		"X-Linked-Size": {"2200"}, "Content-Length": {"0"}}
	m, err := parseFileMeta(lfs, http.StatusFound, commit)
	if err != nil || m.etag != sha || m.sha256 != sha || m.size != 2200 {
		t.Fatalf("LFS redirect: %+v, %v", m, err)
	}
	plain := http.Header{"X-Repo-Commit": {commit}, "Etag": {`W/"bbe89e8c3a6efb55f80e01cabfeeb6021f9481cc"`}, "Content-Length": {"13"}}
	m, err = parseFileMeta(plain, http.StatusOK, commit)
	if err != nil || m.etag != "bbe89e8c3a6efb55f80e01cabfeeb6021f9481cc" || m.sha256 != "" || m.size != 13 {
		t.Fatalf("regular file: %+v, %v", m, err)
	}
	// A redirect's own Content-Length is not the file's size.
	noSize := http.Header{"Etag": {`"abc"`}, "Content-Length": {"0"}}
	if m, _ := parseFileMeta(noSize, http.StatusFound, commit); m.size != -1 {
		t.Fatalf("size from a redirect's Content-Length: %+v", m)
	}
	for name, h := range map[string]http.Header{
		"no etag":      {"X-Repo-Commit": {commit}},
		"path etag":    {"Etag": {`"../../x"`}},
		"other commit": {"X-Repo-Commit": {"ffffffffffffffffffffffffffffffffffffffff"}, "Etag": {`"abc"`}},
		"bad size":     {"Etag": {`"abc"`}, "X-Linked-Size": {"-3"}},
	} {
		if _, err := parseFileMeta(h, http.StatusOK, commit); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestFromEnv(t *testing.T) {
	home := t.TempDir()
	env := func(kv map[string]string) func(string) string {
		return func(k string) string { return kv[k] }
	}
	c := FromEnv(env(map[string]string{"HOME": home}))
	if c.CacheDir != filepath.Join(home, ".cache", "huggingface", "hub") || c.Endpoint != DefaultEndpoint || c.Offline || c.Token != "" {
		t.Fatalf("defaults: %+v", c)
	}
	if c := FromEnv(env(map[string]string{"HOME": home, "XDG_CACHE_HOME": "/xdg"})); c.CacheDir != "/xdg/huggingface/hub" {
		t.Fatalf("XDG_CACHE_HOME: %s", c.CacheDir)
	}
	hfHome := filepath.Join(home, "hf")
	os.MkdirAll(hfHome, 0o755)
	os.WriteFile(filepath.Join(hfHome, "token"), []byte("hf_fromfile\n"), 0o600)
	c = FromEnv(env(map[string]string{"HOME": home, "HF_HOME": "~/hf", "HF_ENDPOINT": "https://mirror.example/", "HF_HUB_OFFLINE": "yes"}))
	if c.CacheDir != filepath.Join(hfHome, "hub") || c.Token != "hf_fromfile" || c.Endpoint != "https://mirror.example" || !c.Offline {
		t.Fatalf("HF_HOME etc.: %+v", c)
	}
	c = FromEnv(env(map[string]string{"HOME": home, "HF_HOME": hfHome, "HF_HUB_CACHE": "$HOME/hubcache", "HF_TOKEN": "hf_env", "HF_HUB_OFFLINE": "0"}))
	if c.CacheDir != filepath.Join(home, "hubcache") || c.Token != "hf_env" || c.Offline {
		t.Fatalf("HF_HUB_CACHE, HF_TOKEN: %+v", c)
	}
	if c := FromEnv(env(map[string]string{"HOME": home, "HUGGINGFACE_HUB_CACHE": "/legacy", "TRANSFORMERS_OFFLINE": "1"})); c.CacheDir != "/legacy" || !c.Offline {
		t.Fatalf("legacy variables: %+v", c)
	}
	bad := Config{Endpoint: "ftp://x", MaxRetries: -1}
	if err := bad.Validate(); err == nil {
		t.Fatal("bad config accepted")
	}
}
