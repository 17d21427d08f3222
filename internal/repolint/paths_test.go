package repolint

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/medassist/medassist/internal/testutil"
)

// machinePath matches absolute paths that belong to one machine rather than to the repository:
// its work tree, root's and users' homes, and named files in /tmp. A path is absolute when
// nothing path-like stands before its slash (so out/tmp/x or $native/tmp/x do not count).
var machinePath = regexp.MustCompile(`(^|[^A-Za-z0-9_.~$}/])/(work|root|home/[A-Za-z0-9_.-]+|tmp/[A-Za-z0-9_.-]+)(/|\b)`)

// containerFile reports files that describe the container image's own file system, where
// /home/user (the Hugging Face Spaces user) and /tmp are the image's paths, not this machine's:
// the Dockerfile, docker/ and the container test (which writes stand-in images' Dockerfiles and
// checks paths inside the image).
func containerFile(path string) bool {
	return path == "Dockerfile" || strings.HasPrefix(path, "docker/") || path == "scripts/container-test.sh"
}

// imageHome reports files that may name the image's home, /home/user, when they document the
// container (the README's container section).
func imageHome(path string) bool { return containerFile(path) || path == "README.md" }

// machinePaths returns "file:line: text" for every machine path in text.
func machinePaths(path string, text []byte) []string {
	var hits []string
	for i, line := range strings.Split(string(text), "\n") {
		for _, m := range machinePath.FindAllStringSubmatch(line, -1) {
			if (imageHome(path) && m[2] == "home/user") || (containerFile(path) && strings.HasPrefix(m[2], "tmp/")) {
				continue
			}
			hits = append(hits, fmt.Sprintf("%s:%d: %s", path, i+1, strings.TrimSpace(line)))
			break
		}
	}
	return hits
}

// TestNoMachinePaths reads every tracked file (less generated protobuf code and binary files) and
// fails on any absolute path of a development machine: benchmarks, tests and docs take paths from
// flags, the environment or the repository (out/, ../shared through internal/testutil).
func TestNoMachinePaths(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		testutil.Missing(t, "git not found: %v", err)
	}
	root := testutil.RepoRoot()
	cmd := exec.Command("git", "ls-files", "-z")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		testutil.Missing(t, "git ls-files in %s (not a git checkout?): %v", root, err)
	}
	var hits []string
	files := 0
	for _, path := range strings.Split(strings.TrimRight(string(out), "\x00"), "\x00") {
		// This file's examples of machine paths are deliberate.
		if path == "" || strings.HasSuffix(path, ".pb.go") || path == "internal/repolint/paths_test.go" {
			continue
		}
		b, err := os.ReadFile(filepath.Join(root, path))
		if err != nil {
			if os.IsNotExist(err) { // deleted in the work tree, not yet committed
				continue
			}
			t.Fatal(err)
		}
		if bytes.IndexByte(b[:min(len(b), 8000)], 0) >= 0 { // binary
			continue
		}
		files++
		hits = append(hits, machinePaths(path, b)...)
	}
	t.Logf("%d text files checked", files)
	if files < 50 {
		t.Fatalf("only %d tracked text files: not the repository?", files)
	}
	if len(hits) > 0 {
		t.Errorf("absolute machine paths (use a flag, an environment variable or a path inside the repository):\n%s", strings.Join(hits, "\n"))
	}
}

// TestMachinePathPattern: the lines that held machine paths before they were removed are caught;
// repository-relative paths, URLs and the container's own paths are not.
func TestMachinePathPattern(t *testing.T) {
	for _, tc := range []struct {
		path, line string
		hit        bool
	}{
		{"bench/engine.sh", "CACHE=${CACHE:-" + "/work/cache}", true},
		{"bench/train.sh", "LOCK=${LOCK:-" + "/work/logs/heavy.lock}", true},
		{"BENCHMARKS.md", "fp32 + int4 in $CACHE (default `" + "/work/cache`)", true},
		{"model/large_test.go", "//	go test -c -o " + "/tmp/model.test ./model/", true},
		{"x.go", `dir := "` + "/root/models\"", true},
		{"README.md", "see " + "/home/alice/medassist", true},
		{"Dockerfile", "ENV HOME=" + "/home/user", false},
		{"Dockerfile", "ENV HF_HOME=" + "/tmp/hf", false},
		{"Dockerfile", "COPY x " + "/root/x", true},
		{"scripts/setup.sh", `local tmp=$native/tmp/ort`, false},
		{"bench/lib.sh", `BENCH_DIR=${BENCH_DIR:-$root/out/bench}`, false},
		{"README.md", "https://example.org/work/x", false},
		{"README.md", "../shared/models/stories260K", false},
		{"go.mod", "github.com/x/work/v2", false},
		{"bench/lib.sh", "[ -s \"$dir/config.json\" ] && return 0", false},
	} {
		if got := len(machinePaths(tc.path, []byte(tc.line))) > 0; got != tc.hit {
			t.Errorf("%s: %q: hit = %v, want %v", tc.path, tc.line, got, tc.hit)
		}
	}
}
