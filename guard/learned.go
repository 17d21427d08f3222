package guard

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"runtime"
	"sync"
	"time"

	"github.com/medassist/medassist/assets"

	"github.com/medassist/medassist/guard/internal/gen"
)

// The learned emergency detector is a logistic regression (emergency against everything else) over
// the same hashed features as the out-of-domain classifier, trained when the guard is built on the
// hand-written examples plus thousands of messages composed by guard/internal/gen: emergencies per
// category and language, and contrastive messages in the same vocabulary (informational questions,
// first-aid how-to and hypotheticals, past and chronic events, other senses). It decides the messages
// the emergency rules let through; the rules stay in front because their matches are explainable.

// genSeed fixes the generated training messages.
const genSeed = 0x6d656461737369

// learnedFPR is the share of non-emergency training messages the learned detector may flag in
// cross-validation.
const learnedFPR = 0.01

// LearnedCalibration reports the training and cross-validation of the learned emergency detector.
type LearnedCalibration struct {
	Generated   int     // generated training messages
	HandWritten int     // hand-written training messages
	Emergencies int     // emergency messages among all of them
	Threshold   float64 // probability at or above which the detector fires
	Recall      float64 // out-of-fold share of emergency messages at or above it
	FalseAlarms float64 // out-of-fold share of other messages at or above it
}

// Learned reports the learned emergency detector's calibration (zero when it is off).
func (g *Guard) Learned() LearnedCalibration { return g.learnedCal }

// learnedModel is a trained detector and its calibration.
type learnedModel struct {
	clf      *classifier
	selfHarm *classifier // among emergencies: self-harm (crisis line) against the other categories
	cal      LearnedCalibration
}

// learnedCache keeps trained detectors by a digest of everything they were trained from, so that
// building more guards with the same files in one process trains once. Training is deterministic,
// so a cached model is the model a new training would give.
var learnedCache sync.Map // [32]byte → *learnedModel

// trainLearned sets up the learned detector from the hand-written examples (texts, in exampleFiles
// order), the generated messages and the lexicon and dictionary text that shape the features
// (sources). It uses, in order: a detector this process trained from the same inputs, the embedded
// model (assets/guard/emergency_model.bin.gz, written by go generate) when its digest matches
// the inputs, or trains one (about 1.5 s of CPU). retrain skips the first two.
func (g *Guard) trainLearned(texts [][]string, sources string, retrain bool) error {
	generated := gen.Generate(genSeed, gen.DefaultCounts)
	key := learnedDigest(texts, sources, generated)
	if !retrain {
		if m, ok := learnedCache.Load(key); ok {
			g.useLearned(m.(*learnedModel), key)
			return nil
		}
		if b, err := fs.ReadFile(assets.GuardFiles(), learnedFile); err == nil {
			k, m, err := decodeLearned(b)
			if err != nil {
				return fmt.Errorf("guard: embedded %s: %w; regenerate it with go generate ./guard/", learnedFile, err)
			}
			if k == key {
				learnedCache.Store(key, m)
				g.useLearned(m, key)
				return nil
			}
		}
	}
	var msgs []string
	var labels []bool
	cal := LearnedCalibration{}
	for i, f := range exampleFiles {
		for _, t := range texts[i] {
			msgs, labels = append(msgs, t), append(labels, f.name == "emergency.txt")
			cal.HandWritten++
		}
	}
	for _, e := range generated {
		msgs, labels = append(msgs, e.Text), append(labels, e.Label == gen.Emergency)
		cal.Generated++
	}
	for _, l := range labels {
		if l {
			cal.Emergencies++
		}
	}
	data := g.featurize(msgs, labels)
	cal.Threshold, cal.Recall, cal.FalseAlarms = calibrateOn(data, cal.HandWritten, trainSeed+11, learnedFPR)
	var harm []example
	for i, e := range generated {
		if e.Label == gen.Emergency {
			harm = append(harm, example{x: data[cal.HandWritten+i].x, ood: e.Category == "self_harm"})
		}
	}
	m := &learnedModel{clf: train(data, trainSeed+11), selfHarm: train(harm, trainSeed+13), cal: cal}
	learnedCache.Store(key, m)
	g.useLearned(m, key)
	return nil
}

func (g *Guard) useLearned(m *learnedModel, key [32]byte) {
	g.learned, g.learnedSelfHarm, g.learnedCal, g.learnedKey = m.clf, m.selfHarm, m.cal, key
}

// learnedFile is the embedded learned detector.
const learnedFile = "emergency_model.bin.gz"

// learnedVersion changes whenever features or training change in a way the inputs do not show.
const learnedVersion = "learned-emergency/2"

// learnedDigest identifies the inputs of a learned detector.
func learnedDigest(texts [][]string, sources string, generated []gen.Example) [32]byte {
	h := sha256.New()
	for _, part := range []string{learnedVersion, sources} {
		h.Write([]byte(part))
		h.Write([]byte{0})
	}
	for _, list := range texts {
		for _, t := range list {
			h.Write([]byte(t))
			h.Write([]byte{'\n'})
		}
		h.Write([]byte{0})
	}
	for _, e := range generated {
		h.Write([]byte(e.Label + "\t" + e.Text + "\n"))
	}
	var key [32]byte
	copy(key[:], h.Sum(nil))
	return key
}

// EncodeLearned writes the guard's learned detector in the embedded format: gzip of the digest,
// the calibration and the non-zero weights (little endian).
func (g *Guard) EncodeLearned(w io.Writer) error {
	if g.learned == nil {
		return errors.New("guard: the learned emergency detector is off (emergency-model: learned)")
	}
	zw, err := gzip.NewWriterLevel(w, gzip.BestCompression)
	if err != nil {
		return err
	}
	zw.ModTime = time.Time{}
	le := binary.LittleEndian
	c := g.learnedCal
	hdr := []any{g.learnedKey, int64(c.Generated), int64(c.HandWritten), int64(c.Emergencies), c.Threshold, c.Recall, c.FalseAlarms}
	for _, v := range hdr {
		if err := binary.Write(zw, le, v); err != nil {
			return err
		}
	}
	for _, c := range []*classifier{g.learned, g.learnedSelfHarm} {
		var idx []uint32
		var val []float32
		for i, v := range c.w {
			if v != 0 {
				idx, val = append(idx, uint32(i)), append(val, v)
			}
		}
		for _, v := range []any{c.b, uint32(len(idx)), idx, val} {
			if err := binary.Write(zw, le, v); err != nil {
				return err
			}
		}
	}
	return zw.Close()
}

// decodeLearned reads what EncodeLearned wrote.
func decodeLearned(b []byte) ([32]byte, *learnedModel, error) {
	var key [32]byte
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		return key, nil, err
	}
	le := binary.LittleEndian
	var gen, hand, emerg int64
	m := &learnedModel{}
	for _, v := range []any{&key, &gen, &hand, &emerg, &m.cal.Threshold, &m.cal.Recall, &m.cal.FalseAlarms} {
		if err := binary.Read(zr, le, v); err != nil {
			return key, nil, err
		}
	}
	for _, c := range []**classifier{&m.clf, &m.selfHarm} {
		*c = &classifier{w: make([]float32, hashDim)}
		var n uint32
		for _, v := range []any{&(*c).b, &n} {
			if err := binary.Read(zr, le, v); err != nil {
				return key, nil, err
			}
		}
		if n > hashDim {
			return key, nil, fmt.Errorf("%d weights, more than %d", n, hashDim)
		}
		idx, val := make([]uint32, n), make([]float32, n)
		if err := binary.Read(zr, le, idx); err != nil {
			return key, nil, err
		}
		if err := binary.Read(zr, le, val); err != nil {
			return key, nil, err
		}
		for i, k := range idx {
			if k >= hashDim {
				return key, nil, fmt.Errorf("weight index %d out of range", k)
			}
			(*c).w[k] = val[i]
		}
	}
	m.cal.Generated, m.cal.HandWritten, m.cal.Emergencies = int(gen), int(hand), int(emerg)
	return key, m, nil
}

// LearnedModel trains the learned emergency detector from the embedded files and writes it in the
// embedded format (go generate ./guard/ runs it).
func LearnedModel(w io.Writer) error {
	cfg := DefaultConfig()
	cfg.EmergencyModel = ModelLearned
	g, err := build(cfg, true)
	if err != nil {
		return err
	}
	return g.EncodeLearned(w)
}

// calibrateOn runs k-fold cross-validation over all of data but picks the threshold on the
// out-of-fold scores of its first n examples only (the hand-written ones): generated messages share
// templates across folds, so their out-of-fold scores are optimistic. The threshold lets at most
// maxFPR of those non-emergency examples through; recall and false alarms are reported on them.
func calibrateOn(data []example, n int, seed uint64, maxFPR float64) (threshold, recall, fpr float64) {
	folds := assignFolds(len(data), seed^0x5eed)
	scores := make([]oofScore, n)
	parallel(cvK, func(f int) {
		c := trainWithout(data, folds, f, seed+uint64(f)+1)
		for i := 0; i < n; i++ {
			if folds[i] == f {
				scores[i] = oofScore{c.logit(data[i].x), data[i].ood}
			}
		}
	})
	return rateThreshold(scores, maxFPR)
}

// aboutSomeone reports whether a message names a person it could be happening to (I, my dad,
// she, a man, the baby) or calls for help: an emergency needs one, an exam question or a basic
// science question does not have one.
func aboutSomeone(c *cues) bool {
	if c.message[cueActual] || c.message[cueUrgent] {
		return true
	}
	for _, sec := range []string{cueHuman, cueSelf} {
		for _, on := range c.ends[sec] {
			if on {
				return true
			}
		}
	}
	return false
}

// featurize prepares messages and computes their features on all cores; the result is in input order.
func (g *Guard) featurize(msgs []string, labels []bool) []example {
	data := make([]example, len(msgs))
	workers := runtime.GOMAXPROCS(0)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < len(msgs); i += workers {
				d, ms := g.prepare(msgs[i])
				data[i] = example{x: features(&d, vocabularyOf(ms)), ood: labels[i]}
			}
		}()
	}
	wg.Wait()
	return data
}

// learnedVerdict asks the learned detector about a message the rules let through.
func (g *Guard) learnedVerdict(d *doc, c *cues, x sparse, lang, locale string) (Verdict, bool) {
	if g.learned == nil || c.message[cueFiction] || c.message[cueClinical] || !aboutSomeone(c) {
		return Verdict{}, false
	}
	p := g.learned.prob(x)
	if p < g.learnedCal.Threshold {
		return Verdict{}, false
	}
	code := "general"
	if g.learnedSelfHarm.prob(x) >= 0.5 {
		code = "self_harm" // the crisis line
	}
	return Verdict{Kind: Emergency, Code: code, Locale: locale, Score: p,
		Reason:  fmt.Sprintf("%s: learned emergency score %.2f >= %.2f%s", code, p, g.learnedCal.Threshold, cueList("words", g.learned.explain(d, true, 3, g.functionWord))),
		Message: g.emergencyMessage(lang, locale, code)}, true
}
