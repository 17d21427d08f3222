package generation

import (
	"strings"
	"testing"
)

// oracleStop is the slow, obviously correct answer for the whole text: scan every end position, and
// at the first one where some stop ends, cut at the earliest start among the stops ending there.
// held is the longest tail that is a proper prefix of a stop, when no stop matched.
func oracleStop(text string, stops []string) (out string, stopped bool, held int) {
	for end := 0; end <= len(text); end++ {
		cut := -1
		for _, s := range stops {
			if s != "" && end >= len(s) && text[end-len(s):end] == s && (cut < 0 || end-len(s) < cut) {
				cut = end - len(s)
			}
		}
		if cut >= 0 {
			return text[:cut], true, 0
		}
	}
	for n := len(text); n > 0; n-- {
		for _, s := range stops {
			if n < len(s) && strings.HasPrefix(s, text[len(text)-n:]) {
				return text, false, n
			}
		}
	}
	return text, false, 0
}

// runMatcher streams chunks through a matcher, checking after every push that what was emitted so
// far is exactly the oracle's safe prefix, and returns everything emitted plus the stop flag.
func runMatcher(t *testing.T, chunks, stops []string) (string, bool) {
	t.Helper()
	m := NewStopMatcher(stops)
	var emitted, seen strings.Builder
	for _, c := range chunks {
		seen.WriteString(c)
		out, stopped := m.Push(c)
		emitted.WriteString(out)
		want, wantStop, held := oracleStop(seen.String(), stops)
		if stopped != wantStop {
			t.Fatalf("after %q: stopped = %v, oracle %v", seen.String(), stopped, wantStop)
		}
		if stopped {
			if emitted.String() != want {
				t.Fatalf("after %q: emitted %q, oracle %q", seen.String(), emitted.String(), want)
			}
			return emitted.String(), true
		}
		if safe := want[:len(want)-held]; emitted.String() != safe {
			t.Fatalf("after %q: emitted %q, want %q (holding back %d bytes)", seen.String(), emitted.String(), safe, held)
		}
	}
	emitted.WriteString(m.Flush())
	return emitted.String(), false
}

func TestStopMatcherTable(t *testing.T) {
	cases := []struct {
		name    string
		chunks  []string
		stops   []string
		want    string
		stopped bool
	}{
		{"no stops", []string{"Hello", " world"}, nil, "Hello world", false},
		{"whole chunk", []string{"Hi", "</s>", "more"}, []string{"</s>"}, "Hi", true},
		{"split over chunks", []string{"Hi <", "/", "s", ">tail"}, []string{"</s>"}, "Hi ", true},
		{"false start released", []string{"a <", "b"}, []string{"</s>"}, "a <b", false},
		{"held at end then flushed", []string{"abc", "</"}, []string{"</s>"}, "abc</", false},
		{"first completed wins", []string{"xab", "cd"}, []string{"abcd", "bc"}, "xa", true},
		{"earliest start among same end", []string{"xxabc"}, []string{"bc", "abc"}, "xx", true},
		{"stop inside one chunk", []string{"one\nUser: two"}, []string{"\nUser:"}, "one", true},
		{"empty stop ignored", []string{"abc"}, []string{""}, "abc", false},
		{"repeated prefix", []string{"aa", "a", "ab"}, []string{"aab"}, "aa", true},
		{"unicode", []string{"héllo ", "wörld", "!"}, []string{"wör"}, "héllo ", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, stopped := runMatcher(t, c.chunks, c.stops)
			if got != c.want || stopped != c.stopped {
				t.Fatalf("got %q stopped=%v, want %q stopped=%v", got, stopped, c.want, c.stopped)
			}
		})
	}
}

func TestStopMatcherAfterStop(t *testing.T) {
	m := NewStopMatcher([]string{"END"})
	if out, stopped := m.Push("aEND"); out != "a" || !stopped {
		t.Fatalf("Push = %q, %v", out, stopped)
	}
	if out, stopped := m.Push("more"); out != "" || !stopped || m.Flush() != "" || !m.Stopped() {
		t.Fatalf("after stop: Push = %q, %v", out, stopped)
	}
}

// FuzzStopMatcher compares the streaming matcher with the oracle for any text, chunking and stops.
// Seeded from the table above; run longer with: go test ./generation -fuzz FuzzStopMatcher
func FuzzStopMatcher(f *testing.F) {
	f.Add("Hi </s>more", "</s>", []byte{2, 1, 1, 1})
	f.Add("xabcd", "abcd|bc", []byte{3, 2})
	f.Add("xxabc", "bc|abc", []byte{1})
	f.Add("aaab", "aab", []byte{2, 1, 1})
	f.Add("héllo wörld!", "wör|ld", []byte{7, 5})
	f.Add("one\nUser: two", "\nUser:|\n\n", []byte{4, 4, 4})
	f.Fuzz(func(t *testing.T, text, stopList string, cuts []byte) {
		if len(text) > 512 || len(stopList) > 64 {
			return
		}
		stops := strings.Split(stopList, "|")
		var chunks []string
		rest := text
		for i := 0; len(rest) > 0; i++ {
			n := len(rest)
			if i < len(cuts) {
				n = min(int(cuts[i]%8), len(rest)) // zero-length chunks are allowed
			}
			chunks = append(chunks, rest[:n])
			rest = rest[n:]
			if i > len(text)+len(cuts) {
				break
			}
		}
		if len(rest) > 0 {
			chunks = append(chunks, rest)
		}
		got, stopped := runMatcher(t, chunks, stops)
		want, wantStop, _ := oracleStop(text, stops)
		if got != want || stopped != wantStop {
			t.Fatalf("text %q stops %q chunks %q: got %q stopped=%v, oracle %q stopped=%v",
				text, stops, chunks, got, stopped, want, wantStop)
		}
	})
}

// lagging is a Detokenizer that holds each piece back until the next id (as a byte-level decoder
// holds an incomplete UTF-8 sequence).
type lagging struct {
	pieces []string
	held   string
}

func (d *lagging) Add(id int) string {
	out := d.held
	d.held = d.pieces[id]
	return out
}

func (d *lagging) Flush() string {
	out := d.held
	d.held = ""
	return out
}

func TestTextStream(t *testing.T) {
	pieces := []string{"Hello", " wor", "ld", "</", "s>", "!"}
	for _, tc := range []struct {
		name    string
		ids     []int
		stops   []string
		want    string
		stopped bool
		atClose bool // the stop is only completed by what the decoder held back
	}{
		{"no stop", []int{0, 1, 2, 5}, []string{"</s>"}, "Hello world!", false, false},
		{"stop while streaming", []int{0, 3, 4, 5, 1}, []string{"</s>"}, "Hello", true, false},
		{"stop completed at close", []int{0, 3, 4}, []string{"</s>"}, "Hello", true, true},
		{"possible stop released at close", []int{0, 3}, []string{"</s>"}, "Hello</", false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts := NewTextStream(&lagging{pieces: pieces}, tc.stops)
			var text string
			streamStopped := false
			for _, id := range tc.ids {
				piece, stopped := ts.Push(id)
				text += piece
				if stopped {
					streamStopped = true
					break
				}
			}
			tail, stopped := ts.Close()
			text += tail
			if text != tc.want || stopped != tc.stopped || streamStopped == tc.atClose && tc.stopped {
				t.Fatalf("text %q stopped %v (while streaming %v), want %q %v", text, stopped, streamStopped, tc.want, tc.stopped)
			}
		})
	}
}
