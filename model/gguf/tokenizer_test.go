package gguf

import (
	"bufio"
	"compress/gzip"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/medassist/medassist/internal/testutil"
	"github.com/medassist/medassist/model"
	"github.com/medassist/medassist/tokenizer"
)

// tinyLlamaVocab opens testdata/gguf/tinyllama-vocab.gguf.gz: TinyLlama's tokenizer as llama.cpp's
// convert_hf_to_gguf.py --vocab-only writes it (a llama/SentencePiece tokenizer, no tensors).
func tinyLlamaVocab(t testing.TB) *Vocab {
	t.Helper()
	in, err := os.Open(testdata("tinyllama-vocab.gguf.gz"))
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	zr, err := gzip.NewReader(in)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "tinyllama-vocab.gguf")
	out, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, zr); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	return readVocab(t, path)
}

func readVocab(t testing.TB, path string) *Vocab {
	t.Helper()
	gf, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer gf.Close()
	v, err := gf.ReadVocab()
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// loadTokenizer writes v's tokenizer.json and tokenizer_config.json into a temp dir and loads them
// with the project's tokenizer package (Hugging Face tokenizers' Rust core).
func loadTokenizer(t testing.TB, v *Vocab) *tokenizer.Tokenizer {
	t.Helper()
	dir := t.TempDir()
	tj, err := v.TokenizerJSON()
	if err != nil {
		t.Fatal(err)
	}
	tc, err := v.TokenizerConfigJSON(2048)
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{"tokenizer.json": tj, model.TokenizerConfigFile: tc} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tok, err := tokenizer.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tok.Close() })
	return tok
}

// The merges derived from SentencePiece scores are those of TinyLlama's own tokenizer.json.
func TestSPMMergesMatchHuggingFace(t *testing.T) {
	v := tinyLlamaVocab(t)
	b, err := os.ReadFile(filepath.Join(testutil.TinyLlamaConfig(t), "tokenizer.json"))
	if err != nil {
		t.Fatal(err)
	}
	var tj struct {
		Model struct {
			Merges []string `json:"merges"`
		} `json:"model"`
	}
	if err := json.Unmarshal(b, &tj); err != nil {
		t.Fatal(err)
	}
	got := v.spmMerges()
	for i := range min(len(got), len(tj.Model.Merges)) {
		if got[i] != tj.Model.Merges[i] {
			t.Fatalf("merge %d: %q, Hugging Face %q", i, got[i], tj.Model.Merges[i])
		}
	}
	if len(got) != len(tj.Model.Merges) {
		t.Fatalf("%d merges, Hugging Face has %d", len(got), len(tj.Model.Merges))
	}
}

// hfGolden is one line of testdata/tokenizer/golden.jsonl (Hugging Face tokenizers on the
// models' own tokenizer.json).
type hfGolden struct {
	Text      string `json:"text"`
	TinyLlama struct {
		IDs     []int  `json:"ids"`
		IDsText []int  `json:"ids_text"`
		Decode  string `json:"decode_skip"`
	} `json:"tinyllama-1.1b-chat-v1.0"`
}

// readJSONL reads a JSON Lines file, gunzipped when its name ends in .gz.
func readJSONL[T any](t testing.TB, path string) []T {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var r io.Reader = f
	if strings.HasSuffix(path, ".gz") {
		zr, err := gzip.NewReader(f)
		if err != nil {
			t.Fatal(err)
		}
		r = zr
	}
	var out []T
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		var x T
		if err := json.Unmarshal(sc.Bytes(), &x); err != nil {
			t.Fatal(err)
		}
		out = append(out, x)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// A tokenizer.json rebuilt from TinyLlama's GGUF vocabulary encodes and decodes like TinyLlama's
// own tokenizer.json on every golden string.
func TestLlamaVocabMatchesHuggingFaceTokenizer(t *testing.T) {
	tok := loadTokenizer(t, tinyLlamaVocab(t))
	golden := readJSONL[hfGolden](t, filepath.Join(testutil.RepoRoot(), "testdata", "tokenizer", "golden.jsonl"))
	if len(golden) < 1000 {
		t.Fatalf("only %d golden strings", len(golden))
	}
	bad := 0
	for _, g := range golden {
		if got := tok.Encode(g.Text, true); !slices.Equal(got, g.TinyLlama.IDs) {
			if bad++; bad <= 5 {
				t.Errorf("encode %q:\n got %v\nwant %v", g.Text, got, g.TinyLlama.IDs)
			}
			continue
		}
		if got := tok.EncodeText(g.Text); !slices.Equal(got, g.TinyLlama.IDsText) {
			if bad++; bad <= 5 {
				t.Errorf("encode as text %q:\n got %v\nwant %v", g.Text, got, g.TinyLlama.IDsText)
			}
			continue
		}
		if got := tok.Decode(g.TinyLlama.IDs, true); got != g.TinyLlama.Decode {
			if bad++; bad <= 5 {
				t.Errorf("decode %v: %q, want %q", g.TinyLlama.IDs, got, g.TinyLlama.Decode)
			}
		}
	}
	if bad > 0 {
		t.Fatalf("%d of %d strings differ", bad, len(golden))
	}
}

// Unknown pre-tokenizers and tokenizer models are refused, naming what is supported.
func TestVocabRefusesUnknownTokenizers(t *testing.T) {
	v := &Vocab{Model: "gpt2", Pre: "made-up", Tokens: []string{"a"}, Merges: []string{"a a"}, BOS: -1, EOS: -1, UNK: -1, PAD: -1, EOT: -1}
	if err := v.validate(); err == nil || !strings.Contains(err.Error(), `"made-up" is not supported`) || !strings.Contains(err.Error(), "smollm") {
		t.Fatalf("unknown pre: %v", err)
	}
	v.Pre, v.Model = "smollm", "bert"
	if err := v.validate(); err == nil || !strings.Contains(err.Error(), "bert") {
		t.Fatalf("unknown model: %v", err)
	}
}

// llamaCppGolden is one line of testdata/gguf/tokenizer.jsonl.gz: llama.cpp's ids for a string under
// each tokenizer variant (tools/oracle/gguf_tokenizer_golden.py).
type llamaCppGolden map[string]json.RawMessage

// The rebuilt tokenizers encode as llama.cpp itself does (llama_tokenize with add_special and
// parse_special, as llama-tokenize runs) on every golden string: SmolLM2's own file, its vocabulary
// under each other supported pre-tokenizer, and TinyLlama's SentencePiece vocabulary. The strings
// with NUL bytes also check the tokenizer package's NUL handling for byte-level vocabularies.
func TestTokenizerMatchesLlamaCpp(t *testing.T) {
	golden := readJSONL[llamaCppGolden](t, testdata("tokenizer.jsonl.gz"))
	if len(golden) < 1000 {
		t.Fatalf("only %d golden strings", len(golden))
	}
	smol := readVocab(t, testutil.SmolLM2GGUF(t))
	variants := map[string]*Vocab{"smollm": smol, "llama-spm": tinyLlamaVocab(t)}
	for _, pre := range []string{"gpt-2", "llama-bpe", "qwen2", "default"} {
		v := *smol
		v.Pre = pre
		variants[pre] = &v
	}
	for name, v := range variants {
		t.Run(name, func(t *testing.T) {
			tok := loadTokenizer(t, v)
			bad := 0
			for _, g := range golden {
				var text string
				var want []int
				if err := json.Unmarshal(g["text"], &text); err != nil {
					t.Fatal(err)
				}
				if err := json.Unmarshal(g[name], &want); err != nil {
					t.Fatalf("golden has no %s ids: %v", name, err)
				}
				if got := tok.Encode(text, true); !slices.Equal(got, want) {
					if bad++; bad <= 5 {
						t.Errorf("%q:\n got %v\nwant %v", text, got, want)
					}
					continue
				}
				// NUL bytes come back from decoding (bytes outside the vocabulary, here some control
				// characters, are dropped by llama.cpp and Hugging Face alike).
				if back := tok.Decode(want, false); strings.Count(back, "\x00") != strings.Count(text, "\x00") {
					if bad++; bad <= 5 {
						t.Errorf("decode %v: %q, want %q", want, back, text)
					}
				}
			}
			t.Logf("%s: %d of %d strings equal llama.cpp", name, len(golden)-bad, len(golden))
			if bad > 0 {
				t.Fatalf("%d of %d strings differ from llama.cpp", bad, len(golden))
			}
		})
	}
}
