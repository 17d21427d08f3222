package encoder

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/medassist/medassist/export"
	"github.com/medassist/medassist/internal/testutil"
)

// Every test shares one encoder over the shared all-MiniLM-L6-v2 dir (opened once: ~1 s).
var shared struct {
	once sync.Once
	enc  *Encoder
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if shared.enc != nil {
		shared.enc.Close()
	}
	os.Exit(code)
}

func sharedEncoder(t testing.TB) *Encoder {
	t.Helper()
	dir, lib := testutil.MiniLM(t), testutil.ORTLibrary(t)
	shared.once.Do(func() { shared.enc, shared.err = Open(dir, Options{ORTLib: lib}) })
	if shared.err != nil {
		t.Fatalf("open encoder: %v", shared.err)
	}
	return shared.enc
}

// golden is testdata/encoder, written by tools/oracle/encoder_golden.py with sentence-transformers.
type golden struct {
	Versions     map[string]string `json:"versions"`
	MaxSeqLength int               `json:"max_seq_length"`
	Dim          int               `json:"dim"`
	Items        []struct {
		Text string `json:"text"`
		IDs  []int  `json:"ids"`
	} `json:"items"`
	vecs [][]float32
}

func loadGolden(t testing.TB) *golden {
	t.Helper()
	dir := filepath.Join(testutil.RepoRoot(), "testdata", "encoder")
	b, err := os.ReadFile(filepath.Join(dir, "golden.json"))
	if err != nil {
		t.Fatal(err)
	}
	var g golden
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(dir, "golden.f32"))
	if err != nil {
		t.Fatal(err)
	}
	if len(raw) != 4*g.Dim*len(g.Items) {
		t.Fatalf("golden.f32 has %d bytes, want %d texts × %d dims × 4", len(raw), len(g.Items), g.Dim)
	}
	for i := range g.Items {
		v := make([]float32, g.Dim)
		for k := range v {
			v[k] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*(i*g.Dim+k):]))
		}
		g.vecs = append(g.vecs, v)
	}
	return &g
}

// parityTol is the largest difference allowed in any component against sentence-transformers.
const parityTol = 1e-5

func TestTokenizeMatchesSentenceTransformers(t *testing.T) {
	enc, g := sharedEncoder(t), loadGolden(t)
	if enc.MaxTokens() != g.MaxSeqLength || enc.Dim() != g.Dim {
		t.Fatalf("max tokens %d, dim %d; sentence-transformers: %d, %d", enc.MaxTokens(), enc.Dim(), g.MaxSeqLength, g.Dim)
	}
	truncated := 0
	for _, it := range g.Items {
		if got := enc.Tokenize(it.Text); !slices.Equal(got, it.IDs) {
			t.Errorf("Tokenize(%.60q) = %v…, sentence-transformers %v…", it.Text, head(got), head(it.IDs))
		}
		if len(it.IDs) == g.MaxSeqLength {
			truncated++
		}
	}
	if truncated == 0 {
		t.Error("no golden text reaches max_seq_length: truncation is untested")
	}
}

func head(v []int) []int { return v[:min(len(v), 12)] }

func TestEmbedMatchesSentenceTransformers(t *testing.T) {
	enc, g := sharedEncoder(t), loadGolden(t)
	texts := make([]string, len(g.Items))
	for i, it := range g.Items {
		texts[i] = it.Text
	}
	got, err := enc.Embed(texts)
	if err != nil {
		t.Fatal(err)
	}
	worst, at := checkParity(t, got, g)
	t.Logf("%d texts (sentence-transformers %s): max |Δ| %.3g (%.40q)", len(texts), g.Versions["sentence-transformers"], worst, texts[at])
}

// checkParity fails for any vector beyond parityTol (or not of unit length) and returns the
// largest difference and where.
func checkParity(t *testing.T, got [][]float32, g *golden) (worst float64, at int) {
	t.Helper()
	if len(got) != len(g.vecs) {
		t.Fatalf("%d embeddings for %d texts", len(got), len(g.vecs))
	}
	for i, v := range got {
		d := testutil.MaxAbsDiff(v, g.vecs[i])
		if d > parityTol {
			t.Errorf("text %d (%.50q, %d tokens): max |Δ| = %.3g > %g", i, g.Items[i].Text, len(g.Items[i].IDs), d, parityTol)
		}
		if n := norm(v); math.Abs(n-1) > 1e-5 {
			t.Errorf("text %d: ‖v‖ = %v, want 1", i, n)
		}
		if d > worst {
			worst, at = d, i
		}
	}
	return worst, at
}

func norm(v []float32) float64 {
	var s float64
	for _, x := range v {
		s += float64(x) * float64(x)
	}
	return math.Sqrt(s)
}

// A text's embedding does not depend on the batch it is run in (padding is masked out), and
// goroutines sharing the encoder get the same results as one caller.
func TestEmbedConcurrentAndBatchIndependent(t *testing.T) {
	enc, g := sharedEncoder(t), loadGolden(t)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w; i < len(g.Items); i += 41 {
				v, err := enc.Embed([]string{g.Items[i].Text})
				if err != nil {
					errs <- err
					return
				}
				if d := testutil.MaxAbsDiff(v[0], g.vecs[i]); d > parityTol {
					t.Errorf("alone, text %d (%.40q): max |Δ| = %.3g", i, g.Items[i].Text, d)
				}
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func TestEmbedEdgeCases(t *testing.T) {
	enc := sharedEncoder(t)
	if v, err := enc.Embed(nil); err != nil || len(v) != 0 {
		t.Fatalf("Embed(nil) = %d vectors, %v", len(v), err)
	}
	v, err := enc.Embed([]string{"chest pain", "chest pain", "what's the weather"})
	if err != nil {
		t.Fatal(err)
	}
	if len(v[0]) != enc.Dim() || testutil.MaxAbsDiff(v[0], v[1]) != 0 {
		t.Errorf("equal texts in one batch differ or have the wrong size")
	}
	if testutil.MaxAbsDiff(v[0], v[2]) < 0.1 {
		t.Errorf("unrelated texts embed alike")
	}
	if _, err := enc.EmbedIDs([][]int{{}}); err == nil {
		t.Error("an empty id row was accepted")
	}
	if _, err := enc.EmbedIDs([][]int{make([]int, enc.MaxTokens()+1)}); err == nil {
		t.Error("a row longer than MaxTokens was accepted")
	}
}

func TestOpenRejectsNonSentenceTransformersDir(t *testing.T) {
	dir := testutil.Stories260K(t)
	if _, err := Open(dir, Options{ORTLib: testutil.ORTLibrary(t)}); err == nil {
		t.Fatal("a Llama dir opened as a sentence encoder")
	}
	if _, err := Open(t.TempDir(), Options{Threads: -1}); err == nil {
		t.Fatal("negative threads accepted")
	}
}

// A dir written by medassist export (model.onnx beside the tokenizer and sentence-transformers
// files) opens and embeds like the source dir.
func TestOpenExportedDir(t *testing.T) {
	src, lib, g := testutil.MiniLM(t), testutil.ORTLibrary(t), loadGolden(t)
	out := t.TempDir()
	if _, err := export.Export(context.Background(), src, out, export.DefaultOptions(), slog.New(slog.DiscardHandler), nil); err != nil {
		t.Fatal(err)
	}
	enc, err := Open(out, Options{ORTLib: lib, Threads: 1, BatchSize: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	n := 40
	texts := make([]string, n)
	for i := range texts {
		texts[i] = g.Items[i].Text
	}
	got, err := enc.Embed(texts)
	if err != nil {
		t.Fatal(err)
	}
	sub := &golden{Items: g.Items[:n], vecs: g.vecs[:n]}
	worst, _ := checkParity(t, got, sub)
	t.Logf("exported model.onnx, %d texts: max |Δ| %.3g", n, worst)
	if err := enc.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := enc.Embed(texts[:1]); err != ErrClosed {
		t.Errorf("Embed after Close: %v, want ErrClosed", err)
	}
}

// Any input — invalid UTF-8, NUL bytes, control characters, huge repeats — gives a well-formed
// id row and a finite unit vector.
func FuzzEmbed(f *testing.F) {
	for _, s := range []string{"", "chest pain", "\x00\xff\xfe", "[CLS][SEP][PAD]", "🤒🤕", "é\u0301\u200d", "a\tb\nc\r"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		enc := sharedEncoder(t)
		ids := enc.Tokenize(text)
		if len(ids) < 2 || len(ids) > enc.MaxTokens() || ids[0] != 101 || ids[len(ids)-1] != 102 {
			t.Fatalf("Tokenize(%q) = %v", text, ids)
		}
		v, err := enc.Embed([]string{text})
		if err != nil {
			t.Fatal(err)
		}
		if n := norm(v[0]); math.IsNaN(n) || math.Abs(n-1) > 1e-5 {
			t.Fatalf("Embed(%q): ‖v‖ = %v", text, n)
		}
	})
}
