package guard

import (
	"bytes"
	"io/fs"
	"math"
	"strings"
	"testing"

	"github.com/medassist/medassist/assets"
	"github.com/medassist/medassist/guard/internal/gen"
)

// TestLearnedModelEmbedded checks that the embedded learned detector was trained from the embedded
// files as they are now (else: go generate ./guard/) and that training it again gives the same
// weights (up to floating-point contraction on other CPUs).
func TestLearnedModelEmbedded(t *testing.T) {
	b, err := fs.ReadFile(assets.GuardFiles(), learnedFile)
	if err != nil {
		t.Fatal(err)
	}
	key, embedded, err := decodeLearned(b)
	if err != nil {
		t.Fatal(err)
	}
	g := testGuard(t)
	if g.learned == nil {
		t.Skip("the default emergency model is not the learned one")
	}
	if key != g.learnedKey {
		t.Fatalf("%s was trained from other files than the embedded ones; run: cd guard && go run ./internal/genmodel", learnedFile)
	}
	var fresh bytes.Buffer
	if err := LearnedModel(&fresh); err != nil {
		t.Fatal(err)
	}
	_, trained, err := decodeLearned(fresh.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	var worst float64
	for i := range trained.clf.w {
		worst = math.Max(worst, math.Abs(float64(trained.clf.w[i]-embedded.clf.w[i])))
	}
	if worst > 1e-3 || math.Abs(trained.cal.Threshold-embedded.cal.Threshold) > 1e-3 {
		t.Errorf("retrained weights differ from the embedded ones by up to %g (threshold %g vs %g); regenerate the model", worst, trained.cal.Threshold, embedded.cal.Threshold)
	}
	t.Logf("learned detector: %+v", embedded.cal)
}

// TestLearnedDetector checks the learned detector on messages the emergency rules do not cover,
// against contrastive ones in the same words.
func TestLearnedDetector(t *testing.T) {
	g := testGuard(t)
	if g.learned == nil {
		t.Skip("the default emergency model is not the learned one")
	}
	for text, want := range map[string]Kind{
		"my grandad's mouth is hanging down on the left and he's mumbling nonsense":                  Emergency,
		"she keeps saying everyone would be better off without her and she's giving her things away": Emergency,
		"what is the mechanism of action of alteplase in a stroke":                                   Allow,
		"how do I kill a zombie process":                                                             OutOfDomain,
	} {
		if v := g.Check(text); v.Kind != want {
			t.Errorf("%q: %s (%s), want %s", text, v.Kind, v.Reason, want)
		}
	}
	// a self-harm emergency the rules miss still gets the crisis line
	v := g.Check("i've written my goodbyes and tonight i'm going to finish it")
	if v.Kind != Emergency || v.Code != "self_harm" {
		t.Errorf("goodbyes: %s %s (%s), want emergency self_harm", v.Kind, v.Code, v.Reason)
	}
}

// TestGeneratorDeterministic: the same seed gives the same messages, every label is present, and
// no message is empty.
func TestGeneratorDeterministic(t *testing.T) {
	a, b := gen.Generate(7, gen.DefaultCounts), gen.Generate(7, gen.DefaultCounts)
	if len(a) != len(b) {
		t.Fatalf("%d vs %d messages", len(a), len(b))
	}
	labels := map[string]int{}
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("message %d differs: %q vs %q", i, a[i].Text, b[i].Text)
		}
		if strings.TrimSpace(a[i].Text) == "" {
			t.Fatalf("message %d is empty", i)
		}
		labels[a[i].Label]++
	}
	want := gen.DefaultCounts
	if labels[gen.Emergency] != want.Emergency || labels[gen.NonMedical] != want.NonMedical || labels[gen.Medical] != want.Contrastive+want.Medical {
		t.Errorf("labels %v, want %+v", labels, want)
	}
}
