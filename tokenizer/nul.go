package tokenizer

import (
	"slices"
	"strings"
)

// The native library takes and returns C strings, so a NUL byte would cut the text short (and a
// decoded NUL empties the result). With byte fallback, HF encodes NUL as its own token <0x00>
// that never merges with a neighbour, and so it does every control character that appears in no
// vocabulary entry: such a character stands in for NUL on the way through the native calls.
// Byte-level BPE (GPT-2, SmolLM, Llama 3) is the same with the byte's own character (Ā for NUL)
// in place of <0x00>, when no longer vocabulary entry holds that character.
//
// Encoding sends NUL as stand-in A; each occurrence of A or NUL in the text becomes one A token,
// in text order, so the tokens at NUL positions are swapped back to <0x00>. Decoding swaps
// <0x00> for A once and for B once: both are ASCII, so byte runs stay valid or invalid alike and
// the two texts line up byte for byte; NUL is where they differ.

// stand-in candidates: control characters other than white space.
var standInCandidates = []byte{1, 2, 3, 4, 5, 6, 7, 8, 0x0e, 0x0f, 0x10, 0x11, 0x12, 0x13, 0x14, 0x15,
	0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f, 0x7f}

type standIn struct {
	ch byte
	id int // its byte-fallback token
}

// nulCodec carries NUL bytes through the native calls. When the vocabulary lacks what that
// needs (byte fallback for NUL and two stand-ins), ok is false and NUL is encoded as U+FFFD.
type nulCodec struct {
	ok    bool
	nulID int
	a, b  standIn
}

func newNulCodec(v *vocab, text engine) nulCodec {
	nulID, mark := v.soloByte(0)
	if nulID < 0 || pieceHolds(v.pieces, mark, nulID) {
		return nulCodec{}
	}
	var found []standIn
	for _, ch := range standInCandidates {
		id, mark := v.soloByte(ch)
		if id < 0 || pieceHolds(v.pieces, mark, id) {
			continue
		}
		// The character must reach the model untouched (no normalizer drops or rewrites it).
		if ids := text.encode("a"+string(rune(ch))+"a", false); slices.Index(ids, id) < 0 {
			continue
		}
		if found = append(found, standIn{ch: ch, id: id}); len(found) == 2 {
			return nulCodec{ok: true, nulID: nulID, a: found[0], b: found[1]}
		}
	}
	return nulCodec{}
}

// pieceHolds reports whether a vocabulary entry other than pieces[except] contains mark.
func pieceHolds(pieces []string, mark string, except int) bool {
	for id, p := range pieces {
		if id != except && strings.Contains(p, mark) {
			return true
		}
	}
	return false
}

func (c nulCodec) encode(e engine, text string, addSpecial bool) []int {
	if strings.IndexByte(text, 0) < 0 {
		return e.encode(text, addSpecial)
	}
	if c.ok {
		ids := e.encode(strings.ReplaceAll(text, "\x00", string(rune(c.a.ch))), addSpecial)
		// isNul lists, in text order, whether each A-or-NUL byte was a NUL.
		var isNul []bool
		for i := 0; i < len(text); i++ {
			if text[i] == 0 || text[i] == c.a.ch {
				isNul = append(isNul, text[i] == 0)
			}
		}
		k := 0
		for i, id := range ids {
			if id == c.a.id {
				if k < len(isNul) && isNul[k] {
					ids[i] = c.nulID
				}
				k++
			}
		}
		if k == len(isNul) {
			return ids
		}
	}
	return e.encode(strings.ReplaceAll(text, "\x00", "\uFFFD"), addSpecial)
}

func (c nulCodec) decode(e engine, ids []int, skipSpecial bool) string {
	if !c.ok || !slices.Contains(ids, c.nulID) {
		return e.decode(ids, skipSpecial)
	}
	ta, tb := e.decode(swap(ids, c.nulID, c.a.id), skipSpecial), e.decode(swap(ids, c.nulID, c.b.id), skipSpecial)
	if len(ta) != len(tb) {
		return ta
	}
	out := []byte(ta)
	for i := range out {
		if ta[i] == c.a.ch && tb[i] == c.b.ch {
			out[i] = 0
		}
	}
	return string(out)
}

func swap(ids []int, from, to int) []int {
	out := slices.Clone(ids)
	for i, id := range out {
		if id == from {
			out[i] = to
		}
	}
	return out
}
