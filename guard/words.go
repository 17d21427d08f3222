package guard

import (
	"hash/fnv"
	"math"
	"slices"

	"github.com/medassist/medassist/guard/internal/splitmix"
)

// wordBits is the size of the hashed word-feature space, 2^wordBits.
const wordBits = 18

// Words is the head's second reader: a linear softmax over the message's words and word pairs
// (unigrams and bigrams of the normalised tokens, hashed), weighted tf-idf style (1 + ln tf, times
// the feature's inverse document frequency in the corpus) and L2-normalised. The sentence encoder
// reads English well and other languages poorly; words catch what it misses there ("que faire",
// "mein Kind hat") and the wording that separates a question about a symptom from one happening now.
// Only features seen in training are kept (the others have zero weight), sorted by id. With Chars
// set, the features are instead the character 2- to 5-grams of each token (padded with a space on
// both sides), which also match inflections and misspellings.
type Words struct {
	Chars bool
	Docs  uint32    // training texts, for the idf of an unseen feature
	IDs   []uint32  // feature ids seen in training, ascending
	IDF   []float32 // inverse document frequency of each, ln((1+docs)/(1+df)) + 1
	W     []float32 // weights, numClasses per feature
	B     [numClasses]float32
	index map[uint32]int // feature id → position, built on load
}

// featureCounts counts the hashed features of a text's tokens (analyze): word unigrams and bigrams,
// or (chars) the character n-grams of each token.
func featureCounts(toks []token, chars bool) map[uint32]float64 {
	counts := map[uint32]float64{}
	add := func(parts ...string) {
		h := fnv.New32a()
		for i, p := range parts {
			if i > 0 {
				_, _ = h.Write([]byte{' '})
			}
			_, _ = h.Write([]byte(p))
		}
		counts[h.Sum32()&(1<<wordBits-1)]++
	}
	if chars {
		for _, t := range toks {
			r := []rune(" " + t.text + " ")
			for n := 2; n <= 5; n++ {
				for i := 0; i+n <= len(r); i++ {
					add(string(r[i : i+n]))
				}
			}
		}
		return counts
	}
	for i, t := range toks {
		add(t.text)
		if i > 0 {
			add(toks[i-1].text, t.text)
		}
	}
	return counts
}

// sparse is a feature vector: positions into Words.IDs and their values.
type sparse struct {
	at  []int
	val []float64
}

// vector is the tf-idf vector of a text's feature counts over the known features, L2-normalised
// over all its features (unseen ones count in the norm with the idf of a feature in no document, so
// an unfamiliar message reads as less certain).
func (w *Words) vector(counts map[uint32]float64) sparse {
	unseen := math.Log(float64(1+w.Docs)) + 1
	var v sparse
	var norm float64
	ids := make([]uint32, 0, len(counts))
	for id := range counts {
		ids = append(ids, id)
	}
	slices.Sort(ids) // a fixed order: sums in the same order on every run
	for _, id := range ids {
		tf := 1 + math.Log(counts[id])
		j, ok := w.index[id]
		if !ok {
			norm += tf * unseen * tf * unseen
			continue
		}
		x := tf * float64(w.IDF[j])
		norm += x * x
		v.at, v.val = append(v.at, j), append(v.val, x)
	}
	if norm > 0 {
		inv := 1 / math.Sqrt(norm)
		for i := range v.val {
			v.val[i] *= inv
		}
	}
	return v
}

// Probs is the softmax of the reader's linear scores for a text's tokens (analyze).
func (w *Words) Probs(toks []token) [numClasses]float64 {
	return w.probs(w.vector(featureCounts(toks, w.Chars)))
}

func (w *Words) probs(v sparse) [numClasses]float64 {
	var z [numClasses]float64
	for k := range z {
		z[k] = float64(w.B[k])
	}
	for i, j := range v.at {
		for k := range z {
			z[k] += float64(w.W[j*numClasses+k]) * v.val[i]
		}
	}
	return softmax(z)
}

// buildIndex makes the feature id → position map.
func (w *Words) buildIndex() {
	w.index = make(map[uint32]int, len(w.IDs))
	for j, id := range w.IDs {
		w.index[id] = j
	}
}

// fitWords trains the reader's softmax on the texts' tokens (analyze) by mini-batch Adam on the
// class-balanced cross-entropy, with L2 weight decay on the weights (not the biases).
func fitWords(toks [][]token, ys []int, chars bool, opt TrainOptions, seed uint64) *Words {
	counts := make([]map[uint32]float64, len(toks))
	df := map[uint32]int{}
	for i, t := range toks {
		counts[i] = featureCounts(t, chars)
		for id := range counts[i] {
			df[id]++
		}
	}
	w := &Words{Chars: chars, Docs: uint32(len(toks))}
	for id := range df {
		w.IDs = append(w.IDs, id)
	}
	slices.Sort(w.IDs)
	w.IDF = make([]float32, len(w.IDs))
	for j, id := range w.IDs {
		w.IDF[j] = float32(math.Log(float64(1+len(toks))/float64(1+df[id])) + 1)
	}
	w.W = make([]float32, len(w.IDs)*numClasses)
	w.buildIndex()
	xs := make([]sparse, len(toks))
	for i := range toks {
		xs[i] = w.vector(counts[i])
	}
	src := splitmix.Source(seed)
	softmaxFit{W: w.W, B: w.B[:], Epochs: opt.WordEpochs, Batch: opt.Batch, LearningRate: opt.WordLearningRate, L2: opt.WordL2}.run(ys, &src,
		func(i int) [numClasses]float64 { return w.probs(xs[i]) },
		func(i, k int, d float64, gw []float64) {
			for n, j := range xs[i].at {
				gw[j*numClasses+k] += d * xs[i].val[n]
			}
		})
	return w
}

// classWeights are the class-balancing weights n / (classes × count of the class).
func classWeights(ys []int) [numClasses]float64 {
	var count [numClasses]float64
	for _, y := range ys {
		count[y]++
	}
	var cw [numClasses]float64
	for k := range cw {
		cw[k] = float64(len(ys)) / (numClasses * max(count[k], 1))
	}
	return cw
}
