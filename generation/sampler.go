package generation

import (
	"math"
	"math/rand/v2"
	"slices"
)

// Sampler picks the next token from a row of logits. It keeps scratch buffers between calls, so one
// Sampler belongs to one sequence (it is not safe for concurrent use).
//
// The order of operations is Hugging Face transformers': repetition penalty, then (unless greedy)
// temperature, top-k, top-p, and a draw from the renormalised distribution.
type Sampler struct {
	s   Sampling
	rng *rand.Rand

	logits []float64 // the working copy of the current row
	stamp  []uint32  // stamp[id] == gen when id was already penalised in this call
	gen    uint32
	cand   []int     // candidate token ids
	probs  []float64 // probabilities of cand, same order
	ents   []entry   // scratch for top-p
}

// seedStream is the second PCG word; any constant gives an independent, reproducible stream per seed.
const seedStream = 0x6d656461737369 // "medassi"

// NewSampler returns a sampler for s. A zero Seed draws a random one.
func NewSampler(s Sampling) *Sampler {
	seed := uint64(s.Seed)
	if s.Seed == 0 {
		seed = rand.Uint64()
	}
	return &Sampler{s: s, rng: rand.New(rand.NewPCG(seed, seedStream))}
}

// Next returns the next token id. history holds the ids the repetition penalty looks at (prompt and
// generated tokens); ids outside the vocabulary are ignored. logits is not modified.
func (s *Sampler) Next(logits []float32, history []int) int {
	s.load(logits)
	s.penalise(history)
	if s.s.Greedy() {
		return Argmax(s.logits)
	}
	s.candidates()
	s.softmax()
	s.nucleus()
	return s.draw()
}

func (s *Sampler) load(logits []float32) {
	s.logits = slices.Grow(s.logits[:0], len(logits))[:len(logits)]
	for i, v := range logits {
		s.logits[i] = float64(v)
	}
}

// penalise applies the repetition penalty once to every distinct id in history.
func (s *Sampler) penalise(history []int) {
	p := s.s.RepetitionPenalty
	if p == 0 || p == 1 || len(history) == 0 {
		return
	}
	if len(s.stamp) < len(s.logits) {
		s.stamp = make([]uint32, len(s.logits))
		s.gen = 0
	}
	s.gen++
	if s.gen == 0 { // wrapped: clear old stamps
		clear(s.stamp)
		s.gen = 1
	}
	for _, id := range history {
		if id < 0 || id >= len(s.logits) || s.stamp[id] == s.gen {
			continue
		}
		s.stamp[id] = s.gen
		if v := s.logits[id]; v > 0 {
			s.logits[id] = v / p
		} else {
			s.logits[id] = v * p
		}
	}
}

// Argmax is the first index of the largest value (torch.argmax's tie rule).
func Argmax[T float32 | float64](v []T) int {
	best := 0
	for i, x := range v {
		if x > v[best] {
			best = i
		}
	}
	return best
}

// candidates fills s.cand with the top-k ids (all ids when top-k is off), most likely first when
// top-k is on.
func (s *Sampler) candidates() {
	n := len(s.logits)
	k := s.s.TopK
	s.cand = s.cand[:0]
	if k <= 0 || k >= n {
		for i := range n {
			s.cand = append(s.cand, i)
		}
		return
	}
	// A min-heap of the k best seen so far: O(n log k).
	h := s.cand
	less := func(a, b int) bool { return before(s.logits, b, a) } // a ranks below b
	for i := range n {
		if len(h) < k {
			h = append(h, i)
			siftUp(h, len(h)-1, less)
			continue
		}
		if before(s.logits, i, h[0]) {
			h[0] = i
			siftDown(h, 0, less)
		}
	}
	slices.SortFunc(h, func(a, b int) int {
		if before(s.logits, a, b) {
			return -1
		}
		return 1
	})
	s.cand = h
}

// before orders ids by descending logit, lower id first on ties.
func before(v []float64, a, b int) bool {
	if v[a] != v[b] {
		return v[a] > v[b]
	}
	return a < b
}

// softmax fills s.probs with the temperature-scaled probabilities of s.cand.
func (s *Sampler) softmax() {
	t := s.s.Temperature
	maxv := math.Inf(-1)
	for _, id := range s.cand {
		maxv = max(maxv, s.logits[id])
	}
	s.probs = slices.Grow(s.probs[:0], len(s.cand))[:len(s.cand)]
	var sum float64
	for i, id := range s.cand {
		e := expNonPositive((s.logits[id] - maxv) / t)
		s.probs[i] = e
		sum += e
	}
	for i := range s.probs {
		s.probs[i] /= sum
	}
}

// nucleus keeps the most likely candidates until their probability reaches top-p (at least one).
// Candidates are ranked by probability, then by lower id; the kept set is the shortest prefix of that
// ranking whose mass reaches p, found by a mass-weighted quickselect in expected linear time rather
// than by sorting the whole vocabulary.
func (s *Sampler) nucleus() {
	p := s.s.TopP
	if p <= 0 || p >= 1 || len(s.cand) <= 1 {
		return
	}
	e := s.ents[:0]
	for i, id := range s.cand {
		e = append(e, entry{p: s.probs[i], id: id})
	}
	s.ents = e
	n, mass := topMass(e, p)
	s.cand, s.probs = s.cand[:0], s.probs[:0]
	for _, x := range e[:n] {
		s.cand = append(s.cand, x.id)
		s.probs = append(s.probs, x.p/mass)
	}
}

// entry is a candidate with its probability.
type entry struct {
	p  float64
	id int
}

// ranks reports whether a ranks before b: more likely, or as likely with a lower id.
func (a entry) ranks(b entry) bool { return a.p > b.p || (a.p == b.p && a.id < b.id) }

// topMass reorders e so that e[:n] holds the shortest top-ranked prefix whose mass reaches need, and
// returns n and that mass. Each round partitions around a pivot (median of three): when the part
// ranked above the pivot already reaches the need, recurse into it; otherwise keep it (and the pivot)
// and look for the rest of the need below.
func topMass(e []entry, need float64) (int, float64) {
	lo, hi := 0, len(e) // the answer's boundary lies in e[lo:hi]; e[:lo] is kept
	var kept float64
	for hi-lo > 1 {
		mid := lo + (hi-lo)/2
		a, b, c := e[lo], e[mid], e[hi-1]
		pivot := b
		if a.ranks(b) != a.ranks(c) {
			pivot = a
		} else if c.ranks(a) != c.ranks(b) {
			pivot = c
		}
		// Partition e[lo:hi]: ranked above the pivot first, then the pivot, then below.
		i := lo
		var above float64
		for j := lo; j < hi; j++ {
			if e[j].ranks(pivot) {
				e[i], e[j] = e[j], e[i]
				above += e[i].p
				i++
			}
		}
		for j := i; j < hi; j++ {
			if e[j] == pivot {
				e[i], e[j] = e[j], e[i]
				break
			}
		}
		switch {
		case kept+above >= need:
			hi = i // the boundary is among the entries above the pivot
		case kept+above+e[i].p >= need:
			return i + 1, kept + above + e[i].p
		default:
			kept += above + e[i].p
			lo = i + 1
		}
	}
	if lo < hi { // one entry left: it is the boundary
		kept += e[lo].p
		lo++
	}
	return lo, kept // lo == len(e) when rounding left the total mass just under need
}

// draw samples one candidate by its probability.
func (s *Sampler) draw() int {
	u := s.rng.Float64()
	var acc float64
	for i, q := range s.probs {
		acc += q
		if u < acc {
			return s.cand[i]
		}
	}
	return s.cand[len(s.cand)-1] // rounding left u just above the total
}

// siftUp and siftDown maintain a heap ordered by less (the root is the element no other is less than).
func siftUp(h []int, i int, less func(a, b int) bool) {
	for i > 0 {
		parent := (i - 1) / 2
		if !less(h[i], h[parent]) {
			return
		}
		h[i], h[parent] = h[parent], h[i]
		i = parent
	}
}

func siftDown(h []int, i int, less func(a, b int) bool) {
	for {
		l := 2*i + 1
		if l >= len(h) {
			return
		}
		m := l
		if r := l + 1; r < len(h) && less(h[r], h[l]) {
			m = r
		}
		if !less(h[m], h[i]) {
			return
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
}

// expNonPositive is e^x for x <= 0, to within 4e-16 relative. math.Exp's amd64 assembly (the FMA
// path) took ~700 ns a call on the CPUs medassist is developed on, which made one softmax over a
// 32,000-token vocabulary cost ~20 ms; this polynomial takes ~7 ns.
func expNonPositive(x float64) float64 {
	const (
		ln2Hi = 6.93147180369123816490e-01
		ln2Lo = 1.90821492927058770002e-10
		log2e = 1.44269504088896338700e+00
	)
	if x < -708 { // below the smallest normal float64
		return 0
	}
	k := math.Floor(x*log2e + 0.5)
	r := (x - k*ln2Hi) - k*ln2Lo // |r| <= ln2/2
	// Taylor series of e^r up to r^13/13!: the remainder is below 2e-17.
	p := 1 + r*(1+r*(1.0/2+r*(1.0/6+r*(1.0/24+r*(1.0/120+r*(1.0/720+r*(1.0/5040+r*(1.0/40320+
		r*(1.0/362880+r*(1.0/3628800+r*(1.0/39916800+r*(1.0/479001600+r*(1.0/6227020800)))))))))))))
	return p * math.Float64frombits(uint64(int64(k)+1023)<<52)
}
