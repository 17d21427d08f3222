// Package guard decides, before any text is generated, whether a message is an ordinary health
// question (allow), an emergency happening now (answer at once with emergency guidance), outside the
// assistant's domain (a polite refusal) or unusable input (invalid). It also shapes allowed answers:
// fixed sections and the medical disclaimer exactly once, in streaming and in plain mode.
//
// Lexicons, messages and the classifier's training examples are embedded from assets/guard and can be
// replaced by files in Config.LexiconDir and Config.ExamplesDir. Everything is compiled and trained
// once, in New; Check is read-only and safe for concurrent use.
package guard

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"

	"github.com/medassist/medassist/assets"
)

// Lexicon files, in load order (classes are defined in cues.txt and used by the others).
var lexiconFiles = []string{"cues.txt", "emergency.txt", "injection.txt", "medical_terms.txt", "other_terms.txt"}

// Example files of the out-of-domain classifier and whether they are out of the domain.
var exampleFiles = []struct {
	name string
	ood  bool
}{{"medical.txt", false}, {"emergency.txt", false}, {"non_medical.txt", true}}

const trainSeed = 20240611

// wordsFile lists English words that typo correction must not change.
const wordsFile = "words_en.txt"

//go:generate go run ./internal/genwords
//go:generate go run ./internal/genmodel

// Guard checks messages and formats answers. Build it with New.
type Guard struct {
	cfg             Config
	lex             *lexicon
	spell           *speller
	clf             *classifier
	threshold       float64
	calib           Calibration
	emerg           *classifier // emergency backstop: emergency examples against all others
	emergThr        float64
	emergCal        BackstopCalibration
	learned         *classifier // learned emergency detector (Config.EmergencyModel "learned")
	learnedCal      LearnedCalibration
	learnedSelfHarm *classifier                  // among the learned detector's emergencies: self-harm or not
	learnedKey      [32]byte                     // digest of the learned detector's inputs
	msgs            map[string]map[string]string // language → key → text
	langWords       map[string]map[string]bool   // language → function words
	metrics         atomic.Pointer[Metrics]
}

// New compiles the lexicons, builds the typo corrector, and trains and calibrates the out-of-domain
// classifier and the emergency backstop on the examples (about 0.4 s of CPU with the embedded ones;
// deterministic).
func New(cfg Config) (*Guard, error) { return build(cfg, false) }

// build is New; retrain makes the learned emergency detector train even when the embedded model
// fits the files (for go generate).
func build(cfg Config, retrain bool) (*Guard, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("guard config: %w", err)
	}
	g := &Guard{cfg: cfg, lex: newLexicon()}
	files := assets.GuardFiles()
	var lexicons strings.Builder
	for _, name := range lexiconFiles {
		text, err := readAsset(files, cfg.LexiconDir, name)
		if err != nil {
			return nil, err
		}
		lexicons.WriteString(text)
		lexicons.WriteByte(0)
		if err := g.lex.parse(name, text); err != nil {
			return nil, fmt.Errorf("guard lexicon: %w", err)
		}
	}
	g.langWords = g.lex.functionWords()
	raw, err := readAsset(files, cfg.LexiconDir, "messages.json")
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(raw), &g.msgs); err != nil {
		return nil, fmt.Errorf("guard messages.json: %w", err)
	}
	if err := checkMessages(g.msgs); err != nil {
		return nil, err
	}
	texts := make([][]string, len(exampleFiles))
	// Examples are read first; the speller needs their words.
	for i, f := range exampleFiles {
		text, err := readAsset(files, cfg.ExamplesDir, filepath.Join("examples", f.name))
		if err != nil {
			return nil, err
		}
		texts[i] = exampleLines(text)
		if len(texts[i]) == 0 && f.name != "emergency.txt" {
			return nil, fmt.Errorf("guard examples: %s has no examples; the classifier needs both in-domain and out-of-domain examples", f.name)
		}
	}
	words, err := readAsset(files, "", wordsFile)
	if err != nil {
		return nil, err
	}
	g.spell = g.buildSpeller(texts, exampleLines(words))
	var data, emerg []example
	for i, f := range exampleFiles {
		for _, t := range texts[i] {
			d, ms := g.prepare(t)
			x := features(&d, vocabularyOf(ms))
			data = append(data, example{x: x, ood: f.ood})
			emerg = append(emerg, example{x: x, ood: f.name == "emergency.txt"})
		}
	}
	g.calib = calibrate(data, trainSeed)
	g.clf = train(data, trainSeed)
	g.threshold = g.calib.Threshold
	if cfg.Threshold > 0 {
		g.threshold = cfg.Threshold
	}
	if len(texts[1]) > 0 {
		g.emergThr, g.emergCal.Recall, g.emergCal.FalseAlarms = calibrateRate(emerg, trainSeed+7, backstopFPR)
		g.emergCal.Threshold = g.emergThr
		g.emerg = train(emerg, trainSeed+7)
	}
	if cfg.EmergencyModel == ModelLearned || cfg.EmergencyModel == "" {
		if err := g.trainLearned(texts, lexicons.String()+words, retrain); err != nil {
			return nil, err
		}
	}
	return g, nil
}

// backstopFPR is the share of non-emergency training examples the emergency backstop may flag in
// cross-validation.
const backstopFPR = 0.01

// BackstopCalibration reports the cross-validation of the emergency backstop classifier.
type BackstopCalibration struct {
	Threshold   float64 // probability at or above which the backstop fires
	Recall      float64 // out-of-fold share of emergency examples at or above it
	FalseAlarms float64 // out-of-fold share of other examples at or above it
}

// Backstop reports the cross-validation of the emergency backstop classifier.
func (g *Guard) Backstop() BackstopCalibration { return g.emergCal }

// readAsset reads name from dir when dir is set and holds it, else from the embedded files.
func readAsset(files fs.FS, dir, name string) (string, error) {
	if dir != "" {
		// the override folder holds the files themselves, examples included
		p := filepath.Join(dir, filepath.Base(name))
		b, err := os.ReadFile(p)
		if err == nil {
			return string(b), nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("guard: %w", err)
		}
	}
	b, err := fs.ReadFile(files, filepath.ToSlash(name))
	if err != nil {
		return "", fmt.Errorf("guard: embedded %s: %w", name, err)
	}
	return string(b), nil
}

func checkMessages(m map[string]map[string]string) error {
	en := m["en"]
	for _, k := range []string{"emergency", "self_harm", "out_of_domain", "prompt_injection", "invalid.empty", "invalid.too_long", "invalid.invalid_utf8", "invalid.control_chars"} {
		if strings.TrimSpace(en[k]) == "" {
			return fmt.Errorf("guard messages.json: the en section needs a %q message", k)
		}
	}
	return nil
}

// buildSpeller corrects unknown words towards lexicon words and towards example words that a
// lexicon prefix covers (breath* → breathing); dictionary and example words are never corrected.
func (g *Guard) buildSpeller(texts [][]string, dictionary []string) *speller {
	targets := map[string]int{}
	for w, n := range g.lex.words {
		targets[w] = n
	}
	known := make(map[string]bool, len(dictionary)+4096)
	for _, w := range dictionary {
		known[w] = true
	}
	exampleWords := map[string]bool{}
	for _, list := range texts {
		for _, t := range list {
			for _, tok := range analyze(t).toks {
				known[tok.text] = true
				exampleWords[tok.text] = true
			}
		}
	}
	for w := range exampleWords {
		for _, p := range g.lex.prefixes {
			if strings.HasPrefix(w, p) {
				targets[w]++
				break
			}
		}
	}
	return newSpeller(targets, known)
}

// prepare normalises a message, detects its language, corrects typos (in English messages: the
// dictionary is English) and finds every lexicon match.
func (g *Guard) prepare(text string) (doc, []match) {
	d := analyze(text)
	d.lang = g.detectLanguage(&d)
	if d.lang == "en" {
		for i := range d.toks {
			if !d.toks[i].num {
				d.toks[i].text = g.spell.correct(d.toks[i].text)
			}
		}
	}
	return d, g.lex.find(d.toks)
}

// detectLanguage picks en, es, fr or de by counting each language's function words (the lang.*
// sections of cues.txt); English wins ties.
func (g *Guard) detectLanguage(d *doc) string {
	var counts [len(languages)]int
	for _, t := range d.toks {
		for i, l := range languages {
			if g.langWords[l][t.text] {
				counts[i]++
			}
		}
	}
	best := 0
	for i := range languages {
		if counts[i] > counts[best] {
			best = i
		}
	}
	return languages[best]
}

// functionWord reports whether w is a function word of a language the guard knows (the, de, und).
func (g *Guard) functionWord(w string) bool {
	for _, set := range g.langWords {
		if set[w] {
			return true
		}
	}
	return false
}

// languages the guard detects; the first is the default.
var languages = [...]string{"en", "es", "fr", "de"}

// functionWords collects the single-word patterns of the lang.* sections.
func (l *lexicon) functionWords() map[string]map[string]bool {
	out := map[string]map[string]bool{}
	for _, p := range l.patterns {
		lang, ok := strings.CutPrefix(p.section, secLang)
		if !ok || len(p.elems) != 1 {
			continue
		}
		if out[lang] == nil {
			out[lang] = map[string]bool{}
		}
		for _, ph := range p.elems[0].alts {
			if len(ph) == 1 && !ph[0].prefix && !ph[0].suffix && !ph[0].num {
				out[lang][ph[0].word] = true
			}
		}
	}
	return out
}

// vocabulary counts a message's matches of the medical vocabulary and the emergency lexicon
// (whether or not the emergency rules fired: "signs of a stroke" is still about health), of the
// vocabulary of other domains, and of medical words used in other senses ("bleeding cash").
type vocabulary struct{ medical, other, figurative int }

func vocabularyOf(ms []match) vocabulary {
	var v vocabulary
	for _, m := range ms {
		switch {
		case m.p.section == secMedical || strings.HasPrefix(m.p.section, secEmerg):
			v.medical++
		case m.p.section == secOther:
			v.other++
		case m.p.section == secFigure:
			v.figurative++
		}
	}
	return v
}

// Check decides about one message. It never panics and always returns one of the four kinds.
func (g *Guard) Check(text string) Verdict {
	if p := validate(text, g.cfg.MaxChars); p != nil {
		return g.invalid(p)
	}
	d, ms := g.prepare(text)
	lang := d.lang
	locale := g.cfg.locale(lang)
	c := indexCues(&d, ms)
	if e, ok := detectEmergency(&d, ms, c); ok {
		return Verdict{Kind: Emergency, Code: e.category, Reason: e.reason(), Locale: locale, Score: e.score,
			Message: g.emergencyMessage(lang, locale, e.category)}
	}
	x := features(&d, vocabularyOf(ms))
	if v, ok := g.backstop(&d, c, x, lang, locale); ok {
		return v
	}
	for _, m := range ms {
		if m.p.section == secInject {
			return Verdict{Kind: OutOfDomain, Code: "prompt_injection", Locale: locale, Score: 1,
				Reason:  fmt.Sprintf("prompt_injection: %q asks the assistant to drop its instructions or role", phraseOf(&d, m)),
				Message: g.message(lang, "prompt_injection")}
		}
	}
	if v, ok := g.learnedVerdict(&d, c, x, lang, locale); ok {
		return v
	}
	p := g.clf.prob(x)
	if p >= g.threshold {
		return Verdict{Kind: OutOfDomain, Code: "not_medical", Locale: locale, Score: p,
			Reason:  fmt.Sprintf("not_medical: out-of-domain score %.2f >= threshold %.2f%s", p, g.threshold, cueList("away from health", g.clf.explain(&d, true, 3, g.functionWord))),
			Message: g.message(lang, "out_of_domain")}
	}
	return Verdict{Kind: Allow, Code: "medical", Locale: locale, Score: 1 - p,
		Reason: fmt.Sprintf("medical: out-of-domain score %.2f < threshold %.2f%s", p, g.threshold, cueList("health words", g.clf.explain(&d, false, 3, g.functionWord)))}
}

// backstop asks the emergency classifier about a message the emergency rules let through. It only
// speaks when the message holds emergency-lexicon words (a sign that did not add up, a topic without
// a person, or only weak signs such as "confused" or "hives") and is about the writer or a person near them, now: no hypothetical, informational,
// clinical-case, past, chronic or fictional framing anywhere in it.
func (g *Guard) backstop(d *doc, c *cues, x sparse, lang, locale string) (Verdict, bool) {
	if g.emerg == nil || !(c.emergencyWords || c.weakWords) || !(c.message[cueActual] || c.message[cueUrgent]) || c.message[cueFiction] || c.message[cueClinical] {
		return Verdict{}, false
	}
	for _, sec := range []string{cueInfo, cueInfoPost, cueCond, cuePast, cueNegation} {
		for _, on := range c.ends[sec] {
			if on {
				return Verdict{}, false
			}
		}
	}
	for _, sec := range []string{cueRemote, cueChronic, cueMild} {
		for _, on := range c.sentence[sec] {
			if on {
				return Verdict{}, false
			}
		}
	}
	p := g.emerg.prob(x)
	if p < g.emergThr {
		return Verdict{}, false
	}
	return Verdict{Kind: Emergency, Code: "general", Locale: locale, Score: p,
		Reason:  fmt.Sprintf("general: emergency classifier score %.2f >= %.2f%s", p, g.emergThr, cueList("words", g.emerg.explain(d, true, 3, g.functionWord))),
		Message: g.emergencyMessage(lang, locale, "general")}, true
}

func cueList(what string, words []string) string {
	if len(words) == 0 {
		return ""
	}
	return fmt.Sprintf("; %s: %s", what, strings.Join(words, ", "))
}

func (g *Guard) invalid(p *inputProblem) Verdict {
	locale := g.cfg.locale("en")
	msg := g.message("en", "invalid."+p.user)
	msg = strings.NewReplacer("{n}", fmt.Sprint(p.n), "{max}", fmt.Sprint(g.cfg.MaxChars)).Replace(msg)
	return Verdict{Kind: Invalid, Code: p.code, Reason: p.code + ": " + p.detail, Message: msg, Locale: locale, Score: 1}
}

// message is the text for key in lang, falling back to English.
func (g *Guard) message(lang, key string) string {
	if m := g.msgs[lang][key]; m != "" {
		return m
	}
	return g.msgs["en"][key]
}

// emergencyMessage is the guidance for an emergency: who to call, then one line for the category.
func (g *Guard) emergencyMessage(lang, locale, category string) string {
	number := g.cfg.number(locale)
	if number == "" {
		number = "112"
	}
	crisis := g.cfg.crisisLine(locale)
	if crisis == "" {
		crisis = number
	}
	r := strings.NewReplacer("{number}", number, "{crisis}", crisis)
	if category == "self_harm" {
		return r.Replace(g.message(lang, "self_harm"))
	}
	msg := g.message(lang, "emergency")
	if extra := g.msgs[lang]["emergency."+category]; extra != "" {
		msg += " " + extra // only in the message's own language
	}
	return r.Replace(msg)
}

// Threshold is the out-of-domain probability at or above which messages are refused.
func (g *Guard) Threshold() float64 { return g.threshold }

// Calibration reports the cross-validation that chose the threshold.
func (g *Guard) Calibration() Calibration { return g.calib }

// Disclaimer is the text appended to every allowed answer.
func (g *Guard) Disclaimer() string { return g.cfg.Disclaimer }
