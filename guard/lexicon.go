package guard

import (
	"bufio"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// The lexicon language (files under assets/guard):
//
//	# comment
//	@name = alternative | another phrase | pre*      a word class, usable as @name in patterns
//	[section]                                        e.g. [emergency.cardiac], [cue.info]
//	level[/flag...] element element ...              in emergency sections: level is acute or hint
//	element element ...                              in cue and injection sections
//
// An element is a word (pain), a prefix (breath*), a suffix (*itis: at least three letters before it),
// a number (# any, #8+ at least 8, #20-55 from 20 to 55), alternatives of single words
// (pain|ache*), alternatives of phrases ((can not|cannot|unable to)), or a class (@person).
// A trailing ? makes an element optional; ~ lets up to 3 other words come before the next element,
// ~N up to N; ^ first and $ last anchor the pattern to the start and end of a sentence. " | " with
// spaces separates whole patterns on one line. Words are normalised like messages (lower case, no
// accents, no apostrophes), and a pattern never spans two sentences.

// wordMatcher matches one normalised word.
type wordMatcher struct {
	word   string
	prefix bool    // word is a prefix
	suffix bool    // word is a suffix
	num    bool    // a number (digits or a number word)
	min    float64 // with num: at least this much
	max    float64 // with num: at most this much (0: no bound)
}

func (m wordMatcher) match(t token) bool {
	switch {
	case m.num:
		v, ok := numberValue(t)
		return ok && v >= m.min && (m.max == 0 || v <= m.max)
	case m.prefix:
		return strings.HasPrefix(t.text, m.word)
	case m.suffix:
		return len(t.text) > len(m.word)+2 && strings.HasSuffix(t.text, m.word)
	}
	return t.text == m.word
}

// phrase is a sequence of words that must follow each other.
type phrase []wordMatcher

type element struct {
	alts     []phrase
	optional bool
	gap      int // how many other words may come before this element
	// for elements with many alternatives: those starting with an exact word, by that word, and the
	// rest (prefix, suffix, number first); nil when alts is small enough to scan
	byWord map[string][]phrase
	others []phrase
}

// indexAlternatives fills byWord and others when an element has many alternatives.
func (e *element) indexAlternatives() {
	if len(e.alts) <= 6 {
		return
	}
	e.byWord = map[string][]phrase{}
	for _, ph := range e.alts {
		if m := ph[0]; m.prefix || m.suffix || m.num {
			e.others = append(e.others, ph)
		} else {
			e.byWord[m.word] = append(e.byWord[m.word], ph)
		}
	}
}

// candidates are the alternatives of e that can start at token t.
func (e *element) candidates(t token) ([]phrase, []phrase) {
	if e.byWord == nil {
		return e.alts, nil
	}
	return e.byWord[t.text], e.others
}

// pattern is one compiled lexicon line.
type pattern struct {
	section string   // emergency.cardiac, cue.info, injection, ...
	level   string   // acute or hint in emergency sections, "" elsewhere
	flags   []string // e.g. 3p: the subject must not be the writer
	elems   []element
	src     string // the line as written, for reasons
	where   string // file:line
	id      int
	multi   bool // indexed under several first words
	atStart bool // ^: must start a sentence
	atEnd   bool // $: must end a sentence
}

func (p *pattern) has(flag string) bool {
	for _, f := range p.flags {
		if f == flag {
			return true
		}
	}
	return false
}

// match is one place where a pattern matched: tokens [start, end).
type match struct {
	p          *pattern
	start, end int
}

// lexicon is a set of compiled patterns indexed by their possible first words.
type lexicon struct {
	classes  map[string][]phrase
	patterns []*pattern
	byFirst  map[string][]*pattern // by exact first word
	byPrefix map[string][]*pattern // by the first three letters of a first-word prefix
	bySuffix map[string][]*pattern // by the last two letters of a first-word suffix
	numFirst []*pattern            // patterns that can start with a number
	anyFirst []*pattern            // patterns that start with a prefix shorter than three letters
	words    map[string]int        // every literal word and prefix stem, for typo correction
	prefixes []string              // every prefix stem
}

func newLexicon() *lexicon {
	return &lexicon{classes: map[string][]phrase{}, byFirst: map[string][]*pattern{}, byPrefix: map[string][]*pattern{}, bySuffix: map[string][]*pattern{}, words: map[string]int{}}
}

var classDef = regexp.MustCompile(`^@[\w]+\s*=`)

var levels = map[string]bool{"acute": true, "hint": true}

// parse adds the classes and patterns of one file. Classes must be defined before use.
func (l *lexicon) parse(name, text string) error {
	section := ""
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		where := fmt.Sprintf("%s:%d", name, n)
		switch {
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = strings.TrimSpace(line[1 : len(line)-1])
		case classDef.MatchString(line):
			nm, def, _ := strings.Cut(line, "=")
			name := strings.TrimSpace(nm[1:])
			for _, alt := range splitTop(def, "|") {
				phs, err := l.classAlternative(strings.TrimSpace(alt))
				if err != nil {
					return fmt.Errorf("%s: class @%s: %w", where, name, err)
				}
				l.classes[name] = append(l.classes[name], phs...)
			}
		default:
			if section == "" {
				return fmt.Errorf("%s: pattern before any [section]: %q", where, line)
			}
			level := ""
			if strings.HasPrefix(section, "emergency.") {
				level, line, _ = strings.Cut(line, " ")
				level += " "
			}
			for _, alt := range splitTop(line, " | ") {
				p, err := l.compile(section, level+strings.TrimSpace(alt))
				if err != nil {
					return fmt.Errorf("%s: %w", where, err)
				}
				for _, q := range expandLeading(p) {
					q.where = where
					l.add(q)
				}
			}
		}
	}
	return sc.Err()
}

// compile turns one pattern line into a pattern.
func (l *lexicon) compile(section, line string) (*pattern, error) {
	p := &pattern{section: section, src: line}
	fields := splitElements(line)
	if strings.HasPrefix(section, "emergency.") {
		lv, flags, _ := strings.Cut(fields[0], "/")
		if !levels[lv] {
			return nil, fmt.Errorf("emergency pattern must start with acute or hint (optionally with /3p): %q", line)
		}
		p.level = lv
		if flags != "" {
			p.flags = strings.Split(flags, "/")
		}
		fields = fields[1:]
		p.src = strings.Join(fields, " ")
	}
	if len(fields) > 0 && fields[0] == "^" {
		p.atStart = true
		fields = fields[1:]
	}
	if n := len(fields); n > 0 && fields[n-1] == "$" {
		p.atEnd = true
		fields = fields[:n-1]
	}
	gap := 0
	for _, f := range fields {
		if strings.HasPrefix(f, "~") {
			gap = 3
			if len(f) > 1 {
				n, err := strconv.Atoi(f[1:])
				if err != nil || n < 1 || n > 20 {
					return nil, fmt.Errorf("bad gap %q (want ~ or ~N with N in 1..20)", f)
				}
				gap = n
			}
			continue
		}
		e, err := l.element(f)
		if err != nil {
			return nil, err
		}
		e.gap = gap
		gap = 0
		e.indexAlternatives()
		p.elems = append(p.elems, e)
	}
	if len(p.elems) == 0 {
		return nil, fmt.Errorf("empty pattern %q", line)
	}
	return p, nil
}

// expandLeading turns a pattern whose first elements are optional into patterns that each start
// with a required element, so that every pattern can be indexed by its first word.
func expandLeading(p *pattern) []*pattern {
	if !p.elems[0].optional {
		return []*pattern{p}
	}
	with := *p
	first := p.elems[0]
	first.optional, first.gap = false, 0
	with.elems = append([]element{first}, p.elems[1:]...)
	out := []*pattern{&with}
	if len(p.elems) > 1 {
		without := *p
		without.elems = append([]element{p.elems[1]}, p.elems[2:]...)
		without.elems[0].gap = 0
		out = append(out, expandLeading(&without)...)
	}
	return out
}

// splitTop splits s on sep outside parentheses: "a b | c (d | e)" → "a b", "c (d | e)".
func splitTop(s, sep string) []string {
	var out []string
	depth, start := 0, 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '(':
			depth++
		case ')':
			depth--
		}
		if depth == 0 && strings.HasPrefix(s[i:], sep) {
			out = append(out, s[start:i])
			start = i + len(sep)
			i += len(sep) - 1
		}
	}
	return append(out, s[start:])
}

// splitElements splits a pattern on spaces outside parentheses.
func splitElements(s string) []string {
	var out []string
	depth, start := 0, -1
	for i, r := range s {
		switch {
		case r == '(':
			depth++
		case r == ')':
			depth--
		}
		space := r == ' ' || r == '\t'
		if space && depth == 0 {
			if start >= 0 {
				out = append(out, s[start:i])
				start = -1
			}
		} else if start < 0 {
			start = i
		}
	}
	if start >= 0 {
		out = append(out, s[start:])
	}
	return out
}

func (l *lexicon) element(f string) (element, error) {
	var e element
	if strings.HasSuffix(f, "?") && len(f) > 1 {
		e.optional = true
		f = f[:len(f)-1]
	}
	switch {
	case strings.HasPrefix(f, "@"):
		alts, ok := l.classes[f[1:]]
		if !ok {
			return e, fmt.Errorf("unknown class %s", f)
		}
		e.alts = alts
	case strings.HasPrefix(f, "(") && strings.HasSuffix(f, ")"):
		alts, err := l.phrases(f[1 : len(f)-1])
		if err != nil {
			return e, err
		}
		e.alts = alts
	default:
		if strings.ContainsAny(f, "()") {
			return e, fmt.Errorf("unbalanced parentheses in %q", f)
		}
		for _, w := range strings.Split(f, "|") {
			if w == "" {
				return e, fmt.Errorf("empty alternative in %q", f)
			}
			if strings.HasPrefix(w, "@") {
				cl, ok := l.classes[w[1:]]
				if !ok {
					return e, fmt.Errorf("unknown class %s", w)
				}
				e.alts = append(e.alts, cl...)
				continue
			}
			ms, err := l.words1(w)
			if err != nil {
				return e, err
			}
			e.alts = append(e.alts, phrase(ms))
		}
	}
	return e, nil
}

// classAlternative expands one alternative of a class definition, which may combine words,
// parenthesised alternatives, optional elements and other classes ("side of (his|her) (face|body)"),
// into the phrases it stands for.
func (l *lexicon) classAlternative(alt string) ([]phrase, error) {
	if alt == "" {
		return nil, fmt.Errorf("empty alternative")
	}
	out := []phrase{nil}
	for _, f := range splitElements(alt) {
		if strings.HasPrefix(f, "~") {
			return nil, fmt.Errorf("gaps (~) are not allowed in classes: %q", alt)
		}
		e, err := l.element(f)
		if err != nil {
			return nil, err
		}
		var next []phrase
		for _, head := range out {
			if e.optional {
				next = append(next, head)
			}
			for _, tail := range e.alts {
				ph := append(append(phrase{}, head...), tail...)
				next = append(next, ph)
			}
		}
		out = next
	}
	return out, nil
}

// phrases parses the alternatives of a group, "a b | c* | @class | d (e|f)", into phrases; groups
// may nest.
func (l *lexicon) phrases(s string) ([]phrase, error) {
	if strings.Count(s, "(") != strings.Count(s, ")") {
		return nil, fmt.Errorf("unbalanced parentheses in %q", s)
	}
	var out []phrase
	for _, alt := range splitTop(s, "|") {
		alt = strings.TrimSpace(alt)
		if alt == "" {
			return nil, fmt.Errorf("empty alternative in %q", s)
		}
		phs, err := l.classAlternative(alt)
		if err != nil {
			return nil, err
		}
		out = append(out, phs...)
	}
	return out, nil
}

// words1 compiles one written word (which may normalise to several words, as grand-mère does).
func (l *lexicon) words1(w string) ([]wordMatcher, error) {
	if strings.ContainsAny(w, "()|~@?") {
		return nil, fmt.Errorf("stray syntax character in word %q", w)
	}
	if w == "#" {
		return []wordMatcher{{num: true}}, nil
	}
	if strings.HasPrefix(w, "#") && strings.HasSuffix(w, "+") {
		n, err := strconv.ParseFloat(w[1:len(w)-1], 64)
		if err != nil {
			return nil, fmt.Errorf("bad number bound %q (want #N+)", w)
		}
		return []wordMatcher{{num: true, min: n}}, nil
	}
	if lo, hi, ok := strings.Cut(strings.TrimPrefix(w, "#"), "-"); ok && strings.HasPrefix(w, "#") {
		a, err1 := strconv.ParseFloat(lo, 64)
		b, err2 := strconv.ParseFloat(hi, 64)
		if err1 != nil || err2 != nil || b <= a {
			return nil, fmt.Errorf("bad number range %q (want #A-B with A < B)", w)
		}
		return []wordMatcher{{num: true, min: a, max: b}}, nil
	}
	if strings.HasPrefix(w, "*") && len(w) > 1 {
		parts := strings.Fields(normWord(w[1:]))
		if len(parts) != 1 {
			return nil, fmt.Errorf("suffix %q must be one word", w)
		}
		return []wordMatcher{{word: parts[0], suffix: true}}, nil
	}
	prefix := strings.HasSuffix(w, "*")
	w = strings.TrimSuffix(w, "*")
	parts := strings.Fields(normWord(w))
	if len(parts) == 0 {
		return nil, fmt.Errorf("%q has no letters or digits", w)
	}
	ms := make([]wordMatcher, len(parts))
	for i, p := range parts {
		ms[i] = wordMatcher{word: p}
		l.words[p]++
	}
	if prefix {
		ms[len(ms)-1].prefix = true
		l.prefixes = append(l.prefixes, parts[len(parts)-1])
	}
	return ms, nil
}

// add indexes p under each word its first element can start with: exact words in byFirst,
// prefixes by their first three letters, suffixes by their last two, numbers in numFirst; shorter
// prefixes are tried everywhere. A pattern indexed under several keys is marked multi, so that find
// tries it once per word.
func (l *lexicon) add(p *pattern) {
	p.id = len(l.patterns)
	l.patterns = append(l.patterns, p)
	for _, ph := range p.elems[0].alts {
		if m := ph[0]; (m.prefix && len(m.word) < 3) || (m.suffix && len(m.word) < 2) {
			l.anyFirst = append(l.anyFirst, p) // tried at every word, so indexed nowhere else
			return
		}
	}
	keys := 0
	put := func(m map[string][]*pattern, k string) {
		if list := m[k]; len(list) == 0 || list[len(list)-1] != p {
			m[k] = append(list, p)
			keys++
		}
	}
	for _, ph := range p.elems[0].alts {
		switch m := ph[0]; {
		case m.num:
			if len(l.numFirst) == 0 || l.numFirst[len(l.numFirst)-1] != p {
				l.numFirst = append(l.numFirst, p)
				keys++
			}
		case m.prefix:
			put(l.byPrefix, m.word[:3])
		case m.suffix:
			put(l.bySuffix, m.word[len(m.word)-2:])
		default:
			put(l.byFirst, m.word)
		}
	}
	p.multi = keys > 1
}

// find returns every match of every pattern, in order of start position.
func (l *lexicon) find(toks []token) []match {
	var out []match
	var tried []*pattern // multi-indexed patterns already tried at this word
	try := func(p *pattern, i int) {
		if p.multi {
			for _, q := range tried {
				if q == p {
					return
				}
			}
			tried = append(tried, p)
		}
		sent := toks[i].sent
		if p.atStart && i > 0 && toks[i-1].sent == sent {
			return
		}
		if end, ok := l.matchFrom(p, toks, 0, i, sent); ok {
			if p.atEnd && end < len(toks) && toks[end].sent == sent {
				return
			}
			out = append(out, match{p: p, start: i, end: end})
		}
	}
	for i, t := range toks {
		tried = tried[:0]
		for _, p := range l.byFirst[t.text] {
			try(p, i)
		}
		if len(t.text) >= 3 {
			for _, p := range l.byPrefix[t.text[:3]] {
				try(p, i)
			}
			for _, p := range l.bySuffix[t.text[len(t.text)-2:]] {
				try(p, i)
			}
		}
		if _, ok := numberValue(t); ok {
			for _, p := range l.numFirst {
				try(p, i)
			}
		}
		for _, p := range l.anyFirst {
			try(p, i)
		}
	}
	return out
}

// matchFrom matches elements k.. of p starting at token pos, within sentence sent.
func (l *lexicon) matchFrom(p *pattern, toks []token, k, pos, sent int) (int, bool) {
	if k == len(p.elems) {
		return pos, true
	}
	e := p.elems[k]
	for skip := 0; skip <= e.gap; skip++ {
		at := pos + skip
		if at >= len(toks) || toks[at].sent != sent {
			break
		}
		exact, others := e.candidates(toks[at])
		for _, list := range [2][]phrase{exact, others} {
			for _, ph := range list {
				if end, ok := matchPhrase(ph, toks, at, sent); ok {
					if end2, ok := l.matchFrom(p, toks, k+1, end, sent); ok {
						return end2, true
					}
				}
			}
		}
	}
	if e.optional {
		return l.matchFrom(p, toks, k+1, pos, sent)
	}
	return 0, false
}

func matchPhrase(ph phrase, toks []token, at, sent int) (int, bool) {
	if at+len(ph) > len(toks) {
		return 0, false
	}
	for j, m := range ph {
		t := toks[at+j]
		if t.sent != sent || !m.match(t) {
			return 0, false
		}
	}
	return at + len(ph), true
}

// numberValue is the value of a number token (digits, or a number word in en, es, fr, de).
func numberValue(t token) (float64, bool) {
	if t.num {
		v, err := strconv.ParseFloat(t.text, 64)
		return v, err == nil
	}
	v, ok := numberWords[t.text]
	return v, ok
}

// numberWords are the number words that # matches besides digits, with their values ("several"
// counts as 5).
var numberWords = func() map[string]float64 {
	m := map[string]float64{}
	for _, line := range strings.Split(`1 one uno una un une ein eine
		2 two dos deux zwei
		3 three tres trois drei
		4 four cuatro quatre vier
		5 five cinco cinq funf several varias varios plusieurs mehrere
		6 six seis sechs
		7 seven siete sept sieben
		8 eight ocho huit acht
		9 nine nueve neuf neun
		10 ten diez dix zehn
		11 eleven once onze elf
		12 twelve dozen doce douze zwolf
		15 fifteen quince quinze funfzehn
		20 twenty veinte vingt zwanzig
		30 thirty treinta trente dreissig
		40 forty cuarenta quarante vierzig
		50 fifty cincuenta cinquante funfzig
		100 hundred cien cent hundert`, "\n") {
		f := strings.Fields(line)
		v, _ := strconv.ParseFloat(f[0], 64)
		for _, w := range f[1:] {
			m[w] = v
		}
	}
	return m
}()
