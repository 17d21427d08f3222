package tokenizer

import (
	"slices"
	"strings"
)

// EncodeRendered encodes a rendered chat prompt. Special-token strings in the template's own text
// become special tokens; inside the byte ranges [start, end) of untrusted (the message contents)
// everything is plain text, so a user who types "</s>" gets the characters, not EOS. With
// addBOS the post-processor's ids are added as HF's encode(text, add_special_tokens=True) would
// (Llama: BOS in front).
//
// HF's added-token extraction splits the text at special tokens and encodes each piece on its
// own (which is why Llama gets "▁" after "</s>"); this does the same, except that a special token
// is only recognised where it lies wholly outside the untrusted ranges. For a prompt whose
// contents hold no special-token string the result equals Encode(text, addBOS).
//
// Ranges are clamped to the text; empty or negative ones (a message the template did not print)
// are ignored and overlapping ones merged.
func (t *Tokenizer) EncodeRendered(text string, untrusted [][2]int, addBOS bool) []int {
	spans := normalizeSpans(untrusted, len(text))
	ids := make([]int, 0, len(t.prefix)+len(text)/2+len(t.suffix))
	if addBOS {
		ids = append(ids, t.prefix...)
	}
	start, next := 0, 0 // start of the pending text piece; next untrusted span
	for i := 0; i < len(text); {
		if next < len(spans) && i >= spans[next][0] {
			i = spans[next][1]
			next++
			continue
		}
		limit := len(text)
		if next < len(spans) {
			limit = spans[next][0]
		}
		id, n := t.specialAt(text[i:limit])
		if n == 0 {
			i++
			continue
		}
		ids = append(ids, t.EncodeText(text[start:i])...)
		ids = append(ids, id)
		i += n
		start = i
	}
	ids = append(ids, t.EncodeText(text[start:])...)
	if addBOS {
		ids = append(ids, t.suffix...)
	}
	return ids
}

// specialAt returns the longest special token that s starts with (HF matches leftmost-longest).
func (t *Tokenizer) specialAt(s string) (id, n int) {
	for _, tok := range t.v.specials {
		if len(tok.Content) > n && strings.HasPrefix(s, tok.Content) {
			id, n = tok.ID, len(tok.Content)
		}
	}
	return id, n
}

// normalizeSpans clamps spans to [0, size], drops empty ones, sorts and merges them.
func normalizeSpans(in [][2]int, size int) [][2]int {
	var out [][2]int
	for _, s := range in {
		a, b := max(s[0], 0), min(s[1], size)
		if a < b {
			out = append(out, [2]int{a, b})
		}
	}
	slices.SortFunc(out, func(x, y [2]int) int { return x[0] - y[0] })
	merged := out[:0]
	for _, s := range out {
		if k := len(merged) - 1; k >= 0 && s[0] <= merged[k][1] {
			merged[k][1] = max(merged[k][1], s[1])
			continue
		}
		merged = append(merged, s)
	}
	return merged
}
