package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/medassist/medassist/internal/testutil"
)

// buildMedassist builds this command into a temp dir and returns the binary's path.
func buildMedassist(t *testing.T) string {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		testutil.Missing(t, "go tool not found: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "medassist")
	cmd := exec.Command(goTool, "build", "-o", bin, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// tokenizeGolden is one line of testdata/tokenizer/golden.jsonl (written by
// tools/oracle/tokenizer_golden.py from HF tokenizers).
type tokenizeGolden struct {
	text string
	ids  map[string][2][]int // model → {add_special_tokens=true, false}
}

func readTokenizeGolden(t *testing.T) []tokenizeGolden {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(testutil.RepoRoot(), "testdata", "tokenizer", "golden.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	var out []tokenizeGolden
	for _, line := range bytes.Split(bytes.TrimSpace(data), []byte("\n")) {
		var raw map[string]json.RawMessage
		if err := json.Unmarshal(line, &raw); err != nil {
			t.Fatal(err)
		}
		g := tokenizeGolden{ids: map[string][2][]int{}}
		for k, v := range raw {
			if k == "text" {
				json.Unmarshal(v, &g.text)
				continue
			}
			var m struct {
				IDs          []int `json:"ids"`
				IDsNoSpecial []int `json:"ids_no_special"`
			}
			if err := json.Unmarshal(v, &m); err != nil {
				t.Fatal(err)
			}
			g.ids[k] = [2][]int{m.IDs, m.IDsNoSpecial}
		}
		out = append(out, g)
	}
	return out
}

func TestTokenizeCommand(t *testing.T) {
	models := map[string]string{
		"stories260K":              testutil.Stories260K(t),
		"tinyllama-1.1b-chat-v1.0": testutil.TinyLlamaConfig(t),
	}
	bin := buildMedassist(t)
	golden := readTokenizeGolden(t)
	var input bytes.Buffer
	for _, g := range golden {
		line, _ := json.Marshal(g.text)
		input.Write(append(line, '\n'))
	}

	for name, dir := range models {
		for mode, flags := range map[int][]string{0: nil, 1: {"--no-special"}} {
			t.Run(name+strings.Join(flags, ""), func(t *testing.T) {
				cmd := exec.Command(bin, append([]string{"tokenize", "--model", dir}, flags...)...)
				cmd.Stdin = bytes.NewReader(input.Bytes())
				var stderr bytes.Buffer
				cmd.Stderr = &stderr
				out, err := cmd.Output()
				if err != nil {
					t.Fatalf("tokenize: %v\n%s", err, stderr.String())
				}
				lines := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
				if len(lines) != len(golden) {
					t.Fatalf("%d output lines for %d input lines", len(lines), len(golden))
				}
				match := 0
				for i, line := range lines {
					var ids []int
					if err := json.Unmarshal([]byte(line), &ids); err != nil || ids == nil {
						t.Fatalf("output line %d %q: not a JSON array of ids: %v", i+1, line, err)
					}
					if want := golden[i].ids[name][mode]; slices.Equal(ids, want) {
						match++
					} else if i-match < 5 {
						t.Errorf("line %d %q: %v, want %v", i+1, golden[i].text, ids, want)
					}
				}
				t.Logf("%s %v: %d/%d lines equal HF", name, flags, match, len(golden))
			})
		}
	}

	dir := models["tinyllama-1.1b-chat-v1.0"]
	t.Run("bad line", func(t *testing.T) {
		for _, c := range []struct {
			input, want string
			good        int // lines before the bad one, whose ids are still written
		}{
			{"\"hi\"\n{\"text\": 1}\n\"never read\"\n", "stdin line 2: want one JSON string per line", 1},
			{"\"hi\"\n\"hi\"\n\n\"hi\"\n", "stdin line 3: empty line", 2},
			{"\"hi\"\n\"unterminated\n", "stdin line 2: invalid JSON string", 1},
			{"\"a\" \"b\"\n", "stdin line 1: invalid JSON string", 0},
		} {
			cmd := exec.Command(bin, "tokenize", "--model", dir)
			cmd.Stdin = strings.NewReader(c.input)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() == 0 {
				t.Errorf("input %q: err = %v, want a non-zero exit", c.input, err)
			}
			if !strings.Contains(stderr.String(), c.want) {
				t.Errorf("input %q: stderr %q, want it to contain %q", c.input, stderr.String(), c.want)
			}
			if want := strings.Repeat("[1,7251]\n", c.good); string(out) != want {
				t.Errorf("input %q: stdout %q, want %q (the lines before the bad one)", c.input, out, want)
			}
		}
	})

	t.Run("missing model", func(t *testing.T) {
		cmd := exec.Command(bin, "tokenize")
		cmd.Stdin = strings.NewReader("\"x\"\n")
		out, err := cmd.CombinedOutput()
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 2 || !strings.Contains(string(out), "model") {
			t.Errorf("no --model: err %v, output %q; want exit 2 naming the model flag", err, out)
		}
	})

	// Output comes line by line while stdin is still open: the command streams.
	t.Run("streams", func(t *testing.T) {
		cmd := exec.Command(bin, "tokenize", "--model", dir, "--no-special")
		stdin, _ := cmd.StdinPipe()
		stdout, _ := cmd.StdoutPipe()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer cmd.Wait()
		defer stdin.Close()
		r := bufio.NewReader(stdout)
		for _, c := range []struct{ in, want string }{{`"hi"`, "[7251]\n"}, {`"</s>"`, "[2]\n"}} {
			io.WriteString(stdin, c.in+"\n")
			got := make(chan string, 1)
			go func() { line, _ := r.ReadString('\n'); got <- line }()
			select {
			case line := <-got:
				if line != c.want {
					t.Fatalf("%s: got %q, want %q", c.in, line, c.want)
				}
			case <-time.After(20 * time.Second):
				cmd.Process.Kill()
				t.Fatalf("%s: no output line while stdin stays open", c.in)
			}
		}
	})
}
