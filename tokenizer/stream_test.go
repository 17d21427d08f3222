package tokenizer

import (
	"encoding/binary"
	"strconv"
	"strings"
	"testing"
)

// checkStream feeds ids one at a time and checks StreamDecoder's documented guarantee after every
// id against a full Decode of the ids so far (the slow, obviously correct oracle):
//   - the returned pieces concatenate to Text();
//   - Text() is a prefix of full;
//   - when the ids are settled (last counted id is not a byte token, and full does not end in
//     U+FFFD past the text emitted before), Text() == full; otherwise Text() is unchanged;
//   - after Flush, Text() == Decode(all ids).
func checkStream(t testing.TB, tok *Tokenizer, ids []int, skip bool) {
	t.Helper()
	d := tok.NewStreamDecoder(skip)
	var joined strings.Builder
	lastCounted := -1
	for i, id := range ids {
		before := d.Text()
		piece := d.Add(id)
		joined.WriteString(piece)
		if !(skip && tok.IsSpecial(id)) {
			lastCounted = id
		}
		full := tok.Decode(ids[:i+1], skip)
		text := d.Text()
		if joined.String() != text {
			t.Fatalf("ids %v skip=%v step %d: pieces join to %q, Text() is %q", ids, skip, i, joined.String(), text)
		}
		if !strings.HasPrefix(full, text) {
			t.Fatalf("ids %v skip=%v step %d: Text() %q is not a prefix of Decode %q", ids, skip, i, text, full)
		}
		settled := !tok.isByte(lastCounted) && !(len(full) > len(before) && strings.HasSuffix(full, "\uFFFD"))
		if settled && text != full {
			t.Fatalf("ids %v skip=%v step %d: settled, Text() %q, want Decode %q", ids, skip, i, text, full)
		}
		if !settled && text != before {
			t.Fatalf("ids %v skip=%v step %d: not settled, Text() moved from %q to %q", ids, skip, i, before, text)
		}
	}
	rest := d.Flush()
	if want := tok.Decode(ids, skip); joined.String()+rest != want || d.Text() != want {
		t.Fatalf("ids %v skip=%v: after Flush %q + %q, Text() %q, want %q", ids, skip, joined.String(), rest, d.Text(), want)
	}
}

// TestStreamDecodeGolden streams every golden id sequence (the encodings of golden.jsonl with
// BOS and the random sequences of decode.jsonl) through both tokenizers in both skip modes.
func TestStreamDecodeGolden(t *testing.T) {
	golden := readJSONL[goldenText](t, "golden.jsonl")
	random := readJSONL[goldenDecode](t, "decode.jsonl")
	for _, m := range goldenModels {
		t.Run(m.name, func(t *testing.T) {
			tok := loadTokenizer(t, m.dir(t))
			n, held := 0, 0
			check := func(ids []int) {
				for _, skip := range []bool{false, true} {
					checkStream(t, tok, ids, skip)
					n++
				}
				held += heldSteps(tok, ids)
			}
			for _, g := range golden {
				check(g.Models[m.name].IDs)
			}
			for _, g := range random {
				if g.Model == m.name {
					check(g.IDs)
				}
			}
			if held == 0 {
				t.Errorf("no sequence ever held text back: the byte-run cases are not exercised")
			}
			t.Logf("%s: %d streams checked after every id (%d steps held back an open byte run)", m.name, n, held)
		})
	}
}

// heldSteps counts the steps where the stream (skip=false) held text back.
func heldSteps(tok *Tokenizer, ids []int) int {
	d, n := tok.NewStreamDecoder(false), 0
	for _, id := range ids {
		if d.Add(id) == "" && tok.isByte(id) {
			n++
		}
	}
	return n
}

// TestStreamDecodeByteRun pins down the HF behaviour the stream waits for: a complete character
// at the end of an open byte run turns into U+FFFD when a stray byte follows.
func TestStreamDecodeByteRun(t *testing.T) {
	tok := loadTokenizer(t, goldenModels[1].dir(t))
	b := func(x byte) int { return tok.v.byteID(x) }
	ni := []int{b(0xE4), b(0xBD), b(0xA0)} // 你
	if got := tok.Decode(ni, false); got != "你" {
		t.Fatalf("Decode(你 bytes) = %q", got)
	}
	stray := append(append([]int{}, ni...), b(0x80))
	if got := tok.Decode(stray, false); got != "����" {
		t.Fatalf("Decode(你 + stray byte) = %q, want four U+FFFD", got)
	}
	d := tok.NewStreamDecoder(true)
	for _, id := range ni {
		if s := d.Add(id); s != "" {
			t.Fatalf("byte token emitted %q while its run is open", s)
		}
	}
	if s := d.Add(tok.EOS()); s != "" {
		t.Fatalf("a skipped EOS emitted %q: HF joins byte runs across skipped ids", s)
	}
	if s := d.Flush(); s != "你" {
		t.Fatalf("Flush = %q, want 你", s)
	}
	d = tok.NewStreamDecoder(false)
	var got string
	for _, id := range append(tok.Encode("Hi", true), append(ni, tok.EOS())...) {
		got += d.Add(id)
	}
	if got != "<s> Hi你</s>" {
		t.Fatalf("stream = %q, want %q", got, "<s> Hi你</s>")
	}
}

// FuzzStreamDecode compares the stream with full decodes on arbitrary id sequences, seeded with
// every golden sequence. Two bytes make an id: below 0x8000 the id itself (modulo the vocabulary),
// else a byte-fallback token (the low byte), so that broken UTF-8 runs come up often.
func FuzzStreamDecode(f *testing.F) {
	dir := goldenModels[1].dir(f)
	for _, g := range readJSONL[goldenText](f, "golden.jsonl") {
		f.Add(idBytes(g.Models[goldenModels[1].name].IDs), false)
	}
	for _, g := range readJSONL[goldenDecode](f, "decode.jsonl") {
		if g.Model == goldenModels[1].name {
			f.Add(idBytes(g.IDs), true)
		}
	}
	tok := loadTokenizer(f, dir)
	f.Fuzz(func(t *testing.T, data []byte, skip bool) {
		if len(data) > 2*512 {
			data = data[:2*512]
		}
		ids := make([]int, len(data)/2)
		for i := range ids {
			v := binary.LittleEndian.Uint16(data[2*i:])
			ids[i] = int(v) % tok.VocabSize()
			if id := tok.v.byteID(byte(v)); v >= 0x8000 && id >= 0 {
				ids[i] = id
			}
		}
		checkStream(t, tok, ids, skip)
	})
}

func idBytes(ids []int) []byte {
	out := make([]byte, 2*len(ids))
	for i, id := range ids {
		binary.LittleEndian.PutUint16(out[2*i:], uint16(id))
	}
	return out
}

// BenchmarkStreamDecode reports the cost per id of streaming n ids; with the window it should not
// grow with n.
func BenchmarkStreamDecode(b *testing.B) {
	tok := loadTokenizer(b, goldenModels[1].dir(b))
	text := strings.Repeat("The patient, 45, reports fever 😀 and cough for 3 days; 你好. ", 100)
	all := tok.Encode(text, true)
	for _, n := range []int{200, 2000} {
		ids := all[:n]
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			for b.Loop() {
				d := tok.NewStreamDecoder(true)
				for _, id := range ids {
					d.Add(id)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/id")
		})
	}
}
