package guard

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/medassist/medassist/assets"
	"github.com/medassist/medassist/guard/internal/gen"
	"github.com/medassist/medassist/internal/testutil"
)

var (
	sharedOnce  sync.Once
	sharedGuard *Guard
	sharedErr   error
)

// testGuard is one guard with the default configuration, built once for the package's tests.
func testGuard(t testing.TB) *Guard {
	t.Helper()
	sharedOnce.Do(func() { sharedGuard, sharedErr = New(DefaultConfig()) })
	if sharedErr != nil {
		t.Fatal(sharedErr)
	}
	return sharedGuard
}

// labelled is one message of testdata/guard/labelled.jsonl.
type labelled struct {
	Text     string `json:"text"`
	Label    string `json:"label"` // emergency, medical, non_medical
	Category string `json:"category"`
	Form     string `json:"form,omitempty"`
}

func loadLabelled(t testing.TB) []labelled { return loadSet(t, "labelled.jsonl") }

// loadSet reads a labelled JSON Lines file of testdata/guard.
func loadSet(t testing.TB, name string) []labelled {
	t.Helper()
	f, err := os.Open(filepath.Join(testutil.RepoRoot(), "testdata", "guard", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []labelled
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		var l labelled
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("%s:%d: %v", name, n, err)
		}
		out = append(out, l)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// expected is the verdict each label should get.
var expected = map[string]Kind{"emergency": Emergency, "medical": Allow, "non_medical": OutOfDomain}

// confusion counts verdicts per label.
type confusion map[string]map[Kind]int

func (c confusion) rate(label string, k Kind) float64 {
	n := 0
	for _, v := range c[label] {
		n += v
	}
	return float64(c[label][k]) / float64(n)
}

func (c confusion) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "| label \\ verdict | emergency | allow | out_of_domain | invalid | total |\n|---|---|---|---|---|---|\n")
	for _, label := range []string{"emergency", "medical", "non_medical"} {
		row := c[label]
		total := row[Emergency] + row[Allow] + row[OutOfDomain] + row[Invalid]
		fmt.Fprintf(&b, "| %s | %d | %d | %d | %d | %d |\n", label, row[Emergency], row[Allow], row[OutOfDomain], row[Invalid], total)
	}
	return b.String()
}

// evaluate checks every message of a set and returns the confusion matrix, logging the misses.
func evaluate(t *testing.T, g *Guard, set []labelled) confusion {
	c := confusion{}
	for _, l := range set {
		want, ok := expected[l.Label]
		if !ok {
			t.Fatalf("unknown label %q for %q", l.Label, l.Text)
		}
		v := g.Check(l.Text)
		if c[l.Label] == nil {
			c[l.Label] = map[Kind]int{}
		}
		c[l.Label][v.Kind]++
		if v.Kind != want {
			t.Logf("%s/%s → %s: %q (%s)", l.Label, l.Category, v.Kind, l.Text, v.Reason)
		}
	}
	return c
}

// holdToTargets asserts the numbers: emergency recall >= 0.99, medical allowed >= 0.97,
// non-medical refused >= 0.95.
func holdToTargets(t *testing.T, name string, c confusion, n int) {
	t.Logf("%s: confusion matrix on %d messages:\n%s", name, n, c)
	recall, allowed, refused := c.rate("emergency", Emergency), c.rate("medical", Allow), c.rate("non_medical", OutOfDomain)
	t.Logf("%s: emergency recall %.3f, medical allowed %.3f, non-medical refused %.3f", name, recall, allowed, refused)
	if recall < 0.99 {
		t.Errorf("%s: emergency recall %.3f < 0.99", name, recall)
	}
	if allowed < 0.97 {
		t.Errorf("%s: medical allowed %.3f < 0.97", name, allowed)
	}
	if refused < 0.95 {
		t.Errorf("%s: non-medical refused %.3f < 0.95", name, refused)
	}
}

// TestLabelledSet runs the project's labelled messages (testdata/guard/labelled.jsonl) and holds
// the guard to the numbers.
func TestLabelledSet(t *testing.T) {
	set := loadLabelled(t)
	if len(set) < 300 {
		t.Fatalf("labelled set has %d messages; want at least 300", len(set))
	}
	holdToTargets(t, "labelled.jsonl", evaluate(t, testGuard(t), set), len(set))
}

// heldOutSets are the blind rounds (GUARD.md): each written after the guard was otherwise complete
// and evaluated once before any change. blind.jsonl and blind2.jsonl were then used to find kinds of
// misses, fixed by general rules and examples of the phenomena, never by copying their messages;
// blind3.jsonl was written after those fixes and run once.
var heldOutSets = []string{"blind.jsonl", "blind2.jsonl", "blind3.jsonl"}

// TestBlindSets holds every blind round to the numbers.
func TestBlindSets(t *testing.T) {
	g := testGuard(t)
	for _, name := range heldOutSets {
		t.Run(name, func(t *testing.T) {
			set := loadSet(t, name)
			if len(set) < 100 {
				t.Fatalf("%s has %d messages; want at least 100", name, len(set))
			}
			holdToTargets(t, name, evaluate(t, g, set), len(set))
		})
	}
}

// firstRunSets were written after the guard was otherwise complete and are kept as they were first
// run: no lexicon, example or generator change was made because of them. blind4.jsonl was written
// before the learned emergency detector was trained; GUARD.md has its first-run numbers.
var firstRunSets = []string{"blind4.jsonl"}

// TestFirstRunSets reports the first-run sets and holds them to floors a little under their
// recorded first-run numbers (a drop means a regression on text the guard was never tuned on).
func TestFirstRunSets(t *testing.T) {
	g := testGuard(t)
	for _, name := range firstRunSets {
		t.Run(name, func(t *testing.T) {
			set := loadSet(t, name)
			c := evaluate(t, g, set)
			recall, allowed, refused := c.rate("emergency", Emergency), c.rate("medical", Allow), c.rate("non_medical", OutOfDomain)
			t.Logf("%s: confusion matrix on %d messages:\n%s", name, len(set), c)
			t.Logf("%s: emergency recall %.3f, medical allowed %.3f, non-medical refused %.3f", name, recall, allowed, refused)
			if recall < 0.94 || allowed < 0.95 || refused < 0.94 {
				t.Errorf("%s: emergency recall %.3f (floor 0.94), medical allowed %.3f (floor 0.95), non-medical refused %.3f (floor 0.94)", name, recall, allowed, refused)
			}
		})
	}
}

// TestFlashcardsAllowed checks medical questions written by others: the questions of the shared
// medical flashcards (skipped when ../shared is absent). They are exam-style and often basic
// science, harder than a patient's question, so the bar is lower than the 0.97; none of
// them describes an emergency happening now.
func TestFlashcardsAllowed(t *testing.T) {
	f, err := os.Open(testutil.Flashcards(t))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	g := testGuard(t)
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	kinds := map[Kind]int{}
	n := 0
	for sc.Scan() {
		var card struct {
			Input string `json:"input"`
		}
		if err := json.Unmarshal(sc.Bytes(), &card); err != nil || strings.TrimSpace(card.Input) == "" {
			continue
		}
		kinds[g.Check(card.Input).Kind]++
		n++
	}
	allowed, emergencies := float64(kinds[Allow])/float64(n), float64(kinds[Emergency])/float64(n)
	t.Logf("flashcard questions: %d; allowed %.3f, out of domain %.3f, emergency %.4f, invalid %d",
		n, allowed, float64(kinds[OutOfDomain])/float64(n), emergencies, kinds[Invalid])
	if allowed < 0.90 || emergencies > 0.005 {
		t.Errorf("flashcards: allowed %.3f (want >= 0.90), emergency %.4f (want <= 0.005)", allowed, emergencies)
	}
}

var wordRe = regexp.MustCompile(`[\p{L}\p{N}]+`)

func wordSet(s string) map[string]bool {
	m := map[string]bool{}
	for _, w := range wordRe.FindAllString(strings.ToLower(s), -1) {
		m[w] = true
	}
	return m
}

// TestLabelledSetIsHeldOut checks that no evaluation message (labelled and blind sets) is a copy or
// a near copy (80% of the same words) of a training example.
func TestLabelledSetIsHeldOut(t *testing.T) {
	var train []string
	for _, f := range exampleFiles {
		text, err := readAsset(assets.GuardFiles(), "", "examples/"+f.name)
		if err != nil {
			t.Fatal(err)
		}
		train = append(train, exampleLines(text)...)
	}
	var sets []map[string]bool
	all := loadLabelled(t)
	for _, name := range append(append([]string(nil), heldOutSets...), firstRunSets...) {
		all = append(all, loadSet(t, name)...)
	}
	for _, e := range gen.Generate(genSeed, gen.DefaultCounts) {
		train = append(train, e.Text)
	}
	sets = sets[:0]
	for _, tr := range train {
		sets = append(sets, wordSet(tr))
	}
	for _, l := range all {
		w := wordSet(l.Text)
		for i, s := range sets {
			inter := 0
			for k := range w {
				if s[k] {
					inter++
				}
			}
			union := len(w) + len(s) - inter
			if union > 0 && float64(inter)/float64(union) >= 0.8 {
				t.Errorf("evaluation message %q is too close to training example %q", l.Text, train[i])
			}
		}
	}
}
