package guard

import (
	"math/rand"
	"strings"
	"testing"
)

// formatterCases are model answers of several shapes; the fuzz test is seeded from them.
var formatterCases = []string{
	"",
	"A cold is a viral infection of the nose and throat.",
	"A cold is a viral infection.\n\nIt usually lasts 7 to 10 days. Rest and fluids help.\n\n- Honey soothes a cough\n- Paracetamol eases aches",
	"Summary: Most headaches are harmless.\n\nDetails:\nTension headaches come from tight muscles.\n\nWhen to see a doctor:\nIf the headache is sudden and severe.",
	"## Summary\nDrink water.\n## Details\nAdults need about 2 litres a day.\n## When to seek care\nSee a doctor if you are always thirsty.",
	"**Summary**\nIbuprofen and paracetamol can be combined.\n\n**Details**\nTake them at different times.\n\nDisclaimer: I am not a doctor.",
	"Short answer: yes.\n\n" + Disclaimer + "\n\nMore text after it.",
	"\n\n\n  \nLeading blank lines, then text.\n\n\n\nTrailing blank lines.\n\n\n",
	"Summary of the evidence: studies disagree.\nIn short, ask your pharmacist.",
	"Overview\r\nWindows line endings.\r\n\r\nSecond paragraph.\r\n",
	"Details first\nThen more.\n\nSummary\nA summary after the details is folded in.",
	"Überblick: Ärzte empfehlen Ruhe. 🙂\n\nMehr Text.",
	"### In summary ###\nkeep it short",
	"***",
	"when to seek care is written here in lower case but is not a heading line because it goes on",
}

// formatAll is plain mode: the whole answer at once.
func formatAll(text string) string {
	f := newFormatter(Disclaimer, SeekCare)
	return f.Write(text) + f.Close()
}

// formatPieces is streaming mode: the answer in pieces cut at the given byte offsets.
func formatPieces(text string, cuts []int) string {
	f := newFormatter(Disclaimer, SeekCare)
	var b strings.Builder
	prev := 0
	for _, c := range cuts {
		b.WriteString(f.Write(text[prev:c]))
		prev = c
	}
	b.WriteString(f.Write(text[prev:]))
	b.WriteString(f.Close())
	b.WriteString(f.Write("after close")) // ignored
	b.WriteString(f.Close())
	return b.String()
}

// checkStructure verifies the fixed structure: the disclaimer exactly once, at the end; Summary,
// Details (optional) and When to seek care heading lines once each and in that order.
func checkStructure(t *testing.T, in, out string) {
	t.Helper()
	if n := strings.Count(out, Disclaimer); n != 1 {
		t.Fatalf("disclaimer appears %d times in the output of %q:\n%s", n, in, out)
	}
	if !strings.HasSuffix(out, Disclaimer+"\n") {
		t.Fatalf("output of %q does not end with the disclaimer:\n%s", in, out)
	}
	lines := strings.Split(out, "\n")
	last := -1
	for i, title := range SectionTitles[1:] {
		h := "**" + title + "**"
		n, at := 0, -1
		for j, l := range lines {
			if l == h {
				n, at = n+1, j
			}
		}
		if n > 1 || (n == 0 && title != SectionTitles[secDetails]) {
			t.Fatalf("heading line %q appears %d times in the output of %q:\n%s", title, n, in, out)
		}
		if n == 1 {
			if at < last {
				t.Fatalf("heading %q (section %d) out of order in the output of %q:\n%s", title, i+1, in, out)
			}
			last = at
		}
	}
	if !strings.HasPrefix(out, "**"+SectionTitles[secSummary]+"**\n") {
		t.Fatalf("output of %q does not start with the Summary heading:\n%s", in, out)
	}
}

func TestFormatterStructure(t *testing.T) {
	for _, in := range formatterCases {
		checkStructure(t, in, formatAll(in))
	}
	out := formatAll("A cold is a viral infection.\n\nIt usually lasts 7 to 10 days.")
	want := "**Summary**\nA cold is a viral infection.\n\n**Details**\nIt usually lasts 7 to 10 days.\n\n**When to seek care**\n" + SeekCare + "\n\n---\n" + Disclaimer + "\n"
	if out != want {
		t.Errorf("formatted answer:\n%q\nwant\n%q", out, want)
	}
	out = formatAll("Summary: Most headaches are harmless.\n\nWhen to see a doctor:\nIf it is sudden.")
	if !strings.Contains(out, "**Summary**\nMost headaches are harmless.\n") || !strings.Contains(out, "**When to seek care**\nIf it is sudden.\n") || strings.Contains(out, SeekCare) {
		t.Errorf("the model's own headings should become the canonical ones and its care section kept:\n%s", out)
	}
	if out := formatAll("**Summary**\nYes.\n\nDisclaimer: I am not a doctor."); strings.Contains(out, "I am not a doctor") {
		t.Errorf("the model's own disclaimer line should be dropped:\n%s", out)
	}
}

// TestFormatterStreamingEqualsPlain cuts every case at every single point and at random points.
func TestFormatterStreamingEqualsPlain(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	for _, in := range formatterCases {
		plain := formatAll(in)
		for c := 0; c <= len(in); c++ {
			if got := formatPieces(in, []int{c}); got != plain {
				t.Fatalf("cut at %d of %q:\n%q\nplain:\n%q", c, in, got, plain)
			}
		}
		for trial := 0; trial < 50; trial++ {
			cuts := randomCuts(rng, len(in))
			if got := formatPieces(in, cuts); got != plain {
				t.Fatalf("cuts %v of %q:\n%q\nplain:\n%q", cuts, in, got, plain)
			}
		}
		// byte by byte, the way a token stream could split a multi-byte character
		every := make([]int, 0, len(in))
		for c := 1; c < len(in); c++ {
			every = append(every, c)
		}
		if got := formatPieces(in, every); got != plain {
			t.Fatalf("byte-by-byte %q:\n%q\nplain:\n%q", in, got, plain)
		}
	}
}

// TestFormatterStreamsEarly checks that ordinary text is released at once, not held back.
func TestFormatterStreamsEarly(t *testing.T) {
	f := newFormatter(Disclaimer, SeekCare)
	if got := f.Write("Flu is caused by a vir"); got != "**Summary**\nFlu is caused by a vir" {
		t.Errorf("first piece: %q", got)
	}
	if got := f.Write("us."); got != "us." {
		t.Errorf("second piece: %q", got)
	}
	if got := f.Write("\n\nSumm"); got != "\n" {
		t.Errorf("the finished line is released, a possible heading waits: %q", got)
	}
	if got := f.Write("ary of care: rest"); got != "\n**Details**\nSummary of care: rest" {
		t.Errorf("released as content once it cannot be a heading: %q", got)
	}
}

func randomCuts(rng *rand.Rand, n int) []int {
	if n == 0 {
		return nil
	}
	k := rng.Intn(6)
	cuts := make([]int, 0, k)
	for i := 0; i < k; i++ {
		cuts = append(cuts, rng.Intn(n+1))
	}
	for i := 1; i < len(cuts); i++ {
		for j := i; j > 0 && cuts[j] < cuts[j-1]; j-- {
			cuts[j], cuts[j-1] = cuts[j-1], cuts[j]
		}
	}
	return cuts
}

// FuzzFormatter: any answer, cut anywhere, formats the same as in one piece and keeps the structure.
func FuzzFormatter(f *testing.F) {
	for i, c := range formatterCases {
		f.Add(c, uint16(i*7))
	}
	f.Fuzz(func(t *testing.T, text string, seed uint16) {
		plain := formatAll(text)
		checkStructure(t, text, plain)
		cuts := randomCuts(rand.New(rand.NewSource(int64(seed))), len(text))
		if got := formatPieces(text, cuts); got != plain {
			t.Fatalf("cuts %v of %q:\n%q\nplain:\n%q", cuts, text, got, plain)
		}
	})
}
