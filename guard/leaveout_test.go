package guard

import (
	"os"
	"strconv"
	"strings"
	"testing"
)

// TestLeaveOneBatchOut trains the head without one part of the corpus at a time and runs the whole
// guard on that part: how the head does on a writer it has not seen. It is how the corpus batches and
// the training options were chosen (GUARD.md, "Training"), and it only runs when asked:
//
//	GUARD_LEAVE_OUT="corpus v4|corpus v5b" go test ./guard -run TestLeaveOneBatchOut -v -timeout 60m
//
// GUARD_LEAVE_OUT lists source substrings separated by |; GUARD_EMERGENCY_RECALL and
// GUARD_REFUSE_COST override the default training options.
func TestLeaveOneBatchOut(t *testing.T) {
	spec := os.Getenv("GUARD_LEAVE_OUT")
	if spec == "" {
		t.Skip("set GUARD_LEAVE_OUT to the source substrings to leave out, separated by |")
	}
	opt := DefaultTrainOptions
	for env, dst := range map[string]*float64{"GUARD_EMERGENCY_RECALL": &opt.EmergencyRecall, "GUARD_REFUSE_COST": &opt.RefuseCost} {
		if v := os.Getenv(env); v != "" {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %v", env, err)
			}
			*dst = f
		}
	}
	items := corpusItems(t)
	emb := testEmbedder(t)
	for _, part := range strings.Split(spec, "|") {
		var train, held []Item
		for _, it := range items {
			if strings.Contains(it.Source, part) {
				held = append(held, it)
			} else {
				train = append(train, it)
			}
		}
		if len(held) == 0 {
			t.Fatalf("no corpus example has %q in its source", part)
		}
		h, cv, err := Train(emb, train, opt)
		if err != nil {
			t.Fatal(err)
		}
		g := newTestGuard(t, testConfig(t))
		g.head = h
		r := g.Evaluate(held)
		t.Logf("left out %q (%d examples; trained on %d, out-of-fold %.3f / %.3f / %.3f): emergency %.3f, health allowed %.3f, off-topic refused %.3f; confusion %v",
			part, len(held), len(train), cv.Recall[0], cv.Recall[1], cv.Recall[2], r.Recall(0), r.Recall(1), r.Recall(2), r.Confusion)
	}
}
