package guard

import (
	"strings"
	"unicode"
)

// Sections of a formatted answer, in order.
const (
	secNone = iota
	secSummary
	secDetails
	secCare
)

// SectionTitles are the headings of a formatted answer, in order.
var SectionTitles = [...]string{secSummary: "Summary", secDetails: "Details", secCare: "When to seek care"}

// headingVariants are the ways a model may write each heading itself (compared case-insensitively
// after leading markup); such lines are replaced by the canonical heading, or dropped when that
// section has passed.
var headingVariants = []struct {
	text string
	sec  int
}{
	{"summary", secSummary}, {"in summary", secSummary}, {"short answer", secSummary}, {"overview", secSummary}, {"in short", secSummary},
	{"details", secDetails}, {"more details", secDetails}, {"explanation", secDetails}, {"in detail", secDetails}, {"more information", secDetails},
	{"when to seek care", secCare}, {"when to seek medical care", secCare}, {"when to seek help", secCare}, {"when to get help", secCare},
	{"when to see a doctor", secCare}, {"when to seek medical attention", secCare}, {"when to call a doctor", secCare}, {"seek care", secCare},
	{"when to seek medical help", secCare}, {"when to see your doctor", secCare},
}

// Formatter shapes a model's answer as it streams: a Summary (the first paragraph), Details (the rest),
// When to seek care (the model's own, or the configured text) and the disclaimer exactly once at the
// end. Headings and disclaimers the model writes itself are folded into this structure. The output is
// the same whether the answer arrives in one piece or in any number of pieces.
//
// Write returns text that can be sent at once; a line is held back only while it might still turn out
// to be a heading or a disclaimer. Close returns the rest. A Formatter is for one answer and one
// goroutine.
type Formatter struct {
	disclaimer string
	seekCare   string
	discNorm   string // the disclaimer normalised like lines are

	strip *remover // removes the disclaimer from the model's text before formatting

	section     int
	pending     string // start of a line not yet decided
	passthrough bool   // the current line was decided to be content and is being streamed
	blanks      bool   // a blank line came after the last content line
	content     [4]bool
	closed      bool
	out         strings.Builder
}

// NewFormatter starts formatting one answer.
func (g *Guard) NewFormatter() *Formatter {
	return newFormatter(g.cfg.Disclaimer, g.cfg.SeekCare)
}

func newFormatter(disclaimer, seekCare string) *Formatter {
	return &Formatter{disclaimer: disclaimer, seekCare: seekCare, discNorm: lineKey(disclaimer), strip: newRemover(disclaimer)}
}

// Write takes the next piece of the model's answer and returns the formatted text ready to send.
func (f *Formatter) Write(delta string) string {
	if f.closed {
		return ""
	}
	f.out.Reset()
	f.format(f.strip.write(delta))
	return f.out.String()
}

// format adds model text (the disclaimer already removed) to f.out.
func (f *Formatter) format(delta string) {
	for delta != "" {
		nl := strings.IndexByte(delta, '\n')
		if f.passthrough {
			if nl < 0 {
				f.out.WriteString(delta)
				return
			}
			f.out.WriteString(delta[:nl+1])
			delta = delta[nl+1:]
			f.passthrough = false
			continue
		}
		if nl >= 0 {
			f.line(f.pending + delta[:nl])
			f.pending = ""
			delta = delta[nl+1:]
			continue
		}
		f.pending += delta
		delta = ""
		if sec, rest, ok := f.decided(f.pending); ok {
			if sec != secNone {
				f.modelHeading(sec)
			}
			f.startContent()
			f.out.WriteString(rest)
			f.pending, f.passthrough = "", true
		}
	}
}

// Close ends the answer: the last line, the missing sections and the disclaimer.
func (f *Formatter) Close() string {
	if f.closed {
		return ""
	}
	f.closed = true
	f.out.Reset()
	f.format(f.strip.flush())
	switch {
	case f.passthrough:
		f.out.WriteByte('\n')
		f.passthrough = false
	case f.pending != "":
		f.line(f.pending)
		f.pending = ""
	}
	if f.section == secNone {
		f.heading(secSummary)
		f.out.WriteString("No answer was generated.\n")
	}
	if f.section < secCare {
		f.heading(secCare)
	}
	if !f.content[secCare] {
		f.out.WriteString(f.seekCare)
		f.out.WriteByte('\n')
	}
	f.out.WriteString("\n---\n")
	f.out.WriteString(f.disclaimer)
	f.out.WriteByte('\n')
	return f.out.String()
}

// line handles one complete line of the model's answer.
func (f *Formatter) line(l string) {
	kind, sec, rest := classifyLine(l, f.discNorm)
	switch kind {
	case lineBlank:
		if f.content[f.section] {
			f.blanks = true
		}
	case lineDrop:
	case lineHeading:
		f.modelHeading(sec)
		if rest != "" {
			f.startContent()
			f.out.WriteString(rest)
			f.out.WriteByte('\n')
		}
	default:
		f.startContent()
		f.out.WriteString(l)
		f.out.WriteByte('\n')
	}
}

// modelHeading follows a heading the model wrote: Summary may open the answer; a later section
// starts only once the current one has content (otherwise the heading is dropped and the text stays
// where it is, so the Summary always comes first and no section is empty).
func (f *Formatter) modelHeading(sec int) {
	if f.section == secNone {
		if sec == secSummary {
			f.heading(secSummary)
		}
		return
	}
	if f.content[f.section] {
		f.heading(sec)
	}
}

// heading moves on to section sec and writes its title; a section already passed is not reopened.
func (f *Formatter) heading(sec int) {
	if sec <= f.section {
		return
	}
	if f.section != secNone {
		f.out.WriteByte('\n')
	}
	f.section = sec
	f.blanks = false
	f.out.WriteString("**" + SectionTitles[sec] + "**\n")
}

// startContent prepares for a content line: the Summary heading first, Details after the first
// paragraph, a blank line between paragraphs.
func (f *Formatter) startContent() {
	switch {
	case f.section == secNone:
		f.heading(secSummary)
	case f.section == secSummary && f.blanks && f.content[secSummary]:
		f.heading(secDetails)
	case f.blanks:
		f.out.WriteByte('\n')
	}
	f.blanks = false
	f.content[f.section] = true
}

// remover deletes every occurrence of a pattern from a stream, including occurrences that only
// form once an inner one is removed, and holds back no more than a partial match: a stack of bytes
// with their Knuth-Morris-Pratt states.
type remover struct {
	pat    []byte
	fail   []int
	held   []byte // bytes not yet released
	states []int  // states[i]: matcher state after held[i]
	base   int    // matcher state before held[0]
	out    []byte
}

func newRemover(pattern string) *remover {
	r := &remover{pat: []byte(pattern)}
	r.fail = make([]int, len(r.pat))
	for i, k := 1, 0; i < len(r.pat); i++ {
		for k > 0 && r.pat[i] != r.pat[k] {
			k = r.fail[k-1]
		}
		if r.pat[i] == r.pat[k] {
			k++
		}
		r.fail[i] = k
	}
	return r
}

func (r *remover) state() int {
	if n := len(r.states); n > 0 {
		return r.states[n-1]
	}
	return r.base
}

// write takes more of the stream and returns what can no longer be part of an occurrence.
func (r *remover) write(s string) string {
	if len(r.pat) == 0 {
		return s
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		k := r.state()
		for k > 0 && c != r.pat[k] {
			k = r.fail[k-1]
		}
		if c == r.pat[k] {
			k++
		}
		r.held = append(r.held, c)
		r.states = append(r.states, k)
		if k == len(r.pat) { // a whole occurrence: drop it and resume from the state before it
			r.held = r.held[:len(r.held)-len(r.pat)]
			r.states = r.states[:len(r.states)-len(r.pat)]
		}
	}
	// release everything but the partial match at the end
	n := len(r.held) - r.state()
	if n <= 0 {
		return ""
	}
	r.out = append(r.out[:0], r.held[:n]...)
	r.base = r.states[n-1]
	r.held = append(r.held[:0], r.held[n:]...)
	r.states = append(r.states[:0], r.states[n:]...)
	return string(r.out)
}

// flush returns whatever is still held back.
func (r *remover) flush() string {
	s := string(r.held)
	r.held, r.states, r.base = r.held[:0], r.states[:0], 0
	return s
}

type lineKind int

const (
	lineContent lineKind = iota
	lineBlank
	lineHeading
	lineDrop
)

// classifyLine decides what a complete line is: blank, a heading (possibly followed on the same line
// by content after a colon: "Summary: ..."), a disclaimer to drop, or content.
func classifyLine(l, discNorm string) (lineKind, int, string) {
	if strings.TrimSpace(l) == "" {
		return lineBlank, 0, ""
	}
	key := lineKey(l)
	if strings.HasPrefix(key, "disclaimer") || (discNorm != "" && strings.HasPrefix(key, discNorm)) {
		return lineDrop, 0, ""
	}
	body := stripLead(l)
	for _, v := range headingVariants {
		if rest, ok := headingRest(body, v.text); ok {
			return lineHeading, v.sec, rest
		}
	}
	return lineContent, 0, ""
}

// decided is called for an unfinished line. It reports ok when no continuation can change what the
// line is: either content (sec 0, rest = the line so far) or a heading followed by content on the same
// line (rest = the content so far).
func (f *Formatter) decided(l string) (int, string, bool) {
	body := stripLead(l)
	if strings.TrimSpace(body) == "" {
		return 0, "", false
	}
	key := lineKey(l)
	if couldStart(key, "disclaimer") || (f.discNorm != "" && couldStart(key, f.discNorm)) {
		return 0, "", false
	}
	for _, v := range headingVariants {
		if len(body) < len(v.text) {
			if strings.EqualFold(body, v.text[:len(body)]) {
				return 0, "", false // may still become the heading
			}
			continue
		}
		if !strings.EqualFold(body[:len(v.text)], v.text) {
			continue
		}
		tail := body[len(v.text):]
		marks := strings.TrimLeft(tail, headingMarks)
		if strings.TrimRight(marks, headingEnd) == "" {
			return 0, "", false // "Summary**" or "Summary:" may still end the line
		}
		if strings.Contains(tail[:len(tail)-len(marks)], ":") {
			return v.sec, marks, true // "Summary: the flu is ..."
		}
		// "Summary of ..." is content as far as this variant goes
	}
	return 0, l, true
}

// Characters around a heading: skipped after it, and allowed to end a heading line.
const (
	headingMarks = " \t*_:"
	headingEnd   = " \t*_:.\r"
)

// couldStart reports whether a line whose key begins with key could turn out to start with target.
func couldStart(key, target string) bool {
	return strings.HasPrefix(target, key) || strings.HasPrefix(key, target)
}

// headingRest reports whether body (markup stripped at the start) is heading v, alone or followed
// by ':' and content on the same line, and returns that content.
func headingRest(body, v string) (string, bool) {
	if len(body) < len(v) || !strings.EqualFold(body[:len(v)], v) {
		return "", false
	}
	tail := body[len(v):]
	marks := strings.TrimLeft(tail, headingMarks)
	if strings.TrimRight(marks, headingEnd) == "" {
		return "", true
	}
	if !strings.Contains(tail[:len(tail)-len(marks)], ":") {
		return "", false
	}
	return marks, true
}

// stripLead removes leading spaces, markdown heading and emphasis marks and list bullets.
func stripLead(l string) string {
	return strings.TrimLeft(l, " \t#*_>-")
}

// lineKey is a line reduced to lower-case letters, digits and single spaces, for comparisons.
func lineKey(l string) string {
	var b strings.Builder
	space := false
	for _, r := range strings.ToLower(l) {
		if unicode.IsLetter(r) || unicode.IsDigit(r) {
			if space && b.Len() > 0 {
				b.WriteByte(' ')
			}
			space = false
			b.WriteRune(r)
		} else {
			space = true
		}
	}
	return b.String()
}
