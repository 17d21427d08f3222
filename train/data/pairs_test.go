package data

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/parquet-go/parquet-go"

	"github.com/medassist/medassist/internal/testutil"
)

// fixtureRows are the rows of testdata/flashcards.parquet (tools/oracle/flashcards_parquet.py);
// a nil question is a null value.
var fixtureRows = []struct {
	Q *string
	A string
}{
	{ptr("What causes scurvy?"), "Vitamin C deficiency causes scurvy."},
	{ptr("  What is the normal adult resting heart rate?\n"), " 60 to 100 beats per minute. "},
	{ptr("What causes SCURVY?"), "Vitamin C  deficiency causes scurvy."},
	{nil, "An answer without a question."},
	{ptr("A question without an answer?"), ""},
	{ptr(""), ""},
	{ptr("Quelle est la dose létale? 😀"), "Réponse: ça dépend — 致死量."},
	{ptr("   "), "whitespace-only question"},
	{ptr("Which nerve innervates the diaphragm?"), "The phrenic nerve (C3–C5)."},
}

func ptr(s string) *string { return &s }

const instruction = "Answer this question truthfully"

// fixtureRecords are fixtureRows as JSON objects (null for a nil question).
func fixtureRecords() []map[string]any {
	var out []map[string]any
	for _, r := range fixtureRows {
		m := map[string]any{"instruction": instruction, "output": r.A, "input": nil}
		if r.Q != nil {
			m["input"] = *r.Q
		}
		out = append(out, m)
	}
	return out
}

func wantPairs() []Pair {
	var out []Pair
	for _, r := range fixtureRows {
		p := Pair{Answer: r.A}
		if r.Q != nil {
			p.Question = *r.Q
		}
		out = append(out, p)
	}
	return out
}

// writeFixtures writes fixtureRows as JSON, JSON Lines and (through parquet-go) Parquet.
func writeFixtures(t *testing.T) map[string]string {
	t.Helper()
	dir := t.TempDir()
	paths := map[string]string{}
	recs := fixtureRecords()
	b, _ := json.MarshalIndent(recs, "", "  ")
	paths["json"] = filepath.Join(dir, "cards.json")
	os.WriteFile(paths["json"], b, 0o644)
	var sb strings.Builder
	for _, r := range recs {
		line, _ := json.Marshal(r)
		sb.Write(line)
		sb.WriteString("\n\n") // blank lines are skipped
	}
	paths["jsonl"] = filepath.Join(dir, "cards.jsonl")
	os.WriteFile(paths["jsonl"], []byte(sb.String()), 0o644)

	type prow struct {
		Instruction string  `parquet:"instruction"`
		Input       *string `parquet:"input,optional"`
		Output      string  `parquet:"output,dict"`
		Extra       int64   `parquet:"extra"`
	}
	var rows []prow
	for i, r := range fixtureRows {
		rows = append(rows, prow{Instruction: instruction, Input: r.Q, Output: r.A, Extra: int64(i)})
	}
	paths["parquet-go"] = filepath.Join(dir, "cards.bin") // no extension: detected by magic bytes
	f, err := os.Create(paths["parquet-go"])
	if err != nil {
		t.Fatal(err)
	}
	if err := parquet.Write(f, rows, parquet.Compression(&parquet.Zstd), parquet.PageBufferSize(64)); err != nil {
		t.Fatal(err)
	}
	f.Close()
	paths["pyarrow"] = filepath.Join(testutil.RepoRoot(), "train", "data", "testdata", "flashcards.parquet")
	return paths
}

// TestReadPairsFormats reads the same rows from JSON, JSON Lines and Parquet (written by pyarrow,
// as the Hub serves data sets, and by parquet-go).
func TestReadPairsFormats(t *testing.T) {
	want := wantPairs()
	for name, path := range writeFixtures(t) {
		t.Run(name, func(t *testing.T) {
			got, err := ReadPairs(path)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("got %q\nwant %q", got, want)
			}
		})
	}
}

func TestCleanFixture(t *testing.T) {
	got, st := Clean(wantPairs())
	want := []Pair{
		{"What causes scurvy?", "Vitamin C deficiency causes scurvy."},
		{"What is the normal adult resting heart rate?", "60 to 100 beats per minute."},
		{"Quelle est la dose létale? 😀", "Réponse: ça dépend — 致死量."},
		{"Which nerve innervates the diaphragm?", "The phrenic nerve (C3–C5)."},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %q\nwant %q", got, want)
	}
	if st != (CleanStats{Incomplete: 4, Duplicates: 1}) {
		t.Fatalf("stats %+v, want 4 incomplete, 1 duplicate", st)
	}
}

func TestReadPairsErrors(t *testing.T) {
	dir := t.TempDir()
	cases := map[string]struct{ content, want string }{
		"bad.jsonl":   {"{\"input\": \"q\", \"output\": \"a\"}\nnot json\n", "line 2"},
		"schema.json": {`[{"question": "q", "answer": "a"}]`, "no row has a non-empty"},
		"type.jsonl":  {`{"input": 3, "output": "a"}`, `field "input" must be a string`},
		"array.json":  {`[1, 2]`, "element 0"},
	}
	for name, tc := range cases {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(tc.content), 0o644)
		if _, err := ReadPairs(p); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", name, err, tc.want)
		}
	}
	if _, err := ReadPairs(filepath.Join(dir, "absent.jsonl")); err == nil {
		t.Error("missing file: no error")
	}
	// A Parquet file without the expected columns.
	p := filepath.Join(dir, "other.parquet")
	f, _ := os.Create(p)
	type other struct {
		Q string `parquet:"question"`
	}
	if err := parquet.Write(f, []other{{"q"}}); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if _, err := ReadPairs(p); err == nil || !strings.Contains(err.Error(), `expected string columns "input" and "output"`) {
		t.Errorf("parquet without columns: error %v", err)
	}
}

// TestReadFlashcards reads ../shared's flashcards: 5,018 rows, one incomplete, no duplicates.
func TestReadFlashcards(t *testing.T) {
	pairs, err := ReadPairs(testutil.Flashcards(t))
	if err != nil {
		t.Fatal(err)
	}
	clean, st := Clean(pairs)
	t.Logf("read %d, incomplete %d, duplicates %d, kept %d", len(pairs), st.Incomplete, st.Duplicates, len(clean))
	if len(pairs) != 5018 || st.Incomplete != 1 || len(clean) != 5017-st.Duplicates {
		t.Fatalf("read %d (want 5018), incomplete %d (want 1), kept %d", len(pairs), st.Incomplete, len(clean))
	}
}
