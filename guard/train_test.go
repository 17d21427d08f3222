package guard

import "testing"

// TestFoldsKeepParaphrasesTogether: examples whose embeddings are near each other (directly or
// through a chain) share a fold; the others are dealt apart.
func TestFoldsKeepParaphrasesTogether(t *testing.T) {
	xs := [][]float32{
		{1, 0, 0}, {0.99, 0.141, 0}, // a pair: cosine 0.99
		{0, 1, 0}, {0, 0.95, 0.312}, {0, 0.81, 0.586}, // a chain: 0.95, then 0.95 with the middle one
		{0, 0, 1}, {0.6, 0, 0.8}, {-1, 0, 0}, {0, -1, 0}, {0, 0, -1},
	}
	group := groupsOf(xs, 0.9)
	if group[0] != group[1] || group[2] != group[3] || group[3] != group[4] {
		t.Errorf("near paraphrases in different groups: %v", group)
	}
	if group[0] == group[2] || group[5] == group[4] || group[6] == group[0] || group[6] == group[5] {
		t.Errorf("distinct examples grouped: %v", group)
	}
	fold := foldsOf(group, 3, 7)
	if fold[0] != fold[1] || fold[2] != fold[4] {
		t.Errorf("a group split across folds: %v", fold)
	}
	if g := groupsOf(xs, 0); g[0] == g[1] {
		t.Errorf("minCos 0 must keep every example alone: %v", g)
	}
	used := map[int]bool{}
	for _, f := range fold {
		used[f] = true
	}
	if len(used) != 3 {
		t.Errorf("folds %v: want all 3 used", fold)
	}
}
