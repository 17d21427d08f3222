package guard

import (
	"fmt"
	"strings"
)

// Cue sections of the lexicon (assets/guard/cues.txt). Word-level cues mark the last word of each
// match; sentence-level cues mark the sentence; message-level cues the whole message.
const (
	cueActual   = "cue.actual"     // the writer or a person near them: I, my dad, she is ... (message)
	cueUrgent   = "cue.urgent"     // help me, right now, hurry, call 911 (message)
	cueFiction  = "cue.fiction"    // write a story, in my novel, the character (message)
	cueClinical = "cue.clinical"   // most likely diagnosis, a patient presenting with (message)
	cueInfo     = "cue.info"       // what are the signs of, how to recognise (before the match)
	cueInfoPost = "cue.info_after" // heart attack symptoms, stroke risk (right after the match)
	cueCond     = "cue.cond"       // if, in case, what to do when someone (before the match)
	cueNotCond  = "cue.notcond"    // "not sure if", "check if": an if that is not hypothetical
	cueNegation = "cue.negation"   // no, not, without, kein (two words before the match)
	cueRemote   = "cue.remote"     // last year, years ago, history of (sentence)
	cueChronic  = "cue.chronic"    // for weeks, on and off, when I exercise (sentence)
	cueIntense  = "cue.intense"    // severe, crushing, sudden, worst (sentence)
	cueHuman    = "cue.human"      // nearest subject is a person
	cueNonhuman = "cue.nonhuman"   // nearest subject is a thing: server, app, startup, car
	cueSelf     = "cue.self"       // nearest subject is the writer (for patterns flagged 3p)
	secExclude  = "exclude"        // medical but not urgent: voids an overlapping emergency match
	secFigure   = "figurative"     // medical words in other senses: voids it too
	secInject   = "injection"      // attempts to change the assistant's instructions
	secEmerg    = "emergency."
	secLang     = "lang."
)

// cues holds where each kind of cue occurs in one message.
type cues struct {
	ends     map[string][]bool // word-level: section → ends at token i
	starts   map[string][]bool // word-level: section → starts at token i
	sentence map[string][]bool // sentence-level: section → sentence s has one
	message  map[string]bool   // message-level
	spans    []match           // exclude matches
}

var (
	wordCues     = []string{cueInfo, cueInfoPost, cueCond, cueNotCond, cueNegation, cueHuman, cueNonhuman, cueSelf}
	sentenceCues = []string{cueRemote, cueChronic, cueIntense}
	messageCues  = []string{cueActual, cueUrgent, cueFiction, cueClinical}
)

func indexCues(d *doc, ms []match) *cues {
	c := &cues{ends: map[string][]bool{}, starts: map[string][]bool{}, sentence: map[string][]bool{}, message: map[string]bool{}}
	for _, s := range wordCues {
		c.ends[s] = make([]bool, len(d.toks))
		c.starts[s] = make([]bool, len(d.toks))
	}
	for _, s := range sentenceCues {
		c.sentence[s] = make([]bool, d.sentences)
	}
	for _, m := range ms {
		sec := m.p.section
		switch {
		case sec == secExclude || sec == secFigure:
			c.spans = append(c.spans, m)
		case c.ends[sec] != nil:
			c.ends[sec][m.end-1] = true
			c.starts[sec][m.start] = true
		case c.sentence[sec] != nil:
			c.sentence[sec][d.toks[m.start].sent] = true
		case strings.HasPrefix(sec, "cue."):
			c.message[sec] = true
		}
	}
	for j, not := range c.ends[cueNotCond] {
		if not {
			c.ends[cueCond][j] = false
		}
	}
	if d.exclaim >= 2 {
		c.message[cueUrgent] = true
	}
	return c
}

// endsWithin reports whether a word-level cue ends in [from, to] within sentence sent.
func (c *cues) endsWithin(d *doc, sec string, from, to, sent int) bool {
	return markedWithin(c.ends[sec], d, from, to, sent)
}

// startsWithin reports whether a word-level cue starts in [from, to] within sentence sent.
func (c *cues) startsWithin(d *doc, sec string, from, to, sent int) bool {
	return markedWithin(c.starts[sec], d, from, to, sent)
}

// markedWithin reports whether a token in [from, to] of sentence sent is marked.
func markedWithin(marks []bool, d *doc, from, to, sent int) bool {
	for j := max(from, 0); j <= to && j < len(marks); j++ {
		if marks[j] && d.toks[j].sent == sent {
			return true
		}
	}
	return false
}

// subject is the nearest person or thing before token i in its sentence: "human", "self",
// "nonhuman" or "" when there is none within reach.
func (c *cues) subject(d *doc, i int) string {
	sent := d.toks[i].sent
	for j := i - 1; j >= 0 && j >= i-8 && d.toks[j].sent == sent; j-- {
		switch {
		case c.ends[cueNonhuman][j] && !afterPreposition(d, j):
			return "nonhuman"
		case c.ends[cueSelf][j]:
			return "self"
		case c.ends[cueHuman][j]:
			return "human"
		}
	}
	return ""
}

// afterPreposition reports whether the word at j follows a preposition ("at the restaurant",
// "on my phone"): a place or an instrument, not the subject.
func afterPreposition(d *doc, j int) bool {
	for k := j - 1; k >= 0 && k >= j-2 && d.toks[k].sent == d.toks[j].sent; k-- {
		if prepositions[d.toks[k].text] {
			return true
		}
	}
	return false
}

var prepositions = func() map[string]bool {
	m := map[string]bool{}
	for _, w := range strings.Fields(`at in on from to near inside outside by with into onto behind under over during after before
		beside next across through en dans sur chez avec pres a al del con cerca im am auf bei mit neben vor nach zum zur`) {
		m[w] = true
	}
	return m
}()

// evidence is one emergency match that survived its context.
type evidence struct {
	m        match
	category string
	phrase   string
}

// emergencyResult is the outcome of the emergency rules.
type emergencyResult struct {
	category string
	score    float64
	found    []evidence
}

// detectEmergency applies the emergency override list to a message: an acute phrasing ("isn't
// breathing", "crushing chest pain") makes it an emergency, unless it is negated, hypothetical or
// informational ("what are the signs of ..."), in the past ("last year"), chronic, about a thing
// ("the server isn't responding"), in fiction or an exam-style clinical case, or overlapped by
// another sense ("bleeding cash"). A call for help now ("help me", "right now") keeps it whatever
// the framing.
func detectEmergency(d *doc, ms []match, c *cues) (emergencyResult, bool) {
	urgent := c.message[cueUrgent]
	var acute []evidence
	for _, m := range ms {
		if !strings.HasPrefix(m.p.section, secEmerg) || m.p.level != "acute" {
			continue
		}
		sent := d.toks[m.start].sent
		if c.excluded(m) || c.endsWithin(d, cueNegation, m.start-2, m.start-1, sent) {
			continue
		}
		switch c.subject(d, m.start) {
		case "nonhuman":
			if !c.endsWithin(d, cueHuman, m.start, m.end-1, sent) {
				continue // "the server is unresponsive"; but "... the lawn ... pain in my chest" is a person's
			}
		case "self":
			if m.p.has("3p") {
				continue
			}
		}
		if !urgent && (c.message[cueFiction] || c.message[cueClinical] || c.sentence[cueRemote][sent]) {
			continue
		}
		hypothetical := c.endsWithin(d, cueCond, m.start-10, m.start-1, sent) ||
			c.endsWithin(d, cueInfo, m.start-10, m.start-1, sent) ||
			c.startsWithin(d, cueInfo, m.start-10, m.start-1, sent) || // "what temperature is a fever in a newborn"
			c.startsWithin(d, cueInfoPost, m.end, m.end+1, sent)
		if hypothetical && !urgent {
			continue
		}
		ev := evidence{m: m, category: strings.TrimPrefix(m.p.section, secEmerg), phrase: phraseOf(d, m)}
		if !urgent && c.sentence[cueChronic][sent] && !lastsLonger(ev.category) {
			continue
		}
		acute = append(acute, ev)
	}
	if len(acute) == 0 {
		return emergencyResult{}, false
	}
	return emergencyResult{category: acute[0].category, score: 1, found: acute}, true
}

// lastsLonger reports whether a category stays an emergency however long it has gone on: thoughts
// of self-harm for weeks still get the crisis line, and a seizure, a bleed or unconsciousness that
// has gone on "for ages" is worse, not chronic.
func lastsLonger(category string) bool {
	switch category {
	case "self_harm", "seizure", "bleeding", "unconscious":
		return true
	}
	return false
}

// excluded reports whether m overlaps a match of the exclude or figurative sections.
func (c *cues) excluded(m match) bool {
	for _, x := range c.spans {
		if x.start < m.end && m.start < x.end {
			return true
		}
	}
	return false
}

// phraseOf is the text a match covered, as the writer spelled it (normalised).
func phraseOf(d *doc, m match) string {
	parts := make([]string, 0, m.end-m.start)
	for _, t := range d.toks[m.start:m.end] {
		parts = append(parts, t.orig)
	}
	return strings.Join(parts, " ")
}

// reason renders the evidence: `cardiac: rule "crushing chest pain" + "arm is numb"`.
func (r emergencyResult) reason() string {
	var b strings.Builder
	b.WriteString(r.category)
	b.WriteString(": rule ")
	seen := map[string]bool{}
	n := 0
	for _, e := range r.found {
		if seen[e.phrase] || n == 3 {
			continue
		}
		seen[e.phrase] = true
		if n > 0 {
			b.WriteString(" + ")
		}
		fmt.Fprintf(&b, "%q", e.phrase)
		n++
	}
	return b.String()
}
