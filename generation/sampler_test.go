package generation

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

func TestGreedyPicksFirstLargest(t *testing.T) {
	s := NewSampler(Sampling{})
	cases := []struct {
		logits []float32
		want   int
	}{
		{[]float32{0.1, 3, -2, 2.9}, 1},
		{[]float32{5, 5, 1}, 0}, // tie: lowest id, like torch.argmax
		{[]float32{-3, -1, -2}, 1},
		{[]float32{7}, 0},
	}
	for _, c := range cases {
		if got := s.Next(c.logits, nil); got != c.want {
			t.Errorf("Next(%v) = %d, want %d", c.logits, got, c.want)
		}
	}
}

func TestRepetitionPenaltyByHand(t *testing.T) {
	// Penalty 2 on ids 0 and 1 (0 appears twice but is penalised once):
	// [2, -1, 1.5] -> [1, -2, 1.5], so greedy moves from 0 to 2.
	logits := []float32{2, -1, 1.5}
	s := NewSampler(Sampling{RepetitionPenalty: 2})
	if got := s.Next(logits, []int{0, 1, 0, 99, -1}); got != 2 {
		t.Fatalf("with penalty: got %d, want 2", got)
	}
	if want := []float32{2, -1, 1.5}; !slices.Equal(logits, want) {
		t.Fatalf("Next modified the logits: %v", logits)
	}
	if got := s.Next(logits, []int{0}); got != 2 {
		t.Fatalf("penalty on 0 only: got %d, want 2 (2/2=1 < 1.5)", got)
	}
	if got := s.Next(logits, []int{1}); got != 0 {
		t.Fatalf("penalty on 1 only: got %d, want 0", got)
	}
	if got := s.Next(logits, nil); got != 0 {
		t.Fatalf("no history: got %d, want 0", got)
	}
	// Penalty on a negative logit makes it more negative: -1*2 = -2 < -1.9.
	if got := NewSampler(Sampling{RepetitionPenalty: 2}).Next([]float32{-1, -1.9}, []int{0}); got != 1 {
		t.Fatalf("negative logit penalty: got %d, want 1", got)
	}
}

// frequencies draws n tokens and returns how often each id came out.
func frequencies(s *Sampler, logits []float32, n int) []float64 {
	counts := make([]float64, len(logits))
	for range n {
		counts[s.Next(logits, nil)]++
	}
	for i := range counts {
		counts[i] /= float64(n)
	}
	return counts
}

func logitsOf(probs ...float64) []float32 {
	out := make([]float32, len(probs))
	for i, p := range probs {
		out[i] = float32(math.Log(p))
	}
	return out
}

func assertDistribution(t *testing.T, name string, got, want []float64) {
	t.Helper()
	// 40,000 draws: the standard error of a frequency is at most 0.0025; 0.012 is ~5 sigma.
	for i := range want {
		if math.Abs(got[i]-want[i]) > 0.012 {
			t.Errorf("%s: frequency of %d = %.4f, want %.4f (all: %.4f)", name, i, got[i], want[i], got)
		}
	}
}

func TestSamplingDistributions(t *testing.T) {
	logits := logitsOf(0.1, 0.2, 0.3, 0.4)
	const n = 40000
	cases := []struct {
		name string
		s    Sampling
		want []float64
	}{
		{"temperature 1", Sampling{Temperature: 1, Seed: 1}, []float64{0.1, 0.2, 0.3, 0.4}},
		// T=0.5 squares the probabilities: .01 .04 .09 .16 over .30.
		{"temperature 0.5", Sampling{Temperature: 0.5, Seed: 2}, []float64{0.01 / 0.3, 0.04 / 0.3, 0.09 / 0.3, 0.16 / 0.3}},
		{"top-k 2", Sampling{Temperature: 1, TopK: 2, Seed: 3}, []float64{0, 0, 0.3 / 0.7, 0.4 / 0.7}},
		{"top-k above vocab", Sampling{Temperature: 1, TopK: 10, Seed: 4}, []float64{0.1, 0.2, 0.3, 0.4}},
		// top-p 0.5: 0.4 is not enough, 0.4+0.3 is: {3, 2} renormalised.
		{"top-p 0.5", Sampling{Temperature: 1, TopP: 0.5, Seed: 5}, []float64{0, 0, 0.3 / 0.7, 0.4 / 0.7}},
		{"top-p 0.35", Sampling{Temperature: 1, TopP: 0.35, Seed: 6}, []float64{0, 0, 0, 1}},
		{"top-p 0.75", Sampling{Temperature: 1, TopP: 0.75, Seed: 7}, []float64{0, 0.2 / 0.9, 0.3 / 0.9, 0.4 / 0.9}},
		// top-k first, then top-p over the renormalised top-k: {3: 4/7, 2: 3/7}; 4/7 >= 0.5 keeps only 3.
		{"top-k 2 then top-p 0.5", Sampling{Temperature: 1, TopK: 2, TopP: 0.5, Seed: 8}, []float64{0, 0, 0, 1}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			assertDistribution(t, c.name, frequencies(NewSampler(c.s), logits, n), c.want)
		})
	}
}

func TestRepetitionPenaltyWithSampling(t *testing.T) {
	// Logits ln(.5), ln(.5) = -0.693 each; penalty 2 on id 0 gives -1.386:
	// probabilities e^-1.386 : e^-0.693 = 0.25 : 0.5 -> 1/3, 2/3.
	s := NewSampler(Sampling{Temperature: 1, RepetitionPenalty: 2, Seed: 9})
	logits := logitsOf(0.5, 0.5)
	counts := make([]float64, 2)
	for range 40000 {
		counts[s.Next(logits, []int{0})]++
	}
	assertDistribution(t, "penalised", []float64{counts[0] / 40000, counts[1] / 40000}, []float64{1.0 / 3, 2.0 / 3})
}

func TestSeedReproducible(t *testing.T) {
	logits := logitsOf(0.05, 0.15, 0.2, 0.25, 0.35)
	draw := func(seed int64) []int {
		s := NewSampler(Sampling{Temperature: 0.8, TopK: 4, TopP: 0.9, Seed: seed})
		var out []int
		for range 64 {
			out = append(out, s.Next(logits, out))
		}
		return out
	}
	a, b, c := draw(42), draw(42), draw(43)
	if !slices.Equal(a, b) {
		t.Fatalf("same seed, different draws:\n%v\n%v", a, b)
	}
	if slices.Equal(a, c) {
		t.Fatalf("seeds 42 and 43 drew the same 64 tokens: %v", a)
	}
}

func TestTopKOrderAndTies(t *testing.T) {
	s := NewSampler(Sampling{Temperature: 1, TopK: 3})
	s.load([]float32{1, 5, 3, 5, 0, 3})
	s.candidates()
	// 5 (ids 1, 3), then 3: id 2 wins the tie with 5.
	if want := []int{1, 3, 2}; !slices.Equal(s.cand, want) {
		t.Fatalf("top-3 = %v, want %v", s.cand, want)
	}
}

func TestSamplingValidate(t *testing.T) {
	good := []Sampling{{}, {Temperature: 0.7, TopK: 40, TopP: 0.9, RepetitionPenalty: 1.1, Seed: 3}}
	for _, s := range good {
		if err := s.Validate(); err != nil {
			t.Errorf("%+v: %v", s, err)
		}
	}
	bad := []Sampling{{Temperature: -1}, {TopK: -1}, {TopP: 1.5}, {TopP: -0.1}, {RepetitionPenalty: -2}}
	for _, s := range bad {
		if err := s.Validate(); err == nil {
			t.Errorf("%+v: no error", s)
		}
	}
	if err := (Request{MaxNewTokens: 1}).Validate(); err == nil {
		t.Error("empty prompt accepted")
	}
	if err := (Request{PromptIDs: []int{1}}).Validate(); err == nil {
		t.Error("MaxNewTokens 0 accepted")
	}
}

func BenchmarkSamplerTopP32K(b *testing.B) {
	logits := make([]float32, 32000)
	for i := range logits {
		logits[i] = float32(math.Sin(float64(i)*0.37) * 6)
	}
	s := NewSampler(Sampling{Temperature: 0.7, TopP: 0.9, RepetitionPenalty: 1.1, Seed: 1})
	history := []int{5, 17, 99, 1000, 31999}
	for b.Loop() {
		s.Next(logits, history)
	}
}

// TestTopMassAgainstSort checks the quickselect against sorting, on many random distributions
// (ties included).
func TestTopMassAgainstSort(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for trial := range 2000 {
		n := 2 + rng.IntN(60)
		e := make([]entry, n)
		var sum float64
		for i := range e {
			e[i] = entry{p: float64(1 + rng.IntN(8)), id: i} // few distinct values: many ties
			sum += e[i].p
		}
		for i := range e {
			e[i].p /= sum
		}
		need := rng.Float64()
		sorted := slices.Clone(e)
		slices.SortFunc(sorted, func(a, b entry) int {
			if a.ranks(b) {
				return -1
			}
			return 1
		})
		wantN, mass := 0, 0.0
		for wantN < n && (wantN == 0 || mass < need) {
			mass += sorted[wantN].p
			wantN++
		}
		gotN, gotMass := topMass(e, need)
		got := slices.Clone(e[:gotN])
		slices.SortFunc(got, func(a, b entry) int { return a.id - b.id })
		want := slices.Clone(sorted[:wantN])
		slices.SortFunc(want, func(a, b entry) int { return a.id - b.id })
		if !slices.Equal(got, want) || math.Abs(gotMass-mass) > 1e-12 {
			t.Fatalf("trial %d need %.4f: got %d entries (mass %.6f), want %d (mass %.6f)\n got %v\nwant %v",
				trial, need, gotN, gotMass, wantN, mass, got, want)
		}
	}
}

func TestExpNonPositive(t *testing.T) {
	for i := range 200000 {
		x := -float64(i) * 0.0035
		want, got := math.Exp(x), expNonPositive(x)
		if want == 0 || want < 1e-300 {
			if got > 1e-300 {
				t.Fatalf("exp(%v) = %v, want ~0", x, got)
			}
			continue
		}
		if rel := math.Abs(got-want) / want; rel > 1e-15 {
			t.Fatalf("exp(%v) = %v, want %v (relative error %v)", x, got, want, rel)
		}
	}
	if got := expNonPositive(math.Inf(-1)); got != 0 {
		t.Fatalf("exp(-Inf) = %v", got)
	}
}
