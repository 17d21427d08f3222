package guard

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/medassist/medassist/assets"
	"github.com/medassist/medassist/internal/testutil"
)

// itemKey is what an item says: its text, or its user turns joined.
func itemKey(it Item) string {
	if len(it.Messages) == 0 {
		return it.Text
	}
	var turns []string
	for _, m := range it.Messages {
		if m.Role == RoleUser {
			turns = append(turns, m.Content)
		}
	}
	return strings.Join(turns, "\n")
}

// normalised is the text as the rules read it: lower case, accents and punctuation gone.
func normalised(s string) string {
	d := analyze(s)
	words := make([]string, len(d.toks))
	for i, t := range d.toks {
		words[i] = t.text
	}
	return strings.Join(words, " ")
}

func TestCorpusHasProvenance(t *testing.T) {
	items := corpusItems(t) // LoadCorpus refuses an example without a source
	var count [numClasses]int
	for _, it := range items {
		count[it.Class()]++
		if !strings.HasPrefix(it.Source, "written") && !strings.HasPrefix(it.Source, "generated: ") && !strings.HasPrefix(it.Source, "taken from ") {
			t.Errorf("source %q of %q: want \"written ...\", \"generated: <generator and version>\" or \"taken from <source, licence>\"", it.Source, itemKey(it))
		}
	}
	for k, n := range count {
		if n < 500 {
			t.Errorf("%d %s examples in the corpus; want at least 500", n, ClassNames[k])
		}
	}
}

func TestFrozenSplitShape(t *testing.T) {
	items := frozenTestSplit(t)
	var count [numClasses]int
	conversations := 0
	for _, it := range items {
		count[it.Class()]++
		users := 0
		for _, m := range it.Messages {
			if m.Role == RoleUser {
				users++
			}
		}
		if len(it.Messages) > 1 && (users > 1 || it.Messages[0].Role != RoleUser) {
			conversations++
		}
	}
	if len(items) < 600 || conversations < 40 {
		t.Errorf("frozen split: %d items, %d multi-turn conversations; want >= 600 and >= 40", len(items), conversations)
	}
	for k, n := range count {
		if n < 150 {
			t.Errorf("frozen split: %d %s items; want >= 150", n, ClassNames[k])
		}
	}
}

// TestFrozenSplitIsHeldOut fails when a test item appears in the training corpus, normalised, or
// as a near paraphrase: embedding cosine >= 0.9 with the encoder.
func TestFrozenSplitIsHeldOut(t *testing.T) {
	test, train := frozenTestSplit(t), corpusItems(t)
	seen := map[string]string{}
	var trainKeys []string
	for _, it := range train {
		k := itemKey(it)
		seen[normalised(k)] = k
		trainKeys = append(trainKeys, k)
	}
	var testKeys []string
	for _, it := range test {
		k := itemKey(it)
		if tr, ok := seen[normalised(k)]; ok {
			t.Errorf("test item %q is in the training corpus as %q", k, tr)
		}
		testKeys = append(testKeys, k)
	}
	emb := testEmbedder(t)
	te, err := embedBatches(emb, testKeys, 256)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := embedBatches(emb, trainKeys, 256)
	if err != nil {
		t.Fatal(err)
	}
	for i, a := range te {
		for j, b := range tr {
			if cos := dot(a, b); cos >= 0.9 {
				t.Errorf("test item %q has a near paraphrase in the training corpus (cosine %.3f): %q", testKeys[i], cos, trainKeys[j])
			}
		}
	}
}

func dot(a, b []float32) float64 {
	var s float64
	for i := range a {
		s += float64(a[i]) * float64(b[i])
	}
	return s
}

// TestHeadIsReproducible retrains the head from the corpus and finds the committed weights byte for
// byte (the command: medassist guard train).
func TestHeadIsReproducible(t *testing.T) {
	h, cv, err := Train(testEmbedder(t), corpusItems(t), DefaultTrainOptions)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("cross-validation: %+v", cv)
	got, _ := h.MarshalBinary()
	want, err := assets.GuardFiles().Open(headFile)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	buf.ReadFrom(want)
	if !bytes.Equal(got, buf.Bytes()) {
		t.Errorf("retrained head differs from assets/guard/head.bin (thresholds %v/%v vs committed %v/%v): rebuild it with `medassist guard train`",
			h.EmergencyThreshold, h.OffTopicThreshold, testGuard(t).Head().EmergencyThreshold, testGuard(t).Head().OffTopicThreshold)
	}
}

// TestFlashcardsAllowed: the 5,017 flashcard questions are health questions; at least 97% are
// allowed and at most 0.5% taken for emergencies.
func TestFlashcardsAllowed(t *testing.T) {
	f, err := os.Open(testutil.Flashcards(t))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var items []Item
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var card struct{ Input string }
		if err := json.Unmarshal(sc.Bytes(), &card); err != nil {
			t.Fatal(err)
		}
		if strings.TrimSpace(card.Input) != "" {
			items = append(items, Item{Label: "medical", Text: card.Input})
		}
	}
	r := testGuard(t).Evaluate(items)
	allowed := r.Recall(classMedical)
	emergencies := float64(r.Confusion[classMedical][0]) / float64(r.N)
	t.Logf("%d flashcard questions: %.2f%% allowed, %.2f%% emergencies", r.N, 100*allowed, 100*emergencies)
	if r.N < 5000 || allowed < 0.97 || emergencies > 0.005 {
		for _, m := range r.Misses[:min(len(r.Misses), 30)] {
			t.Logf("%s: %q (%s)", m.Predicted, m.Item.Text, m.Reason)
		}
		t.Errorf("flashcards: %d questions, %.3f allowed (want >= 0.97), %.4f emergencies (want <= 0.005)", r.N, allowed, emergencies)
	}
}
