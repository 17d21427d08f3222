package tokenizer

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

func TestLoadSpecialTokens(t *testing.T) {
	for _, c := range []struct {
		model int
		vocab int
	}{{0, 512}, {1, 32000}} {
		m := goldenModels[c.model]
		tok := loadTokenizer(t, m.dir(t))
		if tok.VocabSize() != c.vocab || tok.BOS() != 1 || tok.EOS() != 2 || tok.UNK() != 0 {
			t.Errorf("%s: vocab %d bos %d eos %d unk %d, want %d 1 2 0", m.name, tok.VocabSize(), tok.BOS(), tok.EOS(), tok.UNK(), c.vocab)
		}
		for id, want := range map[int]bool{-1: false, 0: true, 1: true, 2: true, 3: false, 13: false, c.vocab: false, 1 << 30: false} {
			if tok.IsSpecial(id) != want {
				t.Errorf("%s: IsSpecial(%d) = %v", m.name, id, !want)
			}
		}
		if !slices.Equal(tok.prefix, []int{1}) || len(tok.suffix) != 0 {
			t.Errorf("%s: post-processor adds %v ... %v, want [1] ... []", m.name, tok.prefix, tok.suffix)
		}
		if !tok.isByte(3) || !tok.isByte(258) || tok.isByte(259) || tok.isByte(2) {
			t.Errorf("%s: byte tokens should be ids 3..258", m.name)
		}
	}
}

// copyTokenizer puts the shared TinyLlama tokenizer.json in a fresh dir, with configJSON as
// tokenizer_config.json unless it is empty.
func copyTokenizer(t *testing.T, configJSON string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(goldenModels[1].dir(t), "tokenizer.json"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "tokenizer.json"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	if configJSON != "" {
		if err := os.WriteFile(filepath.Join(dir, "tokenizer_config.json"), []byte(configJSON), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestLoadTokenizerConfig(t *testing.T) {
	for _, c := range []struct {
		name, config  string
		bos, eos, unk int
		err           string
	}{
		{"no config: conventional names", "", 1, 2, 0, ""},
		{"object form", `{"bos_token": {"content": "<s>"}, "eos_token": {"content": "<unk>"}, "unk_token": null}`, 1, 0, -1, ""},
		{"eos absent", `{"bos_token": "<s>"}`, 1, -1, -1, ""},
		{"unknown token", `{"eos_token": "<|im_end|>"}`, 0, 0, 0, `eos_token "<|im_end|>" is not in`},
		{"bad json", `{"bos_token": `, 0, 0, 0, "parse"},
		{"bad type", `{"bos_token": 7}`, 0, 0, 0, "want a string"},
	} {
		t.Run(c.name, func(t *testing.T) {
			tok, err := Load(copyTokenizer(t, c.config))
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("err = %v, want one containing %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer tok.Close()
			if tok.BOS() != c.bos || tok.EOS() != c.eos || tok.UNK() != c.unk {
				t.Errorf("bos %d eos %d unk %d, want %d %d %d", tok.BOS(), tok.EOS(), tok.UNK(), c.bos, c.eos, c.unk)
			}
		})
	}
}

func TestLoadErrors(t *testing.T) {
	if _, err := Load(t.TempDir()); err == nil || !strings.Contains(err.Error(), "tokenizer.json") {
		t.Errorf("empty dir: err = %v, want one naming tokenizer.json", err)
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "tokenizer.json"), []byte(`{"model": {"vocab": {"a": 0}}, "added_tokens": []`), 0o644)
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), "parse tokenizer.json") {
		t.Errorf("truncated tokenizer.json: err = %v", err)
	}
	os.WriteFile(filepath.Join(dir, "tokenizer.json"), []byte(`{"model": {"type": "Nope", "vocab": {"a": 0}}}`), 0o644)
	if _, err := Load(dir); err == nil {
		t.Errorf("unknown model type: no error")
	}
}

// TestEncodeRenderedUserSpecials: the template's </s> is EOS; the user's </s> and <s> are text.
func TestEncodeRenderedUserSpecials(t *testing.T) {
	tok := loadTokenizer(t, goldenModels[1].dir(t))
	user := "I typed </s> and <s>"
	text := "<|user|>\n" + user + "</s>\n<|assistant|>\n"
	start := len("<|user|>\n")
	ids := tok.EncodeRendered(text, [][2]int{{start, start + len(user)}, {-1, -1}}, true)
	if ids[0] != tok.BOS() {
		t.Fatalf("first id %d, want BOS", ids[0])
	}
	var specials []int
	for _, id := range ids {
		if tok.IsSpecial(id) {
			specials = append(specials, id)
		}
	}
	if !slices.Equal(specials, []int{tok.BOS(), tok.EOS()}) {
		t.Fatalf("special ids %v in %v, want only BOS and the template's EOS", specials, ids)
	}
	if got := tok.Decode(ids, false); got != "<s> "+text[:len(text)-len("</s>\n<|assistant|>\n")]+"</s> \n<|assistant|>\n" {
		t.Errorf("decodes to %q", got)
	}
	if plain := tok.Encode(text, true); slices.Equal(plain, ids) {
		t.Errorf("Encode (which parses the user's </s>) should differ from EncodeRendered")
	}
	// A special token cut by a range boundary is text: "</" from the template, "s>" from the user.
	cut := "a</" + "s>b"
	if got, want := tok.EncodeRendered(cut, [][2]int{{3, 5}}, false), tok.EncodeText(cut); !slices.Equal(got, want) {
		t.Errorf("straddling </s>: %v, want %v", got, want)
	}
	// Out-of-range spans are clamped.
	if got, want := tok.EncodeRendered("x</s>", [][2]int{{1, 99}}, false), tok.EncodeText("x</s>"); !slices.Equal(got, want) {
		t.Errorf("clamped span: %v, want %v", got, want)
	}
}

func TestNul(t *testing.T) {
	tok := loadTokenizer(t, goldenModels[1].dir(t))
	ids := tok.Encode("a\x00b", true)
	if !slices.Equal(ids, []int{1, 263, 3, 29890}) {
		t.Fatalf("Encode(a NUL b) = %v, want [1 263 3 29890] as HF", ids)
	}
	if got := tok.Decode(ids, true); got != "a\x00b" {
		t.Fatalf("Decode = %q", got)
	}
	if !tok.nul.ok {
		t.Fatalf("no NUL stand-ins found for TinyLlama")
	}
	// Stand-ins in the text itself keep their own ids.
	a := string(rune(tok.nul.a.ch))
	s := a + "\x00" + a + "\x00\x00"
	got := tok.Encode(s, false)
	nulID, aID := tok.v.byteID(0), tok.v.byteID(tok.nul.a.ch)
	if len(got) != 6 || got[1] != aID || got[2] != nulID || got[3] != aID || got[4] != nulID || got[5] != nulID {
		t.Fatalf("Encode(%q) = %v", s, got)
	}
	if d := tok.Decode(got, false); d != s {
		t.Fatalf("Decode(%v) = %q, want %q", got, d, s)
	}
}

func TestByteToken(t *testing.T) {
	for s, want := range map[string]int16{"<0x00>": 0, "<0x0A>": 10, "<0xff>": 255, "<0xFF>": 255, "<0x0G>": -1, "<0x0A": -1, "0x0A>": -1, "<0x0AA>": -1, "▁": -1} {
		if got := byteToken(s); got != want {
			t.Errorf("byteToken(%q) = %d, want %d", s, got, want)
		}
	}
}

func TestNormalizeSpans(t *testing.T) {
	got := normalizeSpans([][2]int{{8, 12}, {-1, -1}, {3, 5}, {4, 7}, {10, 30}, {6, 6}, {25, 28}}, 20)
	if want := [][2]int{{3, 7}, {8, 20}}; !slices.Equal(got, want) {
		t.Errorf("normalizeSpans = %v, want %v", got, want)
	}
}

// TestConcurrentUse: one Tokenizer serves several goroutines.
func TestConcurrentUse(t *testing.T) {
	tok := loadTokenizer(t, goldenModels[1].dir(t))
	golden := readJSONL[goldenText](t, "golden.jsonl")[:200]
	var wg sync.WaitGroup
	errs := make(chan string, 4)
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, g := range golden {
				want := g.Models[goldenModels[1].name]
				if !slices.Equal(tok.Encode(g.Text, true), want.IDs) || tok.Decode(want.IDs, true) != want.DecodeSkip {
					errs <- g.Text
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for s := range errs {
		t.Errorf("concurrent encode/decode of %q differs from HF", s)
	}
}
