package guard

import (
	"cmp"
	"math"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/medassist/medassist/guard/internal/splitmix"
)

// The out-of-domain classifier is a logistic regression over hashed features of the normalised
// message: words, word pairs, character 3- to 5-grams of each word (robust to typos and to medical
// word formation: -itis, -emia, cardio-) and the number of medical-vocabulary phrases. It is trained
// when the guard is built on the examples in assets/guard/examples (medical and emergency messages
// are in the domain, non-medical ones are not), deterministically, and its refusal threshold is
// chosen by k-fold cross-validation on those same examples.

const (
	hashBits = 18
	hashDim  = 1 << hashBits
	// cross-validation of the out-of-domain classifier: k folds, repeated with new folds
	cvFolds   = 5
	cvK       = cvFolds
	cvRepeats = 3
	// stochastic gradient descent
	epochs    = 12
	learnRate = 0.5
	l2        = 1e-5
	// feature group weights
	charW   = float32(0.5)
	medW    = float32(1)
	bigramW = float32(1)
	// refusing a health question costs more than answering an off-topic one
	costRefuseMedical = 1.2
	costAllowOther    = 1.0
)

// sparse is a feature vector: hashed indices and values.
type sparse struct {
	idx []uint32
	val []float32
}

// FNV-1a, used to hash feature names into the weight vector.
const (
	fnvOffset = uint32(2166136261)
	fnvPrime  = uint32(16777619)
)

func fnvString(h uint32, s string) uint32 {
	for i := 0; i < len(s); i++ {
		h ^= uint32(s[i])
		h *= fnvPrime
	}
	return h
}

// featureIndex hashes a feature name into the weight vector.
func featureIndex(s string) uint32 { return fnvString(fnvOffset, s) & (hashDim - 1) }

// feature is one (index, value) pair.
type feature struct {
	idx uint32
	val float32
}

// features turns a normalised message into a feature vector in three groups, each scaled on its own
// so that a long message does not drown the vocabulary signal: words and word pairs (unit length),
// character n-grams (length charW), and the vocabulary evidence (counts of medical phrases, of
// other-domain phrases and of medical words in other senses; fixed values).
func features(d *doc, voc vocabulary) sparse {
	unigrams := make([]uint32, 0, len(d.toks))
	bigrams := make([]uint32, 0, len(d.toks))
	chars := make([]uint32, 0, 12*len(d.toks))
	var buf [100]byte
	wh, bh, ch := fnvString(fnvOffset, "w:"), fnvString(fnvOffset, "b:"), fnvString(fnvOffset, "c:")
	for i, t := range d.toks {
		w := t.text
		if t.num {
			w = "<num>"
		}
		unigrams = append(unigrams, fnvString(wh, w)&(hashDim-1))
		if i+1 < len(d.toks) && d.toks[i+1].sent == t.sent {
			n := d.toks[i+1].text
			if d.toks[i+1].num {
				n = "<num>"
			}
			bigrams = append(bigrams, fnvString(fnvString(fnvString(bh, w), " "), n)&(hashDim-1))
		}
		if t.num {
			continue
		}
		// character 3- to 5-grams of "<word>", over runes, the word cut at 22 runes
		b := append(buf[:0], '<')
		var starts [25]int
		nr := 0
		for j, r := range w {
			if nr == 22 {
				b = b[:1+j]
				break
			}
			starts[nr+1] = len(b)
			b = utf8.AppendRune(b, r)
			nr++
		}
		b = append(b, '>')
		nr += 2
		starts[nr-1] = len(b) - 1
		starts[nr] = len(b)
		for n := 3; n <= 5; n++ {
			for j := 0; j+n <= nr; j++ {
				h := ch
				for _, c := range b[starts[j]:starts[j+n]] {
					h ^= uint32(c)
					h *= fnvPrime
				}
				chars = append(chars, h&(hashDim-1))
			}
		}
	}
	words := append(counted(unigrams, 1), counted(bigrams, bigramW)...)
	out := make([]feature, 0, len(words)+len(chars)/2+12)
	out = appendScaled(out, words, 1)
	out = appendScaled(out, counted(chars, 1), charW)
	add := func(name string, v float32) { out = append(out, feature{featureIndex(name), v}) }
	add("bias", 1)
	vocab := func(name string, n int) {
		if n == 0 {
			add(name+":none", medW)
			return
		}
		add(name+":any", medW)
		add(name+":log", medW*float32(math.Log1p(float64(n))))
		frac := float64(n) / float64(max(len(d.toks), 1))
		add(name+":frac", medW*float32(math.Min(1, 3*frac)))
	}
	vocab("med", voc.medical)
	vocab("oth", voc.other)
	if voc.medical > 0 && voc.other > 0 {
		add("med+oth", medW)
	}
	if voc.figurative > 0 {
		add("fig:any", medW)
		add("fig:log", medW*float32(math.Log1p(float64(voc.figurative))))
	}
	if len(d.toks) <= 3 {
		add("len:short", 1)
	}
	return toSparse(out)
}

// counted sorts hashed indices and turns repeats into counts times val.
func counted(idx []uint32, val float32) []feature {
	slices.Sort(idx)
	out := make([]feature, 0, len(idx))
	for i, k := range idx {
		if i > 0 && k == idx[i-1] {
			out[len(out)-1].val += val
			continue
		}
		out = append(out, feature{k, val})
	}
	return out
}

// appendScaled appends group g to out scaled to Euclidean length scale.
func appendScaled(out, g []feature, scale float32) []feature {
	var n float64
	for _, f := range g {
		n += float64(f.val * f.val)
	}
	if n == 0 {
		return out
	}
	k := scale / float32(math.Sqrt(n))
	for _, f := range g {
		out = append(out, feature{f.idx, f.val * k})
	}
	return out
}

// toSparse sorts features by index, summing those that share one (hash collisions across groups).
func toSparse(fs []feature) sparse {
	slices.SortFunc(fs, func(a, b feature) int { return cmp.Compare(a.idx, b.idx) })
	v := sparse{idx: make([]uint32, 0, len(fs)), val: make([]float32, 0, len(fs))}
	for i, f := range fs {
		if i > 0 && f.idx == fs[i-1].idx {
			v.val[len(v.val)-1] += f.val
			continue
		}
		v.idx = append(v.idx, f.idx)
		v.val = append(v.val, f.val)
	}
	return v
}

// classifier is a binary logistic regression: the probability that a message is out of domain.
type classifier struct {
	w []float32
	b float32
}

func (c *classifier) logit(x sparse) float64 {
	s := float64(c.b)
	for i, k := range x.idx {
		s += float64(c.w[k] * x.val[i])
	}
	return s
}

func (c *classifier) prob(x sparse) float64 { return sigmoid(c.logit(x)) }

func sigmoid(z float64) float64 {
	if z >= 0 {
		return 1 / (1 + math.Exp(-z))
	}
	e := math.Exp(z)
	return e / (1 + e)
}

// example is one labelled training message.
type example struct {
	x   sparse
	ood bool
}

// train fits a classifier by stochastic gradient descent with class-balanced weights and L2
// regularisation, visiting the examples in a fixed pseudo-random order (deterministic).
func train(data []example, seed uint64) *classifier {
	c := &classifier{w: make([]float32, hashDim)}
	var nPos, nNeg int
	for _, e := range data {
		if e.ood {
			nPos++
		} else {
			nNeg++
		}
	}
	if nPos == 0 || nNeg == 0 {
		return c
	}
	wPos := float64(len(data)) / (2 * float64(nPos))
	wNeg := float64(len(data)) / (2 * float64(nNeg))
	order := make([]int, len(data))
	for i := range order {
		order[i] = i
	}
	rng := splitmix.Source(seed)
	for ep := 0; ep < epochs; ep++ {
		shuffle(order, &rng)
		lr := learnRate / (1 + 0.5*float64(ep))
		for _, i := range order {
			e := data[i]
			p := sigmoid(c.logit(e.x))
			g, wt := p, wNeg
			if e.ood {
				g, wt = p-1, wPos
			}
			g *= wt * lr
			for j, k := range e.x.idx {
				c.w[k] -= float32(g*float64(e.x.val[j]) + lr*l2*float64(c.w[k]))
			}
			c.b -= float32(g)
		}
	}
	return c
}

func shuffle(a []int, rng *splitmix.Source) {
	for i := len(a) - 1; i > 0; i-- {
		j := int(rng.Next() % uint64(i+1))
		a[i], a[j] = a[j], a[i]
	}
}

// Calibration is what cross-validation on the training examples found.
type Calibration struct {
	Examples        int     // training examples (in domain + out of domain)
	InDomain        int     // medical and emergency examples
	OutOfDomain     int     // non-medical examples
	Folds           int     // k of the k-fold cross-validation
	Repeats         int     // how many times the cross-validation was run with new folds
	AUC             float64 // out-of-fold area under the ROC curve
	PlattA, PlattB  float64 // Platt scaling of the out-of-fold logits
	Threshold       float64 // chosen out-of-domain probability threshold
	AllowedInDomain float64 // out-of-fold share of in-domain examples allowed at the threshold
	RefusedOther    float64 // out-of-fold share of non-medical examples refused at the threshold
}

// calibrate scores every example with models trained on the other folds (k-fold cross-validation,
// repeated with different fold assignments), fits Platt scaling to those out-of-fold scores (a
// logistic regression of the label on the score's logit, classes weighted equally) and sets the
// threshold where the calibrated probability of being out of domain reaches
// costRefuseMedical / (costRefuseMedical + costAllowOther): refusing a health question weighs more
// than answering an off-topic one. The two-parameter fit uses every score, so the threshold does not
// jump with a few examples the way a threshold picked from the empirical error curve does.
func calibrate(data []example, seed uint64) Calibration {
	cal := Calibration{Folds: cvK, Repeats: cvRepeats}
	for _, e := range data {
		cal.Examples++
		if e.ood {
			cal.OutOfDomain++
		} else {
			cal.InDomain++
		}
	}
	if cal.OutOfDomain == 0 || cal.InDomain == 0 {
		cal.Threshold = 0.5
		return cal
	}
	scores := outOfFold(data, seed, cvRepeats)
	a, b := plattFit(scores)
	target := costRefuseMedical / (costRefuseMedical + costAllowOther)
	z := (math.Log(target/(1-target)) - b) / a // raw logit at which the calibrated probability is target
	cal.Threshold = sigmoid(z)
	cal.PlattA, cal.PlattB = a, b
	var allowedIn, refusedOut int
	for _, s := range scores {
		switch {
		case s.ood && s.z >= z:
			refusedOut++
		case !s.ood && s.z < z:
			allowedIn++
		}
	}
	cal.AllowedInDomain = float64(allowedIn) / float64(cal.InDomain*cvRepeats)
	cal.RefusedOther = float64(refusedOut) / float64(cal.OutOfDomain*cvRepeats)
	cal.AUC = auc(scores)
	return cal
}

// oofScore is an out-of-fold score: the raw logit of a model that did not see the example.
type oofScore struct {
	z   float64
	ood bool
}

// outOfFold runs repeats × k-fold cross-validation and returns every out-of-fold score. Folds train
// concurrently; each is deterministic and the scores are gathered in a fixed order.
func outOfFold(data []example, seed uint64, repeats int) []oofScore {
	type job struct {
		folds []int
		f, r  int
	}
	var jobs []job
	for r := 0; r < repeats; r++ {
		folds := assignFolds(len(data), seed^(0x5eed+uint64(r)))
		for f := 0; f < cvK; f++ {
			jobs = append(jobs, job{folds, f, r})
		}
	}
	results := make([][]oofScore, len(jobs))
	parallel(len(jobs), func(j int) {
		jb := jobs[j]
		c := trainWithout(data, jb.folds, jb.f, seed+uint64(jb.r*cvK+jb.f)+1)
		for i, e := range data {
			if jb.folds[i] == jb.f {
				results[j] = append(results[j], oofScore{c.logit(e.x), e.ood})
			}
		}
	})
	var scores []oofScore
	for _, r := range results {
		scores = append(scores, r...)
	}
	return scores
}

// assignFolds puts each of n examples into one of cvK folds, in an order shuffled by seed.
func assignFolds(n int, seed uint64) []int {
	order := make([]int, n)
	for i := range order {
		order[i] = i
	}
	rng := splitmix.Source(seed)
	shuffle(order, &rng)
	folds := make([]int, n)
	for rank, i := range order {
		folds[i] = rank % cvK
	}
	return folds
}

// trainWithout trains a classifier on the examples outside fold f.
func trainWithout(data []example, folds []int, f int, seed uint64) *classifier {
	var tr []example
	for i, e := range data {
		if folds[i] != f {
			tr = append(tr, e)
		}
	}
	return train(tr, seed)
}

// parallel calls fn(0), …, fn(n-1) on at most GOMAXPROCS goroutines at a time and waits for all.
func parallel(n int, fn func(j int)) {
	var wg sync.WaitGroup
	sem := make(chan struct{}, runtime.GOMAXPROCS(0))
	for j := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			fn(j)
		}()
	}
	wg.Wait()
}

// plattFit fits P(ood | z) = sigmoid(a·z + b) by Newton's method on the class-balanced log loss.
func plattFit(scores []oofScore) (a, b float64) {
	var nPos, nNeg float64
	for _, s := range scores {
		if s.ood {
			nPos++
		} else {
			nNeg++
		}
	}
	wPos, wNeg := 0.5/nPos, 0.5/nNeg
	a, b = 1, 0
	for it := 0; it < 50; it++ {
		var ga, gb, haa, hab, hbb float64
		for _, s := range scores {
			p := sigmoid(a*s.z + b)
			y, w := 0.0, wNeg
			if s.ood {
				y, w = 1, wPos
			}
			d := w * (p - y)
			h := w * p * (1 - p)
			ga += d * s.z
			gb += d
			haa += h * s.z * s.z
			hab += h * s.z
			hbb += h
		}
		haa += 1e-9
		hbb += 1e-9
		det := haa*hbb - hab*hab
		if det <= 0 {
			break
		}
		da := (hbb*ga - hab*gb) / det
		db := (haa*gb - hab*ga) / det
		a, b = a-da, b-db
		if math.Abs(da)+math.Abs(db) < 1e-10 {
			break
		}
	}
	if a <= 0 { // degenerate: scores carry no signal in the expected direction
		a, b = 1, 0
	}
	return a, b
}

// auc is the area under the ROC curve of out-of-fold scores (ties count half).
func auc(scores []oofScore) float64 {
	s := append([]oofScore(nil), scores...)
	sort.Slice(s, func(i, j int) bool { return s[i].z < s[j].z })
	var neg, sum float64
	for i := 0; i < len(s); {
		j := i
		var p, n float64
		for j < len(s) && s[j].z == s[i].z {
			if s[j].ood {
				p++
			} else {
				n++
			}
			j++
		}
		sum += p * (neg + n/2)
		neg += n
		i = j
	}
	pos := float64(len(s)) - neg
	if pos == 0 || neg == 0 {
		return 0
	}
	return sum / (pos * neg)
}

// calibrateRate picks the out-of-fold probability threshold at which at most maxFPR of the
// negatives score at or above it (for the emergency backstop: precision first), and reports the
// share of positives it catches there.
func calibrateRate(data []example, seed uint64, maxFPR float64) (threshold, recall, fpr float64) {
	return rateThreshold(outOfFold(data, seed, 1), maxFPR)
}

// rateThreshold is calibrateRate's choice over given out-of-fold scores.
func rateThreshold(scores []oofScore, maxFPR float64) (threshold, recall, fpr float64) {
	var neg, pos []float64
	for _, s := range scores {
		if s.ood {
			pos = append(pos, s.z)
		} else {
			neg = append(neg, s.z)
		}
	}
	if len(pos) == 0 || len(neg) == 0 {
		return 1, 0, 0
	}
	sort.Float64s(neg)
	k := int(math.Floor(maxFPR * float64(len(neg)))) // negatives allowed at or above the threshold
	z := neg[len(neg)-1-k] + 1e-9
	if k > 0 {
		z = (neg[len(neg)-1-k] + neg[len(neg)-k]) / 2
	}
	caught, falses := 0, 0
	for _, p := range pos {
		if p >= z {
			caught++
		}
	}
	for _, n := range neg {
		if n >= z {
			falses++
		}
	}
	return sigmoid(z), float64(caught) / float64(len(pos)), float64(falses) / float64(len(neg))
}

// explain names the words of d that push hardest towards the side the classifier chose, skipping
// words for which skip is true (function words).
func (c *classifier) explain(d *doc, ood bool, n int, skip func(string) bool) []string {
	type contrib struct {
		w string
		v float32
	}
	var cs []contrib
	seen := map[string]bool{}
	for _, t := range d.toks {
		if t.num || seen[t.text] || len(t.text) < 3 || skip(t.text) {
			continue
		}
		seen[t.text] = true
		v := c.w[featureIndex("w:"+t.text)]
		if !ood {
			v = -v
		}
		if v > 0 {
			cs = append(cs, contrib{t.text, v})
		}
	}
	sort.SliceStable(cs, func(a, b int) bool { return cs[a].v > cs[b].v })
	out := make([]string, 0, n)
	for i := 0; i < len(cs) && i < n; i++ {
		out = append(out, cs[i].w)
	}
	return out
}

// exampleLines reads one example per line, skipping blanks and # comments.
func exampleLines(text string) []string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		l = strings.TrimSpace(l)
		if l != "" && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return out
}
