package tokenizer

import (
	"slices"
	"strings"
)

// contextMarks is how many earlier commit points the decode window reaches back: the window
// starts with already emitted tokens so that decoders which treat the first token specially
// (Llama strips its leading space) see the new ids in context.
const contextMarks = 4

// StreamDecoder turns generated ids into text as they arrive. Use one per generated sequence.
//
// The guarantee, checked after every id by the tests: let full = Decode(ids so far, skipSpecial).
// Text() is always a prefix of full, and Text() == full whenever the ids are settled:
//   - the last id (special ids excluded when they are skipped) is not a byte-fallback token
//     "<0xNN>", and
//   - full does not end in U+FFFD past the text already emitted.
//
// While the ids are not settled, Add returns "" and Text() stays as it was. The reason is HF's
// ByteFallback decoder: it turns a run of consecutive byte tokens into text as a whole, and into
// one U+FFFD per byte when the run's bytes are not valid UTF-8, so a character completed by the
// last byte token can still become "���" if the next token is a stray byte. A run is final once a
// token that is not a byte token follows it (EOS included, unless special ids are skipped).
// Flush emits whatever is held back when the stream ends; then Text() == full.
//
// Each Add decodes a short window (a few earlier tokens for context plus the new ones), so the
// cost does not grow with the length of the text; it falls back to decoding everything when the
// window does not line up.
type StreamDecoder struct {
	t           *Tokenizer
	skipSpecial bool
	ids         []int
	marks       []int // recent commit points (ids[:mark] fully emitted), oldest first, starting with 0
	text        strings.Builder
}

// NewStreamDecoder starts an empty stream; skipSpecial is Decode's skip_special_tokens.
func (t *Tokenizer) NewStreamDecoder(skipSpecial bool) *StreamDecoder {
	return &StreamDecoder{t: t, skipSpecial: skipSpecial, marks: []int{0}}
}

// Add appends one id and returns the text it completes ("" while it is held back).
func (d *StreamDecoder) Add(id int) string {
	if d.skipSpecial && d.t.IsSpecial(id) {
		return "" // Decode drops it: it neither adds text nor ends a byte run
	}
	d.ids = append(d.ids, id)
	if d.t.isByte(id) {
		return ""
	}
	delta, ok := d.pending()
	if !ok || strings.HasSuffix(delta, "\uFFFD") {
		return ""
	}
	d.commit(delta)
	return delta
}

// Text is everything emitted so far.
func (d *StreamDecoder) Text() string { return d.text.String() }

// Flush ends the stream: it returns the text held back (an unfinished byte run decodes to
// U+FFFD, as in Decode), after which Text() == Decode(all ids).
func (d *StreamDecoder) Flush() string {
	full := d.t.Decode(d.ids, d.skipSpecial)
	emitted := d.text.String()
	if !strings.HasPrefix(full, emitted) {
		return ""
	}
	delta := full[len(emitted):]
	d.commit(delta)
	return delta
}

// pending decodes the ids after the last commit point in context.
func (d *StreamDecoder) pending() (string, bool) {
	committed := d.marks[len(d.marks)-1]
	if a := d.marks[max(0, len(d.marks)-contextMarks)]; a > 0 {
		// ids[:a] and ids[a:] decode independently: a follows a token that is not a byte token.
		// A non-empty prev has taken any leading-space strip for itself.
		prev := d.t.Decode(d.ids[a:committed], d.skipSpecial)
		cur := d.t.Decode(d.ids[a:], d.skipSpecial)
		if prev != "" && strings.HasPrefix(cur, prev) {
			return cur[len(prev):], true
		}
	}
	full := d.t.Decode(d.ids, d.skipSpecial)
	emitted := d.text.String()
	if !strings.HasPrefix(full, emitted) {
		return "", false
	}
	return full[len(emitted):], true
}

func (d *StreamDecoder) commit(delta string) {
	d.text.WriteString(delta)
	if n := len(d.ids); n > d.marks[len(d.marks)-1] {
		d.marks = append(d.marks, n)
		if len(d.marks) > 4*contextMarks {
			d.marks = slices.Delete(d.marks, 0, len(d.marks)-contextMarks)
		}
	}
}
