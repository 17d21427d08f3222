package data

import (
	"strings"

	"golang.org/x/text/unicode/norm"
)

// CleanStats counts what Clean removed.
type CleanStats struct {
	Incomplete int // a question or an answer empty after trimming
	Duplicates int // same normalised question and answer as an earlier pair
}

// Clean trims white space around each question and answer, drops pairs with an empty side, and
// drops repeats of an earlier pair, compared after normalisation (Unicode NFKC, case folded, runs
// of white space collapsed). The first occurrence is kept; order is preserved.
func Clean(pairs []Pair) ([]Pair, CleanStats) {
	var st CleanStats
	seen := make(map[string]bool, len(pairs))
	out := make([]Pair, 0, len(pairs))
	for _, p := range pairs {
		p.Question, p.Answer = strings.TrimSpace(p.Question), strings.TrimSpace(p.Answer)
		if p.Question == "" || p.Answer == "" {
			st.Incomplete++
			continue
		}
		key := normalise(p.Question) + "\x00" + normalise(p.Answer)
		if seen[key] {
			st.Duplicates++
			continue
		}
		seen[key] = true
		out = append(out, p)
	}
	return out, st
}

// normalise is the form two texts are compared in for de-duplication.
func normalise(s string) string {
	return strings.Join(strings.Fields(strings.ToLower(norm.NFKC.String(s))), " ")
}
