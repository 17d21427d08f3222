package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

type testConfig struct {
	Addr      string  `koanf:"addr"`
	MaxTokens int     `koanf:"max-tokens"`
	Temp      float64 `koanf:"temperature"`
	Guard     struct {
		MaxChars int `koanf:"max-chars"`
	} `koanf:"guard"`
}

func (c *testConfig) Validate() error {
	return Join(
		Check(c.MaxTokens >= 1 && c.MaxTokens <= 4096, "max-tokens", c.MaxTokens, "between 1 and 4096"),
		Check(c.Temp >= 0, "temperature", c.Temp, ">= 0"),
	)
}

func flags() *pflag.FlagSet {
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	fs.String("addr", ":7860", "")
	fs.Int("max-tokens", 256, "")
	fs.Float64("temperature", 0.7, "")
	fs.Int("guard.max-chars", 4000, "")
	return fs
}

func TestPrecedence(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "c.yaml")
	os.WriteFile(path, []byte("temperature: 0.1\nserve:\n  addr: ':9000'\n  max-tokens: 100\n  guard:\n    max-chars: 10\ntrain:\n  addr: ':1'\n"), 0o644)

	fs := flags()
	if err := fs.Parse([]string{"--temperature=0.3"}); err != nil {
		t.Fatal(err)
	}
	t.Setenv("MEDASSIST_MAX_TOKENS", "200")
	t.Setenv("MEDASSIST_GUARD__MAX_CHARS", "20")
	var c testConfig
	if err := Load(&c, "serve", path, fs); err != nil {
		t.Fatal(err)
	}
	// file section beats defaults; env beats file; flags beat env and file.
	if c.Addr != ":9000" || c.MaxTokens != 200 || c.Temp != 0.3 || c.Guard.MaxChars != 20 {
		t.Fatalf("got %+v", c)
	}
}

// TestLayers: the layers a command adds itself (below) sit above the flag defaults and under the
// file, the environment and the flags; Explicit names only the keys of the last three.
func TestLayers(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.yaml")
	os.WriteFile(path, []byte("serve:\n  addr: ':9000'\n"), 0o644)
	t.Setenv("MEDASSIST_TEMPERATURE", "0.2")
	fs := flags()
	if err := fs.Parse([]string{"--guard.max-chars=5"}); err != nil {
		t.Fatal(err)
	}
	below := []map[string]any{{"addr": ":1", "max-tokens": 10, "temperature": 0.9}, {"max-tokens": 20}}
	var c testConfig
	if err := Load(&c, "serve", path, fs, below...); err != nil {
		t.Fatal(err)
	}
	if c.Addr != ":9000" || c.MaxTokens != 20 || c.Temp != 0.2 || c.Guard.MaxChars != 5 {
		t.Fatalf("got %+v", c)
	}
	keys, err := Explicit("serve", path, fs)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"addr", "temperature", "guard.max-chars"} {
		if !keys[k] {
			t.Errorf("Explicit lacks %q: %v", k, keys)
		}
	}
	if keys["max-tokens"] {
		t.Errorf("max-tokens was left to the defaults and the command's own layers: %v", keys)
	}
}

func TestDefaultsAndValidation(t *testing.T) {
	fs := flags()
	fs.Parse(nil)
	var c testConfig
	if err := Load(&c, "serve", "", fs); err != nil {
		t.Fatal(err)
	}
	if c.Addr != ":7860" || c.MaxTokens != 256 || c.Guard.MaxChars != 4000 {
		t.Fatalf("defaults not applied: %+v", c)
	}
	fs = flags()
	fs.Parse([]string{"--max-tokens=0", "--temperature=-1"})
	err := Load(&c, "serve", "", fs)
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Field != "max-tokens" {
		t.Fatalf("want field error naming max-tokens, got %v", err)
	}
	if got := err.Error(); !contains(got, "temperature") || !contains(got, "between 1 and 4096") {
		t.Fatalf("error should name every bad field and its range: %q", got)
	}
}

func TestMissingFile(t *testing.T) {
	var c testConfig
	if err := Load(&c, "serve", "/nonexistent.yaml", nil); err == nil {
		t.Fatal("want error for missing config file")
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }
