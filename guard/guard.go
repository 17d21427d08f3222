// Package guard decides, before any text is generated, whether a message is an ordinary health
// question (allow), an emergency happening now (answer at once with emergency guidance), outside the
// assistant's domain (a polite refusal) or unusable input (invalid). It also shapes allowed answers:
// fixed sections and the medical disclaimer exactly once, in streaming and in plain mode.
//
// It decides on conversations: a sentence encoder (all-MiniLM-L6-v2 through ONNX Runtime) embeds the
// latest user turn, alone and with the turn before it, and a small trained head classifies the
// embedding as emergency, medical or nonmedical; a short list of rules overrides it for unmistakable
// emergencies and instruction attacks, and context filters (hypothetical, informational, past,
// fiction) keep questions about emergencies from being taken for emergencies. Lexicons, messages and
// the head are embedded from assets/guard; Check is read-only and safe for concurrent use.
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
	"github.com/medassist/medassist/encoder"
)

// Lexicon files, in load order (classes are defined in cues.txt and used by the others).
var lexiconFiles = []string{"cues.txt", "emergency.txt", "injection.txt"}

// headFile holds the trained head (written by `medassist guard train`).
const headFile = "head.bin"

// Embedder turns texts into L2-normalised sentence embeddings; *encoder.Encoder is one.
type Embedder interface {
	Embed(texts []string) ([][]float32, error)
	Dim() int
}

// Guard checks conversations and formats answers. Build it with New.
type Guard struct {
	cfg       Config
	lex       *lexicon
	emb       Embedder
	head      *Head
	closeEmb  func() error
	openEmb   func() error                 // a deferred encoder's opening (NewDeferred)
	msgs      map[string]map[string]string // language → key → text
	langWords map[string]map[string]bool   // language → function words
	metrics   atomic.Pointer[Metrics]
}

// New opens the sentence encoder named by cfg.Encoder and builds the guard on it. Close releases
// the encoder.
func New(cfg Config) (*Guard, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("guard config: %w", err)
	}
	enc, err := OpenEncoder(cfg)
	if err != nil {
		return nil, err
	}
	g, err := NewWithEmbedder(cfg, enc)
	if err != nil {
		enc.Close()
		return nil, err
	}
	g.closeEmb = enc.Close
	return g, nil
}

// OpenEncoder opens the sentence encoder cfg names (Config.Encoder, Config.EncoderThreads).
func OpenEncoder(cfg Config) (*encoder.Encoder, error) {
	dir, err := cfg.EncoderDir()
	if err != nil {
		return nil, err
	}
	enc, err := encoder.Open(dir, encoder.Options{Threads: cfg.EncoderThreads})
	if err != nil {
		return nil, fmt.Errorf("guard: %w", err)
	}
	return enc, nil
}

// NewWithEmbedder builds the guard on an embedder the caller owns (shared between guards, or a
// test's). It compiles the lexicons and loads the head: cfg.Head when set, else the embedded one.
func NewWithEmbedder(cfg Config, emb Embedder) (*Guard, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("guard config: %w", err)
	}
	g := &Guard{cfg: cfg, lex: newLexicon(), emb: emb}
	files := assets.GuardFiles()
	for _, name := range lexiconFiles {
		text, err := readAsset(files, cfg.LexiconDir, name)
		if err != nil {
			return nil, err
		}
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
	if g.head, err = loadHead(files, cfg.Head); err != nil {
		return nil, err
	}
	if g.head.Dim != emb.Dim() {
		return nil, fmt.Errorf("guard: the head reads %d-dimensional embeddings, the encoder gives %d: retrain it with `medassist guard train` for this encoder", g.head.Dim, emb.Dim())
	}
	return g, nil
}

// loadHead reads the head from path, or the embedded one when path is "".
func loadHead(files fs.FS, path string) (*Head, error) {
	var b []byte
	var err error
	if path != "" {
		b, err = os.ReadFile(path)
	} else {
		b, err = fs.ReadFile(files, headFile)
	}
	if err != nil {
		return nil, fmt.Errorf("guard head: %w (build it with `medassist guard train`)", err)
	}
	h := &Head{}
	if err := h.UnmarshalBinary(b); err != nil {
		return nil, err
	}
	return h, nil
}

// Close releases the encoder New opened (not one given to NewWithEmbedder).
func (g *Guard) Close() error {
	if g.closeEmb == nil {
		return nil
	}
	err := g.closeEmb()
	g.closeEmb = nil
	return err
}

// Head is the classifier the guard decides with.
func (g *Guard) Head() *Head { return g.head }

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
	for _, k := range []string{"emergency", "self_harm", "out_of_domain", "prompt_injection", "social.hello", "social.thanks", "client_system", "invalid.empty", "invalid.too_long", "invalid.invalid_utf8", "invalid.control_chars"} {
		if strings.TrimSpace(en[k]) == "" {
			return fmt.Errorf("guard messages.json: the en section needs a %q message", k)
		}
	}
	return nil
}

// prepare normalises a message, detects its language and finds every lexicon match.
func (g *Guard) prepare(text string) (doc, []match) {
	d := analyze(text)
	d.lang = g.detectLanguage(&d)
	return d, g.lex.find(d.toks)
}

// detectLanguage picks en, es, fr, de, it or pt by counting each language's function words (the lang.*
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

// languages the guard detects; the first is the default.
var languages = [...]string{"en", "es", "fr", "de", "it", "pt"}

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

// Disclaimer is the text appended to every allowed answer.
func (g *Guard) Disclaimer() string { return g.cfg.Disclaimer }
