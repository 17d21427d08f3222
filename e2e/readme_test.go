// Package e2e runs the README's commands on a fresh clone, as a user would.
package e2e

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/medassist/medassist/internal/testutil"
)

// readmeBlock is the shell block between the readme-test markers of README.md.
func readmeBlock(t *testing.T) string {
	b, err := os.ReadFile(filepath.Join(testutil.RepoRoot(), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	i, j := strings.Index(s, "<!-- readme-test:begin -->"), strings.Index(s, "<!-- readme-test:end -->")
	if i < 0 || j < i {
		t.Fatal("README.md has no readme-test block")
	}
	block := s[i:j]
	start := strings.Index(block, "```sh\n")
	end := strings.LastIndex(block, "```")
	if start < 0 || end <= start {
		t.Fatal("readme-test block holds no ```sh fence")
	}
	return block[start+len("```sh\n") : end]
}

// TestReadmeQuickStart clones the repository next to ../shared and runs the README's quick-start block
// verbatim: make run on SmolLM2's GGUF file (import → train → merge → export → eval), serve, and one
// chat request.
func TestReadmeQuickStart(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the whole pipeline")
	}
	gguf := testutil.SmolLM2GGUF(t)
	testutil.Flashcards(t)
	testutil.MiniLM(t)
	testutil.ORTLibrary(t)
	if _, err := exec.LookPath("git"); err != nil {
		testutil.Missing(t, "git not found")
	}
	if _, err := exec.LookPath("curl"); err != nil {
		testutil.Missing(t, "curl not found")
	}
	root := testutil.RepoRoot()
	if _, err := os.Stat(filepath.Join(root, ".git")); err != nil {
		testutil.Missing(t, "not a git checkout")
	}
	tmp := t.TempDir()
	repo := filepath.Join(tmp, "repo")
	run(t, tmp, "git", "clone", "-q", root, repo)
	// The clone sits beside a "shared" folder, like the checkout does, and reuses the native
	// libraries `make setup` already installed (the clone's own setup then finds them present).
	must(t, os.Symlink(filepath.Dir(filepath.Dir(filepath.Dir(gguf))), filepath.Join(tmp, "shared")))
	must(t, os.Symlink(filepath.Join(root, ".cache"), filepath.Join(repo, ".cache")))

	script := "set -euo pipefail\n" + readmeBlock(t)
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-c", script)
	cmd.Dir = repo
	cmd.Env = cleanEnv()
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// Files, not pipes: the server the block leaves running in the background inherits them, and a
	// pipe would keep Wait waiting for it.
	outF, err := os.Create(filepath.Join(tmp, "stdout"))
	must(t, err)
	errF, err := os.Create(filepath.Join(tmp, "stderr"))
	must(t, err)
	cmd.Stdout, cmd.Stderr = outF, errF
	err = cmd.Run()
	if cmd.Process != nil {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM) // the server the block started in the background
	}
	outF.Close()
	errF.Close()
	stdout, _ := os.ReadFile(outF.Name())
	stderr, _ := os.ReadFile(errF.Name())
	if err != nil {
		t.Fatalf("README block failed: %v\nstdout:\n%s\nstderr (tail):\n%s", err, stdout, tail(string(stderr), 4000))
	}

	// The last line of stdout is the chat completion.
	lines := strings.Split(strings.TrimSpace(string(stdout)), "\n")
	var resp struct {
		Object  string `json:"object"`
		Choices []struct {
			Message      struct{ Content string } `json:"message"`
			FinishReason string                   `json:"finish_reason"`
		} `json:"choices"`
		Usage struct {
			CompletionTokens int `json:"completion_tokens"`
		} `json:"usage"`
	}
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &resp); err != nil {
		t.Fatalf("last output line is not a chat completion: %v\n%s", err, stdout)
	}
	if resp.Object != "chat.completion" || len(resp.Choices) != 1 || resp.Choices[0].Message.Content == "" || resp.Usage.CompletionTokens == 0 {
		t.Fatalf("unexpected completion: %+v", resp)
	}
	for _, f := range []string{"runs/quick/evaluation_results.json", "runs/quick/report/report.md", "runs/quick/experiment_results.csv",
		"runs/quick/adapter/adapter_model.safetensors", "runs/quick/merged/config.json", "runs/quick/onnx/model.onnx"} {
		if _, err := os.Stat(filepath.Join(repo, f)); err != nil {
			t.Errorf("README pipeline did not write %s: %v", f, err)
		}
	}
	var results struct {
		Perplexity struct {
			Base      float64 `json:"base"`
			FineTuned float64 `json:"fine_tuned"`
		} `json:"perplexity"`
	}
	b, err := os.ReadFile(filepath.Join(repo, "runs/quick/evaluation_results.json"))
	must(t, err)
	must(t, json.Unmarshal(b, &results))
	if !(results.Perplexity.FineTuned > 0 && results.Perplexity.FineTuned < results.Perplexity.Base) {
		t.Fatalf("fine-tuning did not lower validation perplexity: %+v", results.Perplexity)
	}
	t.Logf("perplexity base %.2f → fine-tuned %.2f; answer: %q", results.Perplexity.Base, results.Perplexity.FineTuned,
		resp.Choices[0].Message.Content)
}

// cleanEnv drops make's job-server variables so the nested make behaves as when a user types it.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		switch strings.SplitN(kv, "=", 2)[0] {
		case "MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES", "MEDASSIST_NATIVE_DIR", "MEDASSIST_ORT_LIB", "CGO_LDFLAGS":
			continue
		}
		env = append(env, kv)
	}
	return env
}

func run(t *testing.T, dir string, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
