package tokenizer

import (
	"bufio"
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/medassist/medassist/internal/testutil"
)

// The golden files are written by tools/oracle/tokenizer_golden.py from HF tokenizers.

// goldenModels are the shared tokenizers the golden files were made with.
var goldenModels = []struct {
	name string
	dir  func(testing.TB) string
}{
	{"stories260K", testutil.Stories260K},
	{"tinyllama-1.1b-chat-v1.0", testutil.TinyLlamaConfig},
}

type goldenIDs struct {
	IDs          []int  `json:"ids"`
	IDsNoSpecial []int  `json:"ids_no_special"`
	IDsText      []int  `json:"ids_text"`
	Decode       string `json:"decode"`
	DecodeSkip   string `json:"decode_skip"`
	IDsNoBOS     []int  `json:"ids_no_bos"`
}

// goldenText is a line of golden.jsonl or rendered.jsonl: a text and, per model, what HF made of it.
type goldenText struct {
	Text        string
	Untrusted   [][2]int
	UserSpecial bool
	Models      map[string]goldenIDs
}

func (g *goldenText) UnmarshalJSON(b []byte) error {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	g.Models = map[string]goldenIDs{}
	for k, v := range raw {
		var err error
		switch k {
		case "text":
			err = json.Unmarshal(v, &g.Text)
		case "untrusted":
			err = json.Unmarshal(v, &g.Untrusted)
		case "user_specials":
			err = json.Unmarshal(v, &g.UserSpecial)
		default:
			var ids goldenIDs
			err = json.Unmarshal(v, &ids)
			g.Models[k] = ids
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// goldenDecode is a line of decode.jsonl: random ids with HF's decodes.
type goldenDecode struct {
	Model      string `json:"model"`
	IDs        []int  `json:"ids"`
	Decode     string `json:"decode"`
	DecodeSkip string `json:"decode_skip"`
}

func readJSONL[T any](t testing.TB, name string) []T {
	t.Helper()
	f, err := os.Open(filepath.Join(testutil.RepoRoot(), "testdata", "tokenizer", name))
	if err != nil {
		t.Fatalf("golden file (regenerate with tools/oracle/tokenizer_golden.py): %v", err)
	}
	defer f.Close()
	var out []T
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		var v T
		if err := json.Unmarshal(sc.Bytes(), &v); err != nil {
			t.Fatalf("%s line %d: %v", name, len(out)+1, err)
		}
		out = append(out, v)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// loadTokenizer loads a shared model's tokenizer (skipping when ../shared is absent).
func loadTokenizer(t testing.TB, dir string) *Tokenizer {
	t.Helper()
	tok, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tok.Close() })
	return tok
}

// tally counts matches of one mode and reports the first few differences.
type tally struct {
	t           *testing.T
	model, mode string
	n, ok       int
}

func (c *tally) check(text string, got, want any, equal bool) {
	c.t.Helper()
	c.n++
	if equal {
		c.ok++
		return
	}
	if c.n-c.ok <= 5 {
		c.t.Errorf("%s %s %q:\n got %v\nwant %v", c.model, c.mode, text, got, want)
	}
}

func (c *tally) report() {
	c.t.Logf("%-26s %-34s %d/%d match", c.model, c.mode, c.ok, c.n)
}

func TestGoldenEncodeDecode(t *testing.T) {
	golden := readJSONL[goldenText](t, "golden.jsonl")
	if len(golden) < 1000 {
		t.Fatalf("golden.jsonl has %d strings, want at least 1000", len(golden))
	}
	for _, m := range goldenModels {
		t.Run(m.name, func(t *testing.T) {
			tok := loadTokenizer(t, m.dir(t))
			modes := map[string]*tally{}
			mode := func(name string) *tally {
				if modes[name] == nil {
					modes[name] = &tally{t: t, model: m.name, mode: name}
				}
				return modes[name]
			}
			for _, g := range golden {
				want, ok := g.Models[m.name]
				if !ok {
					t.Fatalf("golden.jsonl lacks %s for %q", m.name, g.Text)
				}
				s := g.Text
				got := tok.Encode(s, true)
				mode("Encode(add_special=true)").check(s, got, want.IDs, slices.Equal(got, want.IDs))
				got = tok.Encode(s, false)
				mode("Encode(add_special=false)").check(s, got, want.IDsNoSpecial, slices.Equal(got, want.IDsNoSpecial))
				got = tok.EncodeText(s)
				mode("EncodeText (encode_special_tokens)").check(s, got, want.IDsText, slices.Equal(got, want.IDsText))
				got = tok.EncodeRendered(s, nil, true)
				mode("EncodeRendered(all trusted, BOS)").check(s, got, want.IDs, slices.Equal(got, want.IDs))
				got = tok.EncodeRendered(s, nil, false)
				mode("EncodeRendered(all trusted)").check(s, got, want.IDsNoSpecial, slices.Equal(got, want.IDsNoSpecial))
				got = tok.EncodeRendered(s, [][2]int{{0, len(s)}}, false)
				mode("EncodeRendered(all untrusted)").check(s, got, want.IDsText, slices.Equal(got, want.IDsText))
				d := tok.Decode(want.IDs, false)
				mode("Decode(skip_special=false)").check(s, d, want.Decode, d == want.Decode)
				d = tok.Decode(want.IDs, true)
				mode("Decode(skip_special=true)").check(s, d, want.DecodeSkip, d == want.DecodeSkip)
			}
			for _, name := range slices.Sorted(maps.Keys(modes)) {
				modes[name].report()
			}
		})
	}
}

func TestGoldenDecodeRandomIDs(t *testing.T) {
	golden := readJSONL[goldenDecode](t, "decode.jsonl")
	for _, m := range goldenModels {
		t.Run(m.name, func(t *testing.T) {
			tok := loadTokenizer(t, m.dir(t))
			plain := &tally{t: t, model: m.name, mode: "Decode random ids"}
			skip := &tally{t: t, model: m.name, mode: "Decode random ids, skip special"}
			for _, g := range golden {
				if g.Model != m.name {
					continue
				}
				d := tok.Decode(g.IDs, false)
				plain.check(g.Decode, d, g.Decode, d == g.Decode)
				d = tok.Decode(g.IDs, true)
				skip.check(g.DecodeSkip, d, g.DecodeSkip, d == g.DecodeSkip)
			}
			if plain.n == 0 {
				t.Fatalf("decode.jsonl has no sequences for %s", m.name)
			}
			plain.report()
			skip.report()
		})
	}
}

// TestGoldenRendered checks chat prompts whose message contents may hold special-token strings:
// the template's "</s>" must be EOS, the user's must stay text.
func TestGoldenRendered(t *testing.T) {
	golden := readJSONL[goldenText](t, "rendered.jsonl")
	withUserSpecials := 0
	for _, g := range golden {
		if g.UserSpecial {
			withUserSpecials++
		}
	}
	if withUserSpecials == 0 || withUserSpecials == len(golden) {
		t.Fatalf("rendered.jsonl should mix prompts with and without special-token strings in the contents (%d of %d have them)", withUserSpecials, len(golden))
	}
	for _, m := range goldenModels {
		t.Run(m.name, func(t *testing.T) {
			tok := loadTokenizer(t, m.dir(t))
			bos := &tally{t: t, model: m.name, mode: "EncodeRendered(BOS)"}
			noBOS := &tally{t: t, model: m.name, mode: "EncodeRendered(no BOS)"}
			for _, g := range golden {
				want := g.Models[m.name]
				got := tok.EncodeRendered(g.Text, g.Untrusted, true)
				bos.check(g.Text, got, want.IDs, slices.Equal(got, want.IDs))
				got = tok.EncodeRendered(g.Text, g.Untrusted, false)
				noBOS.check(g.Text, got, want.IDsNoBOS, slices.Equal(got, want.IDsNoBOS))
				if !g.UserSpecial {
					if enc := tok.Encode(g.Text, true); !slices.Equal(enc, want.IDs) {
						t.Errorf("%q: Encode %v, want %v (no special strings in the contents)", g.Text, enc, want.IDs)
					}
				}
			}
			bos.report()
			noBOS.report()
		})
	}
}
