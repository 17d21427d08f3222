package guard

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzCheck: no input panics, every input gets one of the four verdicts with a reason starting with
// its code, invalid UTF-8 is always Invalid, and checking is a pure function of the text.
func FuzzCheck(f *testing.F) {
	for _, c := range checkCases {
		f.Add(c.text)
	}
	for _, l := range loadLabelled(f) {
		f.Add(l.Text)
	}
	f.Add(strings.Repeat("chest pain ", 400))
	f.Add("\xed\xa0\x80") // an encoded surrogate: not valid UTF-8
	g := testGuard(f)
	f.Fuzz(func(t *testing.T, text string) {
		v := g.Check(text)
		if v.Kind < Allow || v.Kind > Invalid {
			t.Fatalf("Check(%q) returned kind %d", text, v.Kind)
		}
		if v.Code == "" || !strings.HasPrefix(v.Reason, v.Code+":") {
			t.Fatalf("Check(%q): code %q, reason %q", text, v.Code, v.Reason)
		}
		if !utf8.ValidString(text) && v.Kind != Invalid {
			t.Fatalf("Check(%q) = %s for invalid UTF-8", text, v.Kind)
		}
		if utf8.RuneCountInString(text) > g.cfg.MaxChars && v.Kind != Invalid {
			t.Fatalf("over-long input got %s", v.Kind)
		}
		if (v.Kind == Allow) != (v.Message == "") || !utf8.ValidString(v.Message) || !utf8.ValidString(v.Reason) {
			t.Fatalf("Check(%q): message %q reason %q", text, v.Message, v.Reason)
		}
		if v2 := g.Check(text); v2 != v {
			t.Fatalf("Check(%q) is not deterministic: %+v then %+v", text, v, v2)
		}
	})
}
