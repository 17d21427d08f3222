package guard

import (
	"fmt"
	"math"
	"sort"

	"github.com/medassist/medassist/guard/internal/splitmix"
)

// TrainOptions set how the head is trained. The result is a pure function of the embeddings,
// the labels and these options: one thread, a fixed order drawn from Seed.
type TrainOptions struct {
	Neighbours   int     // neighbours that vote
	Epochs       int     // passes over the data
	Batch        int     // examples per Adam step
	LearningRate float64 // Adam step size
	L2           float64 // weight decay on the weights (not the biases)
	Seed         uint64  // initialisation and order
	Folds        int     // cross-validation folds that choose the thresholds
	// EmergencyRecall is the out-of-fold share of training emergencies the emergency threshold
	// keeps.
	EmergencyRecall float64
	// RefuseCost is how much worse refusing a health question is than answering an off-topic one;
	// the off-topic threshold minimises the out-of-fold cost.
	RefuseCost float64
	// WordEpochs, WordLearningRate and WordL2 train the word and character readers (Words) as the
	// three above train the embedding's linear part.
	WordEpochs       int
	WordLearningRate float64
	WordL2           float64
	// StackSteps, StackLearningRate and StackL2 train the stacker (full-batch Adam steps).
	StackSteps        int
	StackLearningRate float64
	StackL2           float64
	// GroupCosine: examples this similar (embedding cosine, and any chain of such pairs) share a
	// fold, so that a paraphrase in another fold does not flatter the cross-validation; 0 deals
	// every example on its own.
	GroupCosine float64
}

// DefaultTrainOptions are the options of the committed head.
var DefaultTrainOptions = TrainOptions{Neighbours: 3, Epochs: 40, Batch: 32, LearningRate: 0.003, L2: 1e-4,
	Seed: 20261207, Folds: 5, EmergencyRecall: 0.985, RefuseCost: 2.0, GroupCosine: 0.9,
	WordEpochs: 20, WordLearningRate: 0.01, WordL2: 1e-5, StackSteps: 300, StackLearningRate: 0.05, StackL2: 1e-3}

// CrossValidation reports the out-of-fold results that chose the thresholds.
type CrossValidation struct {
	Examples           int
	Recall             [numClasses]float64 // out-of-fold share of each class decided as that class
	EmergencyThreshold float64
	OffTopicThreshold  float64
}

// TrainHead trains the head on texts, their embeddings xs and classes ys. The readers are
// cross-validated first; the stacker learns from their out-of-fold readings, and is itself
// cross-validated on them (same folds) for the out-of-fold probabilities the thresholds come from;
// then the readers are trained on everything, and the stacker on all out-of-fold readings.
func TrainHead(texts []string, xs [][]float32, ys []int, opt TrainOptions) (*Head, CrossValidation, error) {
	if len(xs) != len(ys) || len(texts) != len(ys) || len(xs) == 0 {
		return nil, CrossValidation{}, fmt.Errorf("guard train: %d texts, %d embeddings and %d labels", len(texts), len(xs), len(ys))
	}
	var count [numClasses]int
	for _, y := range ys {
		if y < 0 || y >= numClasses {
			return nil, CrossValidation{}, fmt.Errorf("guard train: class %d out of range", y)
		}
		count[y]++
	}
	for k, n := range count {
		if n < opt.Folds {
			return nil, CrossValidation{}, fmt.Errorf("guard train: %d %s examples; need at least one per fold (%d)", n, ClassNames[k], opt.Folds)
		}
	}
	readings := make([][numReadings][numClasses]float64, len(xs))
	fold := foldsOf(groupsOf(xs, opt.GroupCosine), opt.Folds, opt.Seed)
	for f := 0; f < opt.Folds; f++ {
		tr, held := foldSplit(fold, f)
		h := fit(pick(texts, tr), pick(xs, tr), pick(ys, tr), opt, opt.Seed+uint64(f)+1)
		for _, i := range held {
			readings[i] = h.readings(texts[i], xs[i])
		}
	}
	ins := make([][stackInputs]float64, len(xs))
	for i := range ins {
		ins[i] = stackInput(readings[i], shapeOf(texts[i]))
	}
	oof := make([][numClasses]float64, len(xs))
	for f := 0; f < opt.Folds; f++ {
		tr, held := foldSplit(fold, f)
		st := fitStack(pick(ins, tr), pick(ys, tr), opt)
		for _, i := range held {
			oof[i] = st.probs(ins[i])
		}
	}
	cv := CrossValidation{Examples: len(xs)}
	cv.EmergencyThreshold = emergencyThreshold(oof, ys, opt.EmergencyRecall)
	cv.OffTopicThreshold = offTopicThreshold(oof, ys, cv.EmergencyThreshold, opt.RefuseCost)
	h := fit(texts, xs, ys, opt, opt.Seed)
	h.Stack = fitStack(ins, ys, opt)
	h.EmergencyThreshold, h.OffTopicThreshold = float32(cv.EmergencyThreshold), float32(cv.OffTopicThreshold)
	var right [numClasses]int
	for i, p := range oof {
		if h.decide(p) == ys[i] {
			right[ys[i]]++
		}
	}
	for k := range right {
		cv.Recall[k] = float64(right[k]) / float64(count[k])
	}
	return h, cv, nil
}

// foldSplit returns, in order, the examples outside fold f (to train on) and those in it (to read).
func foldSplit(fold []int, f int) (train, held []int) {
	for i, g := range fold {
		if g == f {
			held = append(held, i)
		} else {
			train = append(train, i)
		}
	}
	return train, held
}

// pick returns the elements of s at the indices idx, in that order.
func pick[T any](s []T, idx []int) []T {
	out := make([]T, len(idx))
	for j, i := range idx {
		out[j] = s[i]
	}
	return out
}

// groupsOf numbers the groups of near paraphrases: examples whose embeddings have a cosine of at
// least minCos, directly or through a chain of such pairs, share a group (union–find). The group
// of an example is the smallest index in it, renumbered 0..groups-1 in order of first appearance.
func groupsOf(xs [][]float32, minCos float64) []int {
	parent := make([]int, len(xs))
	for i := range parent {
		parent[i] = i
	}
	var find func(int) int
	find = func(i int) int {
		for parent[i] != i {
			parent[i] = parent[parent[i]]
			i = parent[i]
		}
		return i
	}
	if minCos > 0 {
		thr := float32(minCos)
		for i := range xs {
			for j := i + 1; j < len(xs); j++ {
				if dot32(xs[i], xs[j]) >= thr {
					if a, b := find(i), find(j); a != b {
						parent[max(a, b)] = min(a, b)
					}
				}
			}
		}
	}
	ids := map[int]int{}
	group := make([]int, len(xs))
	for i := range xs {
		r := find(i)
		id, ok := ids[r]
		if !ok {
			id = len(ids)
			ids[r] = id
		}
		group[i] = id
	}
	return group
}

func dot32(a, b []float32) float32 {
	var s float32
	for i, v := range a {
		s += v * b[i]
	}
	return s
}

// foldsOf deals the groups into folds in a seeded random order; every example goes with its group.
func foldsOf(group []int, folds int, seed uint64) []int {
	groups := 0
	for _, g := range group {
		groups = max(groups, g+1)
	}
	order := permutation(groups, splitmix.Source(seed))
	foldOfGroup := make([]int, groups)
	for rank, g := range order {
		foldOfGroup[g] = rank % folds
	}
	fold := make([]int, len(group))
	for i, g := range group {
		fold[i] = foldOfGroup[g]
	}
	return fold
}

// permutation is a Fisher–Yates shuffle of 0..n-1 driven by src.
func permutation(n int, src splitmix.Source) []int {
	p := make([]int, n)
	for i := range p {
		p[i] = i
	}
	for i := n - 1; i > 0; i-- {
		j := int(src.Next() % uint64(i+1))
		p[i], p[j] = p[j], p[i]
	}
	return p
}

// emergencyThreshold is the highest threshold that keeps the wanted share of the out-of-fold
// emergencies (never above 0.5, never below 0.02).
func emergencyThreshold(oof [][numClasses]float64, ys []int, recall float64) float64 {
	var ps []float64
	for i, p := range oof {
		if ys[i] == classEmergency {
			ps = append(ps, p[classEmergency])
		}
	}
	sort.Float64s(ps)
	k := int(math.Floor((1 - recall) * float64(len(ps))))
	t := ps[min(k, len(ps)-1)]
	return math.Round(min(max(t, 0.02), 0.5)*1e4) / 1e4
}

// offTopicThreshold minimises, over the out-of-fold examples that are not emergencies,
// refuseCost × (share of health questions refused) + (share of off-topic messages answered).
func offTopicThreshold(oof [][numClasses]float64, ys []int, emergThr, refuseCost float64) float64 {
	best, bestCost := 0.5, math.Inf(1)
	for t := 0.05; t < 0.951; t += 0.01 {
		var refused, med, answered, non float64
		for i, p := range oof {
			if p[classEmergency] >= emergThr {
				continue
			}
			off := offTopic(p) >= t
			switch ys[i] {
			case classMedical:
				med++
				if off {
					refused++
				}
			case classNonmedical:
				non++
				if !off {
					answered++
				}
			}
		}
		cost := refuseCost*refused/max(med, 1) + answered/max(non, 1)
		if cost < bestCost-1e-12 {
			best, bestCost = t, cost
		}
	}
	return math.Round(best*100) / 100
}

// fit trains the embedding's linear part by mini-batch Adam on the class-balanced softmax
// cross-entropy, remembers xs for the neighbour vote and trains the word and character readers on
// texts (the stacker is TrainHead's).
func fit(texts []string, xs [][]float32, ys []int, opt TrainOptions, seed uint64) *Head {
	dim := len(xs[0])
	h := &Head{Dim: dim, W: make([]float32, numClasses*dim), B: make([]float32, numClasses)}
	src := splitmix.Source(seed)
	initWeights(h.W, dim, &src)
	in := make([][]float64, len(xs))
	for i, x := range xs {
		in[i] = toFloat64(x)
	}
	softmaxFit{W: h.W, B: h.B, Epochs: opt.Epochs, Batch: opt.Batch, LearningRate: opt.LearningRate, L2: opt.L2}.run(ys, &src,
		func(i int) [numClasses]float64 { return h.linear(in[i]) },
		func(i, k int, d float64, gw []float64) {
			row := gw[k*h.Dim : (k+1)*h.Dim]
			for j, v := range in[i] {
				row[j] += d * v
			}
		})
	h.remember(xs, ys, opt.Neighbours)
	toks := make([][]token, len(texts))
	for i, t := range texts {
		toks[i] = analyze(t).toks
	}
	h.Words = fitWords(toks, ys, false, opt, seed^0x5751)
	h.Chars = fitWords(toks, ys, true, opt, seed^0xc4a5)
	return h
}

// initWeights draws weights uniformly in ±sqrt(6/fanIn) (He-uniform).
func initWeights(w []float32, fanIn int, src *splitmix.Source) {
	limit := math.Sqrt(6 / float64(fanIn))
	for i := range w {
		u := float64(src.Next()>>11) / (1 << 53)
		w[i] = float32((2*u - 1) * limit)
	}
}

// softmaxFit trains a linear softmax (weights W, biases B) by Adam on the class-balanced
// cross-entropy, with L2 decay on W (not B): Epochs passes over the examples in batches of Batch, in
// orders drawn from src; with Batch ≤ 0, Epochs full-batch steps over the examples in order.
type softmaxFit struct {
	W, B         []float32
	Epochs       int
	Batch        int
	LearningRate float64
	L2           float64
}

// run trains on the examples 0..len(ys)-1: probs gives example i's distribution under the current
// weights and addInputs adds d × (example i's inputs) into the gradient of W's row k.
func (f softmaxFit) run(ys []int, src *splitmix.Source, probs func(i int) [numClasses]float64, addInputs func(i, k int, d float64, gw []float64)) {
	params := [][]float32{f.W, f.B}
	ad := newAdam(params)
	classW := classWeights(ys)
	grads := [][]float64{make([]float64, len(f.W)), make([]float64, len(f.B))}
	step := func(batch []int) {
		for _, g := range grads {
			clear(g)
		}
		for _, i := range batch {
			p := probs(i)
			weight := classW[ys[i]] / float64(len(batch))
			for k := range p {
				d := p[k] * weight
				if k == ys[i] {
					d -= weight
				}
				grads[1][k] += d
				addInputs(i, k, d, grads[0])
			}
		}
		for j, w := range f.W {
			grads[0][j] += f.L2 * float64(w)
		}
		ad.step(params, grads, f.LearningRate)
	}
	if f.Batch <= 0 {
		all := make([]int, len(ys))
		for i := range all {
			all[i] = i
		}
		for range f.Epochs {
			step(all)
		}
		return
	}
	for range f.Epochs {
		order := permutation(len(ys), *src)
		src.Next()
		for start := 0; start < len(order); start += f.Batch {
			step(order[start:min(start+f.Batch, len(order))])
		}
	}
}

// adam is the Adam optimiser's state for a list of parameter slices.
type adam struct {
	m, v [][]float64
	t    int
}

func newAdam(params [][]float32) *adam {
	a := &adam{}
	for _, p := range params {
		a.m = append(a.m, make([]float64, len(p)))
		a.v = append(a.v, make([]float64, len(p)))
	}
	return a
}

func (a *adam) step(params [][]float32, grads [][]float64, lr float64) {
	const b1, b2, eps = 0.9, 0.999, 1e-8
	a.t++
	c1, c2 := 1-math.Pow(b1, float64(a.t)), 1-math.Pow(b2, float64(a.t))
	for pi, p := range params {
		m, v, g := a.m[pi], a.v[pi], grads[pi]
		for j := range p {
			m[j] = b1*m[j] + (1-b1)*g[j]
			v[j] = b2*v[j] + (1-b2)*g[j]*g[j]
			p[j] -= float32(lr * (m[j] / c1) / (math.Sqrt(v[j]/c2) + eps))
		}
	}
}
