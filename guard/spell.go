package guard

import "unicode/utf8"

// speller corrects typos in words the guard does not know towards the words its lexicons use
// ("unconcious" → "unconscious", "siezure" → "seizure", "breathign" → "breathing"). Words it knows —
// English dictionary words, lexicon words and every word of the training examples — are never
// changed, so "strike" stays "strike" although it is one letter away from "stroke". A correction
// keeps the first letter and is one edit away (two for words of nine letters or more).
//
// It is a symmetric-delete index (as in SymSpell): a word and a typo within edit distance d share a
// deletion variant, and candidates are confirmed with the optimal-string-alignment distance.
type speller struct {
	known   map[string]bool
	targets map[string]int      // correction targets and their weight (lexicon frequency)
	deletes map[string][]string // deletion variant → targets
}

const (
	spellMinLen  = 5 // shorter words are left alone
	spellLongLen = 9 // words this long may be two edits away
)

func newSpeller(targets map[string]int, known map[string]bool) *speller {
	s := &speller{known: known, targets: map[string]int{}, deletes: map[string][]string{}}
	for w, n := range targets {
		if utf8.RuneCountInString(w) < spellMinLen {
			continue
		}
		s.targets[w] = n
		s.known[w] = true
		for _, d := range deletions(w, maxEdits(w)) {
			s.deletes[d] = append(s.deletes[d], w)
		}
	}
	return s
}

func maxEdits(w string) int {
	if utf8.RuneCountInString(w) >= spellLongLen {
		return 2
	}
	return 1
}

// correct returns the target closest to w, or w itself when w is known, short, a number or has no
// close target.
func (s *speller) correct(w string) string {
	if s.known[w] || utf8.RuneCountInString(w) < spellMinLen || (w[0] >= '0' && w[0] <= '9') {
		return w
	}
	best, bestD := w, 3
	first := firstRune(w)
	consider := func(t string) {
		if firstRune(t) != first {
			return
		}
		limit := min(maxEdits(t), maxEdits(w))
		d := osaDistance(w, t, limit)
		if d > limit {
			return
		}
		if s.better(w, t, d, best, bestD) {
			best, bestD = t, d
		}
	}
	if _, ok := s.targets[w]; ok {
		return w
	}
	for _, t := range s.deletes[w] {
		consider(t)
	}
	for _, d := range deletions(w, maxEdits(w)) {
		if _, ok := s.targets[d]; ok {
			consider(d)
		}
		for _, t := range s.deletes[d] {
			consider(t)
		}
	}
	return best
}

// better orders candidates: fewer edits, then the more frequent lexicon word, then alphabetical
// order (so the result never depends on map order).
func (s *speller) better(w, t string, d int, best string, bestD int) bool {
	if d != bestD {
		return d < bestD
	}
	if s.targets[t] != s.targets[best] {
		return s.targets[t] > s.targets[best]
	}
	return t < best
}

func firstRune(s string) rune {
	r, _ := utf8.DecodeRuneInString(s)
	return r
}

// deletions returns every string made by deleting 1..n runes of w (not w itself).
func deletions(w string, n int) []string {
	var out []string
	seen := map[string]bool{}
	level := []string{w}
	for i := 0; i < n; i++ {
		var next []string
		for _, x := range level {
			r := []rune(x)
			if len(r) <= 1 {
				continue
			}
			for j := range r {
				d := string(r[:j]) + string(r[j+1:])
				if !seen[d] {
					seen[d] = true
					out = append(out, d)
					next = append(next, d)
				}
			}
		}
		level = next
	}
	return out
}

// osaDistance is the optimal-string-alignment edit distance (insertions, deletions, substitutions
// and adjacent transpositions), or limit+1 as soon as it must exceed limit.
func osaDistance(a, b string, limit int) int {
	ra, rb := []rune(a), []rune(b)
	if d := len(ra) - len(rb); d > limit || -d > limit {
		return limit + 1
	}
	prev2 := make([]int, len(rb)+1)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		rowMin := cur[0]
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			v := min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				v = min(v, prev2[j-2]+1)
			}
			cur[j] = v
			rowMin = min(rowMin, v)
		}
		if rowMin > limit {
			return limit + 1
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(rb)]
}
