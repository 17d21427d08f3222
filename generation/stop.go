package generation

import "strings"

// StopMatcher watches text as it streams out of a generation and finds stop strings in it. It holds
// back any tail that could still become a stop string, so a stop string is never shown to a reader,
// even when it arrives split over several tokens.
//
// The stop that ends the text is the first one to be completed; among stops completed by the same
// character, the one that starts earliest. Everything from its start on is dropped.
type StopMatcher struct {
	stops   []string
	pending string // text received but not yet emitted
	stopped bool
}

// NewStopMatcher watches for stops; empty strings are ignored.
func NewStopMatcher(stops []string) *StopMatcher {
	m := &StopMatcher{}
	for _, s := range stops {
		if s != "" {
			m.stops = append(m.stops, s)
		}
	}
	return m
}

// Push adds streamed text. It returns the text that is now safe to show and whether a stop string
// was completed (then emit is the text before it, and later pushes return nothing).
func (m *StopMatcher) Push(text string) (emit string, stopped bool) {
	if m.stopped {
		return "", true
	}
	start := len(m.pending)
	m.pending += text
	if cut, ok := m.firstMatch(start); ok {
		emit = m.pending[:cut]
		m.pending = ""
		m.stopped = true
		return emit, true
	}
	keep := m.heldTail()
	emit = m.pending[:len(m.pending)-keep]
	m.pending = m.pending[len(m.pending)-keep:]
	return emit, false
}

// Flush returns the text still held back, for when generation ended without a stop string.
func (m *StopMatcher) Flush() string {
	out := m.pending
	m.pending = ""
	return out
}

// Stopped reports whether a stop string was seen.
func (m *StopMatcher) Stopped() bool { return m.stopped }

// firstMatch finds the stop completed first by the new text (which begins at pending[from:]) and
// returns where it starts. Earlier text held no complete stop, so only ends after from can match.
func (m *StopMatcher) firstMatch(from int) (int, bool) {
	p := m.pending
	for end := from + 1; end <= len(p); end++ {
		best := -1
		for _, s := range m.stops {
			if len(s) <= end && strings.HasSuffix(p[:end], s) {
				if st := end - len(s); best < 0 || st < best {
					best = st
				}
			}
		}
		if best >= 0 {
			return best, true
		}
	}
	return 0, false
}

// heldTail is the length of the longest tail of pending that is a proper prefix of some stop.
func (m *StopMatcher) heldTail() int {
	p := m.pending
	keep := 0
	for _, s := range m.stops {
		for n := min(len(s)-1, len(p)); n > keep; n-- {
			if strings.HasPrefix(s, p[len(p)-n:]) {
				keep = n
				break
			}
		}
	}
	return keep
}

// Detokenizer turns streamed token ids into text as it becomes complete (tokenizer.StreamDecoder
// implements it): Add returns the text an id completes, Flush what is still held back at the end.
type Detokenizer interface {
	Add(id int) string
	Flush() string
}

// TextStream is the text side of a streamed generation: ids decoded incrementally, and stop strings
// held back until they are ruled out (see StopMatcher).
type TextStream struct {
	dec   Detokenizer
	stops *StopMatcher
}

// NewTextStream decodes with dec and watches for stops.
func NewTextStream(dec Detokenizer, stops []string) *TextStream {
	return &TextStream{dec: dec, stops: NewStopMatcher(stops)}
}

// Push decodes id and returns the text that is now safe to show and whether a stop string ended the
// text (the generation should then end: an emit callback returns ErrStop).
func (t *TextStream) Push(id int) (text string, stopped bool) { return t.stops.Push(t.dec.Add(id)) }

// Close returns, once generation has ended, the text still held back (the bytes the decoder kept,
// which may complete a stop string, and the tail kept as a possible stop) and whether the text ended
// on a stop string.
func (t *TextStream) Close() (text string, stopped bool) {
	if t.stops.Stopped() {
		return "", true
	}
	if text, stopped = t.stops.Push(t.dec.Flush()); stopped {
		return text, true
	}
	return text + t.stops.Flush(), false
}
