package guard

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// inputProblem is why a message cannot be checked at all; it becomes an Invalid verdict.
type inputProblem struct {
	code   string // empty, too_long, invalid_utf8, control_chars
	detail string // for the reason
	user   string // message key for the user
	n      int    // characters (too_long) or offending rune position
}

// validate checks the raw text: valid UTF-8 without replacement characters, no control characters
// other than tab and newlines, not blank, at most maxChars characters.
func validate(text string, maxChars int) *inputProblem {
	if !utf8.ValidString(text) {
		i := firstInvalid(text)
		return &inputProblem{code: "invalid_utf8", detail: fmt.Sprintf("byte %d is not valid UTF-8", i), user: "invalid_utf8"}
	}
	n, visible := 0, false
	for _, r := range text {
		n++
		switch {
		case r == utf8.RuneError:
			return &inputProblem{code: "invalid_utf8", detail: fmt.Sprintf("character %d is U+FFFD, the mark of a broken encoding", n), user: "invalid_utf8", n: n}
		case isControl(r):
			return &inputProblem{code: "control_chars", detail: fmt.Sprintf("character %d is the control character %U", n, r), user: "control_chars", n: n}
		case !visible && !unicode.IsSpace(r) && !isInvisible(r):
			visible = true
		}
	}
	if n > maxChars {
		return &inputProblem{code: "too_long", detail: fmt.Sprintf("%d characters, the limit is %d", n, maxChars), user: "too_long", n: n}
	}
	if !visible {
		return &inputProblem{code: "empty", detail: "no visible characters", user: "empty"}
	}
	return nil
}

func firstInvalid(s string) int {
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size <= 1 {
			return i
		}
		i += size
	}
	return len(s)
}

// isControl reports C0 and C1 control characters other than tab, newline and carriage return.
func isControl(r rune) bool {
	if r == '\t' || r == '\n' || r == '\r' {
		return false
	}
	return r < 0x20 || (r >= 0x7f && r <= 0x9f)
}

// isInvisible reports format characters that are dropped before matching (zero-width spaces and
// joiners, bidirectional controls, the byte-order mark, soft hyphen): they can hide words from a
// lexicon but carry no meaning of their own.
func isInvisible(r rune) bool {
	return r == 0xad || unicode.Is(unicode.Cf, r)
}

// token is one normalised word of a message.
type token struct {
	text string // lower case, accents removed, apostrophes dropped, letter runs squashed, typos corrected
	orig string // text before typo correction
	sent int    // sentence number, from 0
	num  bool   // digits
}

// doc is a normalised message.
type doc struct {
	toks      []token
	sentences int
	exclaim   int    // number of '!'
	lang      string // detected language: en, es, fr, de, it or pt
}

// analyze normalises text (NFKC, case folding, accent removal, whitespace and punctuation folding,
// squashed letter runs) into words and sentences. The text must already have passed validate.
func analyze(text string) doc {
	text = norm.NFKC.String(text)
	var d doc
	var cur []rune
	sent := 0
	lastBoundary := false // the previous token was followed by a sentence boundary
	flush := func() {
		if len(cur) == 0 {
			return
		}
		s := string(cur)
		num := cur[0] >= '0' && cur[0] <= '9'
		if lastBoundary && len(d.toks) > 0 {
			sent++
		}
		lastBoundary = false
		d.toks = append(d.toks, token{text: s, orig: s, sent: sent, num: num})
		cur = cur[:0]
	}
	runes := []rune(text)
	for i, r := range runes {
		switch {
		case isInvisible(r):
			continue
		case unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.Is(unicode.Mn, r):
			if last := len(cur) - 1; last >= 0 && (isDigit(cur[last]) || cur[last] == '.') != isDigit(r) {
				flush() // "30mg" → 30 mg
			}
			cur = appendFolded(cur, r)
		case isApostrophe(r) && len(cur) > 0 && i+1 < len(runes) && unicode.IsLetter(runes[i+1]):
			// isn't → isnt, j'ai → jai: dropped inside a word
		case (r == '.' || r == ',') && len(cur) > 0 && isDigit(cur[len(cur)-1]) && i+1 < len(runes) && isDigit(runes[i+1]):
			cur = append(cur, '.') // 38.5, 38,5
		default:
			flush()
			switch r {
			case '.', '!', '?', ';', '\n', '…', '。', '！', '？':
				lastBoundary = true
			}
			if r == '!' || r == '！' {
				d.exclaim++
			}
		}
	}
	flush()
	d.sentences = sent + 1
	return d
}

func isDigit(r rune) bool { return r >= '0' && r <= '9' }

func isApostrophe(r rune) bool {
	switch r {
	case '\'', '’', '‘', 'ʼ', '`', '´', '′':
		return true
	}
	return false
}

// appendFolded appends r lower-cased and without accents, squashing runs of three or more equal
// letters to two ("heeelp" → "heelp").
func appendFolded(cur []rune, r rune) []rune {
	r = unicode.ToLower(r)
	if r < 0x80 {
		return squash(cur, r)
	}
	if f, ok := foldTable[r]; ok {
		for _, x := range f {
			cur = squash(cur, x)
		}
		return cur
	}
	if unicode.Is(unicode.Mn, r) {
		return cur // a combining accent left after NFKC
	}
	return squash(cur, r)
}

func squash(cur []rune, r rune) []rune {
	if n := len(cur); n >= 2 && cur[n-1] == r && cur[n-2] == r && !isDigit(r) {
		return cur
	}
	return append(cur, r)
}

// foldTable maps accented Latin letters to their base letters (é → e, ñ → n, ü → u) and ligatures
// to letter pairs (ß → ss, œ → oe).
var foldTable = func() map[rune][]rune {
	m := map[rune][]rune{'ß': []rune("ss"), 'ẞ': []rune("ss"), 'æ': []rune("ae"), 'œ': []rune("oe"), 'ø': {'o'}, 'ł': {'l'}, 'đ': {'d'}, 'ı': {'i'}}
	for r := rune(0xc0); r <= 0x24f; r++ {
		if _, ok := m[r]; ok || !unicode.IsLetter(r) {
			continue
		}
		var base []rune
		for _, x := range norm.NFD.String(string(r)) {
			if !unicode.Is(unicode.Mn, x) {
				base = append(base, unicode.ToLower(x))
			}
		}
		if len(base) == 1 && base[0] != unicode.ToLower(r) {
			m[r] = base
		}
	}
	return m
}()

// normWord normalises one lexicon word the way analyze normalises message words.
func normWord(w string) string {
	d := analyze(w)
	parts := make([]string, len(d.toks))
	for i, t := range d.toks {
		parts[i] = t.text
	}
	return strings.Join(parts, " ")
}
