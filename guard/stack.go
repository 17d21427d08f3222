package guard

import (
	"math"
	"strings"
	"unicode"
)

// The head's three readings of a turn, the inputs of the stacker.
const (
	readEmbedding = iota // the embedding: linear softmax and neighbour vote averaged
	readWords            // word unigrams and bigrams
	readChars            // character n-grams
	numReadings
)

// numShape is the number of shape features of a turn (shapeOf).
const numShape = 5

// stackInputs is the stacker's input size: the log-probabilities of the readings, then the shape.
const stackInputs = numReadings*numClasses + numShape

// Stack combines the readings: a linear softmax over their log-probabilities and the turn's shape
// (length, question marks, sentences, exclamation), trained on the readings' out-of-fold
// probabilities so that it learns how far each reading can be trusted, and when.
type Stack struct {
	W [numClasses * stackInputs]float32
	B [numClasses]float32
}

// shapeOf is the shape of text: ln(1 + words), whether it holds a question mark, whether it ends
// with one, how many runs of sentence-ending punctuation it has, and whether it holds an '!'.
func shapeOf(text string) [numShape]float64 {
	t := strings.TrimSpace(text)
	runs, in := 0, false
	for _, r := range t {
		end := r == '.' || r == '!' || r == '?'
		if end && !in {
			runs++
		}
		in = end
	}
	b := func(v bool) float64 {
		if v {
			return 1
		}
		return 0
	}
	words := len(strings.FieldsFunc(t, unicode.IsSpace))
	return [numShape]float64{math.Log1p(float64(words)), b(strings.Contains(t, "?")), b(strings.HasSuffix(t, "?")),
		float64(runs), b(strings.Contains(t, "!"))}
}

// stackInput is the stacker's input for the readings r and the shape of a turn.
func stackInput(r [numReadings][numClasses]float64, shape [numShape]float64) [stackInputs]float64 {
	var in [stackInputs]float64
	for i := range r {
		for k, p := range r[i] {
			in[i*numClasses+k] = math.Log(p + 1e-4)
		}
	}
	copy(in[numReadings*numClasses:], shape[:])
	return in
}

// probs is the stacker's distribution for one input.
func (s *Stack) probs(in [stackInputs]float64) [numClasses]float64 {
	var z [numClasses]float64
	for k := range z {
		v := float64(s.B[k])
		for i, x := range in {
			v += float64(s.W[k*stackInputs+i]) * x
		}
		z[k] = v
	}
	return softmax(z)
}

// fitStack trains the stacker by full-batch Adam on the class-balanced cross-entropy of ins, with
// L2 weight decay on the weights; it starts from zeros, so it needs no seed.
func fitStack(ins [][stackInputs]float64, ys []int, opt TrainOptions) *Stack {
	s := &Stack{}
	softmaxFit{W: s.W[:], B: s.B[:], Epochs: opt.StackSteps, LearningRate: opt.StackLearningRate, L2: opt.StackL2}.run(ys, nil,
		func(i int) [numClasses]float64 { return s.probs(ins[i]) },
		func(i, k int, d float64, gw []float64) {
			row := gw[k*stackInputs : (k+1)*stackInputs]
			for j, x := range ins[i] {
				row[j] += d * x
			}
		})
	return s
}
