package guard

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
)

// Classes of the head, in output order; their names are the labels of the corpus and of
// `medassist guard eval`.
const (
	classEmergency = iota
	classMedical
	classNonmedical
	numClasses
)

// ClassNames are the labels of the classes, in the head's output order.
var ClassNames = [numClasses]string{"emergency", "medical", "nonmedical"}

// classOf is the class of a label, -1 when unknown.
func classOf(label string) int {
	for i, n := range ClassNames {
		if n == label {
			return i
		}
	}
	return -1
}

// Head is the classifier. It reads a turn three ways: the sentence embedding (the average of a
// linear softmax and a nearest-neighbour vote over the training embeddings, kept as int8), the
// words and the character n-grams (Words, a linear softmax each); the stacker (Stack) turns the
// three readings and the turn's shape into one distribution over emergency, medical and
// nonmedical, decided with the two thresholds the training's cross-validation chose.
type Head struct {
	Dim    int
	W, B   []float32 // numClasses×Dim, numClasses: the linear softmax
	K      int       // neighbours that vote
	Labels []uint8   // class of each remembered embedding
	Scales []float32 // dequantisation scale of each remembered embedding
	Memory []int8    // remembered embeddings, len(Labels)×Dim
	// EmergencyThreshold: a probability of emergency at or above it makes the message an emergency.
	EmergencyThreshold float32
	// OffTopicThreshold: p(nonmedical) / (p(medical) + p(nonmedical)) at or above it makes a
	// message that is not an emergency out of domain.
	OffTopicThreshold float32
	Words, Chars      *Words
	Stack             *Stack
}

// Probs is the head's distribution over the classes for text and its embedding x.
func (h *Head) Probs(text string, x []float32) [numClasses]float64 {
	return h.Stack.probs(stackInput(h.readings(text, x), shapeOf(text)))
}

// readings are the head's three readings of text and its embedding x.
func (h *Head) readings(text string, x []float32) [numReadings][numClasses]float64 {
	var r [numReadings][numClasses]float64
	lin := h.linear(toFloat64(x))
	nn := h.neighbours(x)
	for k := range lin {
		r[readEmbedding][k] = (lin[k] + nn[k]) / 2
	}
	toks := analyze(text).toks
	r[readWords] = h.Words.Probs(toks)
	r[readChars] = h.Chars.Probs(toks)
	return r
}

// linear is the softmax of W·x + B.
func (h *Head) linear(x []float64) [numClasses]float64 {
	var z [numClasses]float64
	for k := range z {
		s := float64(h.B[k])
		row := h.W[k*h.Dim : (k+1)*h.Dim]
		for i, v := range x {
			s += float64(row[i]) * v
		}
		z[k] = s
	}
	return softmax(z)
}

// neighbours is the vote of the K remembered embeddings most similar to x (cosine), each weighted
// by its similarity.
func (h *Head) neighbours(x []float32) [numClasses]float64 {
	n := len(h.Labels)
	type nb struct {
		sim float64
		i   int
	}
	top := make([]nb, 0, h.K+1)
	for j := 0; j < n; j++ {
		row := h.Memory[j*h.Dim : (j+1)*h.Dim]
		var s float32
		for i, q := range row {
			s += float32(q) * x[i]
		}
		sim := float64(s * h.Scales[j])
		if len(top) == h.K && sim <= top[h.K-1].sim {
			continue
		}
		at := len(top)
		for at > 0 && top[at-1].sim < sim {
			at--
		}
		top = append(top, nb{})
		copy(top[at+1:], top[at:])
		top[at] = nb{sim, j}
		top = top[:min(len(top), h.K)]
	}
	var p [numClasses]float64
	var total float64
	for _, t := range top {
		if t.sim > 0 {
			p[h.Labels[t.i]] += t.sim
			total += t.sim
		}
	}
	if total == 0 {
		return [numClasses]float64{1.0 / 3, 1.0 / 3, 1.0 / 3}
	}
	for k := range p {
		p[k] /= total
	}
	return p
}

// remember stores xs (quantised to int8, one scale each) with their classes as the neighbours.
func (h *Head) remember(xs [][]float32, ys []int, k int) {
	h.K = k
	h.Labels = make([]uint8, len(xs))
	h.Scales = make([]float32, len(xs))
	h.Memory = make([]int8, len(xs)*h.Dim)
	for j, x := range xs {
		h.Labels[j] = uint8(ys[j])
		var m float32
		for _, v := range x {
			m = max(m, float32(math.Abs(float64(v))))
		}
		if m == 0 {
			continue
		}
		scale := m / 127
		h.Scales[j] = scale
		row := h.Memory[j*h.Dim : (j+1)*h.Dim]
		for i, v := range x {
			row[i] = int8(math.Round(float64(v / scale)))
		}
	}
}

func toFloat64(x []float32) []float64 {
	out := make([]float64, len(x))
	for i, v := range x {
		out[i] = float64(v)
	}
	return out
}

func softmax(z [numClasses]float64) [numClasses]float64 {
	m := z[0]
	for _, v := range z[1:] {
		m = max(m, v)
	}
	var sum float64
	for i := range z {
		z[i] = math.Exp(z[i] - m)
		sum += z[i]
	}
	for i := range z {
		z[i] /= sum
	}
	return z
}

// decide turns the head's probabilities into a class with the thresholds.
func (h *Head) decide(p [numClasses]float64) int {
	if p[classEmergency] >= float64(h.EmergencyThreshold) {
		return classEmergency
	}
	if offTopic(p) >= float64(h.OffTopicThreshold) {
		return classNonmedical
	}
	return classMedical
}

// offTopic is the share of nonmedical in the probability left to medical and nonmedical.
func offTopic(p [numClasses]float64) float64 {
	d := p[classMedical] + p[classNonmedical]
	if d <= 0 {
		return 0.5
	}
	return p[classNonmedical] / d
}

// headMagic starts the head's file; the version after it changes with the layout.
const (
	headMagic   = "MAGH"
	headVersion = 4
)

// MarshalBinary writes the head, little endian: magic, version, dim, classes, K, memory size,
// thresholds, the linear weights and biases, the memory's labels, scales and int8 values; then the
// word and the character readers, each: kind, training texts, feature count, feature ids, idfs,
// weights and biases; then the stacker's weights and biases.
func (h *Head) MarshalBinary() ([]byte, error) {
	if h.Words == nil || h.Chars == nil || h.Stack == nil {
		return nil, errors.New("guard head: a reader or the stacker is missing")
	}
	var b bytes.Buffer
	b.WriteString(headMagic)
	hdr := []uint32{headVersion, uint32(h.Dim), numClasses, uint32(h.K), uint32(len(h.Labels))}
	parts := []any{hdr, []float32{h.EmergencyThreshold, h.OffTopicThreshold}, h.W, h.B, h.Labels, h.Scales, h.Memory}
	for _, w := range []*Words{h.Words, h.Chars} {
		kind := uint32(0)
		if w.Chars {
			kind = 1
		}
		parts = append(parts, []uint32{kind, w.Docs, uint32(len(w.IDs))}, w.IDs, w.IDF, w.W, w.B[:])
	}
	parts = append(parts, h.Stack.W[:], h.Stack.B[:])
	for _, v := range parts {
		_ = binary.Write(&b, binary.LittleEndian, v)
	}
	return b.Bytes(), nil
}

// readReader reads one reader written by MarshalBinary.
func readReader(r *bytes.Reader) (*Words, error) {
	var wh [3]uint32
	if err := binary.Read(r, binary.LittleEndian, &wh); err != nil {
		return nil, fmt.Errorf("guard head: truncated: %w", err)
	}
	if wh[0] > 1 || int64(wh[2])*(8+4*numClasses) > int64(r.Len()) {
		return nil, fmt.Errorf("guard head: reader kind %d with %d features in %d bytes", wh[0], wh[2], r.Len())
	}
	w := &Words{Chars: wh[0] == 1, Docs: wh[1], IDs: make([]uint32, wh[2]), IDF: make([]float32, wh[2]), W: make([]float32, int(wh[2])*numClasses)}
	for _, v := range []any{w.IDs, w.IDF, w.W, w.B[:]} {
		if err := binary.Read(r, binary.LittleEndian, v); err != nil {
			return nil, fmt.Errorf("guard head: truncated: %w", err)
		}
	}
	w.buildIndex()
	return w, nil
}

// UnmarshalBinary reads what MarshalBinary wrote.
func (h *Head) UnmarshalBinary(data []byte) error {
	r := bytes.NewReader(data)
	magic := make([]byte, len(headMagic))
	if _, err := io.ReadFull(r, magic); err != nil || string(magic) != headMagic {
		return errors.New("guard head: not a head file (bad magic); rebuild it with `medassist guard train`")
	}
	var hdr [5]uint32
	if err := binary.Read(r, binary.LittleEndian, &hdr); err != nil {
		return fmt.Errorf("guard head: %w", err)
	}
	if hdr[0] != headVersion || hdr[2] != numClasses || hdr[1] == 0 || hdr[1] > 1<<16 || hdr[3] == 0 || int64(hdr[4])*int64(hdr[1]) > int64(len(data)) {
		return fmt.Errorf("guard head: version %d, dim %d, %d classes, k %d, memory %d; want version %d with %d classes: rebuild it with `medassist guard train`",
			hdr[0], hdr[1], hdr[2], hdr[3], hdr[4], headVersion, numClasses)
	}
	h.Dim, h.K = int(hdr[1]), int(hdr[3])
	n := int(hdr[4])
	var thr [2]float32
	h.W, h.B = make([]float32, numClasses*h.Dim), make([]float32, numClasses)
	h.Labels, h.Scales, h.Memory = make([]uint8, n), make([]float32, n), make([]int8, n*h.Dim)
	for _, v := range []any{&thr, h.W, h.B, h.Labels, h.Scales, h.Memory} {
		if err := binary.Read(r, binary.LittleEndian, v); err != nil {
			return fmt.Errorf("guard head: truncated: %w", err)
		}
	}
	h.EmergencyThreshold, h.OffTopicThreshold = thr[0], thr[1]
	var err error
	if h.Words, err = readReader(r); err != nil {
		return err
	}
	if h.Chars, err = readReader(r); err != nil {
		return err
	}
	if h.Words.Chars || !h.Chars.Chars {
		return errors.New("guard head: readers out of order; rebuild it with `medassist guard train`")
	}
	h.Stack = &Stack{}
	for _, v := range []any{h.Stack.W[:], h.Stack.B[:]} {
		if err := binary.Read(r, binary.LittleEndian, v); err != nil {
			return fmt.Errorf("guard head: truncated: %w", err)
		}
	}
	if r.Len() != 0 {
		return fmt.Errorf("guard head: %d bytes after the weights", r.Len())
	}
	for _, l := range h.Labels {
		if int(l) >= numClasses {
			return fmt.Errorf("guard head: memory label %d out of range", l)
		}
	}
	return nil
}
